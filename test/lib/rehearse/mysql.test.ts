// The mysql disaster drill and the role-change scripts against real MariaDB servers on loopback
// (Debian mariadb-server): the drill itself (zero acknowledged writes lost, identical data after
// fallback), the CLI contract, and each safety check of the scripts with a compliant and a
// refused case.
import { expect } from "chai";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { parse as parseYaml, stringify as stringifyYaml } from "yaml";
import { MysqlSettings } from "../../../components/mysql-scripts";
import { Role } from "../../../components/server-pair";
import {
  LoopbackPair,
  MysqlDrillResult,
  REQUIRED_BINARIES,
  ScriptRun,
  defaultMysqlSettings,
  parseMysqlDrillArgs,
  requireBinaries,
  runMysqlDrill,
  stackMysqlSettings,
  summaryLine,
} from "../../../lib/rehearse/mysql";
import { PACKAGE_ROOT } from "../../../lib/package-root";

const P = Role.Primary;
const S = Role.Standby;
const REHEARSE = path.join(PACKAGE_ROOT, "dist", "scripts", "rehearse.js");

/** Default config, but a 1 s semi-sync timeout so the replica-less setup does not stall 10 s. */
function fastSettings(over: Partial<MysqlSettings> = {}): MysqlSettings {
  return defaultMysqlSettings({ semiSyncTimeoutMs: 1000, ...over });
}

/** A pair set up and bootstrapped exactly as the stack does it: setup on both, bootstrap on S. */
async function bootstrappedPair(settings = fastSettings()): Promise<LoopbackPair> {
  const pair = await LoopbackPair.create({ settings });
  try {
    await Promise.all([pair.start(P, P), pair.start(S, P)]);
    await pair.runScriptChecked("setup", P);
    await pair.runScriptChecked("setup", S);
    await pair.sql(P, "CREATE TABLE app.t (id INT PRIMARY KEY, v VARCHAR(20)) ENGINE=InnoDB");
    await pair.sql(P, "INSERT INTO app.t VALUES (1, 'seed'), (2, 'seed')");
    await pair.runScriptChecked("bootstrap", S);
    return pair;
  } catch (e) {
    await pair.destroy();
    throw e;
  }
}

async function readOnly(pair: LoopbackPair, side: Role): Promise<string> {
  return (await pair.sql(side, "SELECT @@GLOBAL.read_only")).trim();
}

async function caughtUp(pair: LoopbackPair, from: Role, to: Role): Promise<void> {
  const pos = (await pair.sql(from, "SELECT @@GLOBAL.gtid_binlog_pos")).trim();
  const r = (await pair.sql(to, `SELECT MASTER_GTID_WAIT('${pos}', 20)`)).trim();
  expect(r, `${to} reaching ${from}'s ${pos}`).to.equal("0");
}

function refusedWith(r: ScriptRun, pattern: RegExp): void {
  expect(r.code, r.stderr).to.equal(3);
  expect(r.stderr).to.match(/REFUSED: /);
  expect(r.stderr).to.match(pattern);
}

describe("rehearse mysql: the disaster drill on real MariaDB", function () {
  this.timeout(300_000);
  let result: MysqlDrillResult;
  const lines: string[] = [];

  before(async () => {
    result = await runMysqlDrill({ writers: 4, loadSeconds: 2, log: (l) => lines.push(l) });
  });

  it("loses no acknowledged write: every one is on the promoted standby and, after fallback, on the primary", () => {
    expect(result.problems, result.problems.join("\n")).to.deep.equal([]);
    expect(result.acknowledged).to.be.greaterThan(500);
    expect(result.lost).to.equal(0);
  });

  it("ends with identical data on both servers (CHECKSUM TABLE)", () => {
    expect(result.checksumsEqual).to.equal(true);
    expect(Object.keys(result.checksums.primary)).to.include("app.hastack_drill");
    expect(result.checksums.standby).to.deep.equal(result.checksums.primary);
  });

  it("kept semi-sync active through the load, so acks waited for the replica", () => {
    expect(result.semiSyncHeld).to.equal(true);
    expect(lines.join("\n")).to.match(/semi-sync active: Rpl_semi_sync_master_status=ON/);
  });

  it("measures failover and fallback and reports them in the summary line", () => {
    expect(result.failoverSeconds).to.be.greaterThan(0).and.lessThan(30);
    expect(result.fallbackSeconds).to.be.greaterThan(0).and.lessThan(60);
    const summary = JSON.parse(summaryLine(result));
    expect(Object.keys(summary)).to.deep.equal([
      "acknowledged",
      "lost",
      "failoverSeconds",
      "fallbackSeconds",
      "maxLagSeconds",
    ]);
    expect(summary.lost).to.equal(0);
  });

  it("cleans up: its temp directory is gone", () => {
    const m = /datadirs initialised under (\S+)/.exec(lines.join("\n"));
    expect(m, "the drill names its directory").to.not.equal(null);
    expect(fs.existsSync(m![1])).to.equal(false);
  });
});

