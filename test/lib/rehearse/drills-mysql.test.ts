// The mysql drill's own arithmetic and parsing (issue 12, lib/rehearse/stack/drills/mysql.ts):
// the replica status a role is read from, the role comparison that says whether the pair is back
// as it was, the checksum comparison, and the longest pause writers felt during the fallback.
// The drill itself runs on the booted stack (`rehearse stack --drills mysql --keep`).
import { expect } from "chai";
import {
  DbRole,
  checksumMismatches,
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
});
