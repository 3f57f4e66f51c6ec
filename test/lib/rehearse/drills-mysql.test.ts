// The mysql drill's own arithmetic and parsing (issue 12, lib/rehearse/stack/drills/mysql.ts):
// the replica status a role is read from, the role comparison that says whether the pair is back
// as it was, the checksum comparison, the longest pause writers felt during the fallback, and the
// verdict on the killed primary's health check while it is back fenced.
// The drill itself runs on the booted stack (`rehearse stack --drills mysql --keep`).
import { expect } from "chai";
import {
  CheckerView,
  DbRole,
  checksumMismatches,
  fencedCheckProblems,
  longestGap,
  parseReplicaStatus,
  roleDrift,
} from "../../../lib/rehearse/stack/drills/mysql";

describe("rehearse drills mysql: replica status, roles, checksums, pauses", () => {
  it("reads SHOW SLAVE STATUS\\G as fields", () => {
    const text = [
      "*************************** 1. row ***************************",
      "                Slave_IO_State: Waiting for master to send event",
      "                   Master_Host: 10.20.201.66",
      "              Slave_IO_Running: Yes",
      "             Slave_SQL_Running: Yes",
      "                Last_IO_Error: ",
      "",
    ].join("\n");
    const st = parseReplicaStatus(text);
    expect(st).to.include({
      Master_Host: "10.20.201.66",
      Slave_IO_Running: "Yes",
      Slave_SQL_Running: "Yes",
      Last_IO_Error: "",
    });
    expect(parseReplicaStatus("")).to.deep.equal({});
  });

  const standby: DbRole = {
    readOnly: "1",
    source: "10.20.201.66",
    io: "Yes",
    sql: "Yes",
    semiSyncSource: "OFF",
    semiSyncReplica: "ON",
  };
  it("a server back in its role shows no drift", () => {
    expect(roleDrift("mysql-standby", standby, { ...standby })).to.deep.equal([]);
  });
  it("names each part of a role that differs", () => {
    expect(
      roleDrift("mysql-standby", standby, { ...standby, readOnly: "0", source: "", io: "" }),
    ).to.deep.equal([
      'mysql-standby: readOnly is "0", was "1"',
      'mysql-standby: source is "", was "10.20.201.66"',
      'mysql-standby: io is "", was "Yes"',
    ]);
  });

  it("a table that differs or exists on one side only is a mismatch", () => {
    const a = { "`app`.`t`": "1", "`app`.`u`": "2", "`cdr`.`x`": "3" };
    expect(checksumMismatches(a, { ...a })).to.deep.equal([]);
    expect(checksumMismatches(a, { "`app`.`t`": "1", "`app`.`u`": "9" })).to.deep.equal([
      "`app`.`u`",
      "`cdr`.`x`",
    ]);
    expect(checksumMismatches({}, {})).to.deep.equal([]);
  });

  const rows: { times: number[]; from: number; to: number; gap: number }[] = [
    { times: [], from: 0, to: 5000, gap: 5000 },
    { times: [1000, 2000, 9000], from: 0, to: 10_000, gap: 7000 },
    // Acks outside the window do not shorten it.
    { times: [-500, 12_000], from: 0, to: 10_000, gap: 10_000 },
    { times: [9500, 500, 5000], from: 0, to: 10_000, gap: 4500 },
  ];
  for (const r of rows) {
    it(`longest pause of ${JSON.stringify(r.times)} in [${r.from}, ${r.to}] is ${r.gap} ms`, () => {
      expect(longestGap(r.times, r.from, r.to)).to.equal(r.gap);
    });
  }

  describe("the fenced primary's health check", () => {
    const view = (v: Partial<CheckerView>): CheckerView => ({
      health: true,
      probes: 100,
      passes: 90,
      failureThreshold: 3,
      intervalSeconds: 10,
      ...v,
    });
    it("no probe passed since the kill and the checker holds it unhealthy: no problem", () => {
      const end = view({ health: false, probes: 105, passes: 90 });
      expect(fencedCheckProblems("mysql-primary", view({}), end, 55)).to.deep.equal([]);
    });
    it("a probe that passed after the kill means its agent answered healthy while fenced", () => {
      // A sample of the status at the end would see it unhealthy again: the counts do not lose it.
      const end = view({ health: false, probes: 108, passes: 91 });
      const p = fencedCheckProblems("mysql-primary", view({}), end, 80);
      expect(p).to.have.length(1);
      expect(p[0]).to.match(/1 of the health checker's 8 probes of mysql-primary passed/);
    });
    it("held healthy (or never measured) at the end of the watch is a problem, naming the flip rule", () => {
      const held = fencedCheckProblems("mysql-primary", view({}), view({ probes: 104 }), 45);
      expect(held).to.deep.equal([
        "the health checker holds mysql-primary healthy 45 s after the kill, while it is fenced (3 failures × 10 s flip it)",
      ]);
      const never = fencedCheckProblems(
        "mysql-primary",
        view({}),
        view({ probes: 104, health: undefined }),
        45,
      );
      expect(never[0]).to.match(/unmeasured \(healthy\)/);
    });
    it("a checker that made no probe since the kill proves nothing", () => {
      const p = fencedCheckProblems("mysql-primary", view({}), view({ health: false }), 40);
      expect(p).to.deep.equal([
        "the health checker made no probe of mysql-primary in the 40 s after the kill",
      ]);
    });
  });
});