describe("rehearse mysql: CLI", function () {
  this.timeout(180_000);
  it("refuses an unknown drill with exit 2 naming the drills", () => {
    const r = spawnSync("node", [REHEARSE, "sideways"], { encoding: "utf8" });
    expect(r.status).to.equal(2);
    expect(r.stderr).to.contain('unknown drill "sideways": expected one of mysql, backup');
    expect(r.stderr).not.to.match(/\n\s+at /);
  });
  it("refuses a bad flag with exit 2 naming the flag and the expectation", () => {
    const r = spawnSync("node", [REHEARSE, "mysql", "--writers", "0"], { encoding: "utf8" });
    expect(r.status).to.equal(2);
    expect(r.stderr).to.contain('--writers expects a whole number from 1 to 32, got "0"');
    expect(r.stdout).to.equal("");
  });
  it("parses its flags", () => {
    expect(parseMysqlDrillArgs(["--writers", "8", "--load-seconds", "5", "--keep"])).to.deep.equal({
      writers: 8,
      loadSeconds: 5,
      keep: true,
    });
    expect(() => parseMysqlDrillArgs(["--load-seconds"])).to.throw(
      /--load-seconds expects .* got nothing/,
    );
    expect(() => parseMysqlDrillArgs(["--fast"])).to.throw(/unknown flag "--fast"/);
  });
  it("--stack takes the stack's hastack:mysql settings, validated like the program does", () => {
    const root = PACKAGE_ROOT;
    const prod = parseYaml(fs.readFileSync(path.join(root, "Pulumi.prod.yaml"), "utf8")).config[
      "hastack:mysql"
    ];
    const s = stackMysqlSettings(root, "prod");
    expect(s).to.include({
      engine: prod.engine,
      semiSync: prod.semiSync,
      maxFailoverLagSeconds: prod.maxFailoverLagSeconds,
    });
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "hastack-rehearse-stack-"));
    try {
      fs.copyFileSync(path.join(root, "Pulumi.yaml"), path.join(dir, "Pulumi.yaml"));
      const doc = parseYaml(fs.readFileSync(path.join(root, "Pulumi.prod.yaml"), "utf8"));
      doc.config["hastack:mysql"].maxFailoverLagSeconds = "soon";
      fs.writeFileSync(path.join(dir, "Pulumi.bad.yaml"), stringifyYaml(doc));
      expect(() => stackMysqlSettings(dir, "bad")).to.throw(
        /hastack:mysql\.maxFailoverLagSeconds must be a number/,
      );
      expect(() => stackMysqlSettings(dir, "missing")).to.throw(
        /no stack file .*Pulumi\.missing\.yaml/,
      );
      expect(() => stackMysqlSettings(dir, "../etc")).to.throw(/--stack expects a stack name/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("names the Debian package of a missing binary instead of installing it", () => {
    REQUIRED_BINARIES["hastack-no-such-daemon"] = "mariadb-server";
    try {
      expect(() => requireBinaries()).to.throw(
        /missing hastack-no-such-daemon \(Debian package mariadb-server\).*installs nothing/,
      );
    } finally {
      delete REQUIRED_BINARIES["hastack-no-such-daemon"];
    }
    expect(() => requireBinaries()).not.to.throw();
  });
});

describe("mysql scripts on real MariaDB: failover safety checks", function () {
  this.timeout(120_000);
  let pair: LoopbackPair;
  before(async () => {
    pair = await bootstrappedPair();
  });
  after(async () => pair?.destroy());

  it("bootstrap is idempotent: a second run changes nothing", async () => {
    const r = await pair.runScript("bootstrap", S);
    expect(r.code, r.stderr).to.equal(0);
    expect(r.stderr).to.contain("already replicating");
  });

  it("refuses a standby lagging beyond maxFailoverLagSeconds, changing nothing", async () => {
    await pair.sql(S, "STOP SLAVE; CHANGE MASTER TO MASTER_DELAY = 30; START SLAVE");
    await pair.sql(P, "INSERT INTO app.t VALUES (10, 'delayed')");
    await new Promise((r) => setTimeout(r, 2500));
    const r = await pair.runScript("failover", S, { HASTACK_MAX_LAG_SECONDS: "1" });
    refusedWith(
      r,
      /the standby lags [2-9]s behind the primary \(bound: hastack:mysql\.maxFailoverLagSeconds = 1s\)/,
    );
    expect(await readOnly(pair, S)).to.equal("1");
    expect(await readOnly(pair, P)).to.equal("0");
    await pair.sql(S, "STOP SLAVE; CHANGE MASTER TO MASTER_DELAY = 0; START SLAVE");
    await caughtUp(pair, P, S);
  });

  it("refuses a standby whose replication stopped on an SQL error", async () => {
    // A row only the standby has, then the primary writes the same key: duplicate-key stop.
    await pair.sql(S, "SET SESSION sql_log_bin = 0; INSERT INTO app.t VALUES (20, 'standby only')");
    await pair.sql(P, "INSERT INTO app.t VALUES (20, 'primary')");
    for (let i = 0; i < 50 && (await pair.replicaStatus(S)).Last_SQL_Errno === "0"; i++) {
      await new Promise((r) => setTimeout(r, 100));
    }
    const r = await pair.runScript("failover", S);
    refusedWith(r, /replication stopped with SQL error 1062/);
    expect(await readOnly(pair, S)).to.equal("1");
    await pair.sql(S, "SET SESSION sql_log_bin = 0; DELETE FROM app.t WHERE id = 20; START SLAVE");
    await caughtUp(pair, P, S);
  });

  it("a planned failover (primary alive) fences the primary, takes its last writes and promotes", async () => {
    await pair.sql(P, "INSERT INTO app.t VALUES (30, 'last before failover')");
    const r = await pair.runScript("failover", S);
    expect(r.code, r.stderr).to.equal(0);
    expect(r.stdout).to.match(/promoted mode=planned/);
    expect(await readOnly(pair, P)).to.equal("1");
    expect(await readOnly(pair, S)).to.equal("0");
    expect((await pair.sql(S, "SELECT v FROM app.t WHERE id = 30")).trim()).to.equal(
      "last before failover",
    );
    expect(await pair.replicaStatus(S)).to.deep.equal({});
    expect(fs.readFileSync(pair.servers[S].roleCnf, "utf8")).to.match(/^read_only = OFF$/m);
  });

  it("failover is idempotent on the promoted side", async () => {
    const r = await pair.runScript("failover", S);
    expect(r.code, r.stderr).to.equal(0);
    expect(r.stderr).to.contain("already the writable primary: nothing to do");
  });

  it("fallback refuses when both sides are writable (split brain)", async () => {
    await pair.sql(P, "SET GLOBAL read_only = OFF");
    const r = await pair.runScript("fallback", P);
    refusedWith(r, /both servers are writable \(split brain\)/);
    await pair.sql(P, "SET GLOBAL read_only = ON");
  });

  it("rejoin refuses to demote the serving side while its peer is still read-only", async () => {
    const r = await pair.runScript("rejoin", S);
    refusedWith(r, /the peer 127\.0\.0\.1 is read-only, so it is not the active side yet/);
    expect(await readOnly(pair, S)).to.equal("0");
  });

  it("fallback + rejoin restore the original roles with identical data", async () => {
    await pair.sql(S, "INSERT INTO app.t VALUES (35, 'while failed over')");
    const f = await pair.runScript("fallback", P);
    expect(f.code, f.stderr).to.equal(0);
    expect(f.stderr).to.contain("step 3: fenced 127.0.0.1");
    const r = await pair.runScript("rejoin", S);
    expect(r.code, r.stderr).to.equal(0);
    expect(await readOnly(pair, P)).to.equal("0");
    expect(await readOnly(pair, S)).to.equal("1");
    await pair.sql(P, "INSERT INTO app.t VALUES (40, 'after fallback')");
    await caughtUp(pair, P, S);
    expect(await pair.checksums(S)).to.deep.equal(await pair.checksums(P));
    expect(await pair.statusVar(P, "Rpl_semi_sync_master_status")).to.equal("ON");
  });
});

describe("mysql scripts on real MariaDB: a diverged server is refused, then rebuilt on request", function () {
  this.timeout(120_000);
  let pair: LoopbackPair;
  before(async () => {
    pair = await bootstrappedPair();
  });
  after(async () => pair?.destroy());

  it("rejoin refuses a standby holding transactions the primary never received", async () => {
    // An errant write on the standby (binlogged under its own server_id), then more primary writes.
    await pair.sql(S, "SET GLOBAL read_only = OFF; INSERT INTO app.t VALUES (100, 'errant')");
    await pair.sql(P, "INSERT INTO app.t VALUES (3, 'p'), (4, 'p')");
    await pair.sql(P, "INSERT INTO app.t VALUES (5, 'p')");
    await pair.sql(S, "STOP SLAVE; RESET SLAVE ALL");
    const r = await pair.runScript("rejoin", S);
    refusedWith(r, /history diverged from 127\.0\.0\.1 .*1236.*HASTACK_REBUILD=1/);
    expect(await readOnly(pair, S)).to.equal("1");
  });

  it("with HASTACK_REBUILD=1 it re-clones from the primary and replicates again", async () => {
    const r = await pair.runScript("rejoin", S, { HASTACK_REBUILD: "1" });
    expect(r.code, r.stderr).to.equal(0);
    expect(r.stderr).to.contain("re-cloning from the peer");
    await pair.sql(P, "INSERT INTO app.t VALUES (6, 'p')");
    await caughtUp(pair, P, S);
    expect(await pair.checksums(S)).to.deep.equal(await pair.checksums(P));
    expect((await pair.sql(S, "SELECT COUNT(*) FROM app.t WHERE id = 100")).trim()).to.equal("0");
  });
});

describe("mysql scripts on real MariaDB: unplanned failover and fallback after a crash", function () {
  this.timeout(120_000);
  let pair: LoopbackPair;
  before(async () => {
    pair = await bootstrappedPair();
  });
  after(async () => pair?.destroy());

  it("fallback refuses while the active side is unreachable, changing nothing", async () => {
    await pair.kill(P);
    const f = await pair.runScript("failover", S);
    expect(f.code, f.stderr).to.equal(0);
    expect(f.stdout).to.match(/promoted mode=unplanned lagSeconds=\d+(\.\d)?/);
    await pair.start(P, S);
    expect(await readOnly(pair, P)).to.equal("1");
    await pair.kill(S);
    const r = await pair.runScript("fallback", P);
    refusedWith(r, /the active side 127\.0\.0\.1:\d+ is unreachable/);
    expect(await readOnly(pair, P)).to.equal("1");
  });

  it("after the standby is back, fallback and rejoin swap the roles back", async () => {
    await pair.start(S, S);
    expect(await readOnly(pair, S)).to.equal("0");
    await pair.sql(S, "INSERT INTO app.t VALUES (50, 'failed over')");
    const r = await pair.runScript("fallback", P);
    expect(r.code, r.stderr).to.equal(0);
    const j = await pair.runScript("rejoin", S);
    expect(j.code, j.stderr).to.equal(0);
    expect((await pair.sql(P, "SELECT v FROM app.t WHERE id = 50")).trim()).to.equal("failed over");
    await caughtUp(pair, P, S);
    expect(await pair.checksums(S)).to.deep.equal(await pair.checksums(P));
  });
});
