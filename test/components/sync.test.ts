// The PBX sync, for real: the rendered hastack-pbx-sync script runs real rsync and real sqlite3
// against a "peer" directory, with the env rendered from FreePBX's replicated set (issue 16).
// Only ssh is replaced, by a shim that hands the far side to rrsync exactly as the peer's
// authorized_keys forced command does (`rrsync -wo /`).
import { expect } from "chai";
import { ChildProcess, spawn } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import {
  PBX_ACTIVATE_SOURCE,
  PBX_SQLITE_COPY_SOURCE,
  PBX_SYNC_SCRIPT_SOURCE,
  renderPbxActivateEnv,
  renderPbxSyncEnv,
} from "../../components/pbx";
import { PBX_COPIES_DIR, replicatedSet, syncPlan } from "../../components/pbx-replicated-set";
import { SERVER_DIR } from "../../components/server-files";
import {
  HASTACK_LIB_FILE,
  RRSYNC_SHIM,
  compareTrees,
  hashTree,
  MariadbServer,
  requireTools,
  run,
  startMariadb,
} from "../../lib/rehearse/backup";

function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
}

const PLAN = syncPlan(replicatedSet("freepbx"));
const COPIES = PBX_COPIES_DIR.slice(1);
const ASTDB = "var/lib/asterisk/astdb.sqlite3";
// What the source holds that the live push must not carry: the table's excludes (scratch
// space, call files, the live astdb) and this server's own copies.
const EXCLUDES = [...PLAN.excludes, `/${COPIES}`];

// Each transaction inserts row n (a 4 KiB blob) and sets meta.last = n (as in sqlite-copy.test.ts).
const WRITER = `
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], timeout=30, isolation_level=None)
n = db.execute("SELECT last FROM meta").fetchone()[0]
while True:
    n += 1
    db.execute("BEGIN IMMEDIATE")
    db.execute("INSERT INTO astdb VALUES (?, ?, randomblob(4096))", (n, "/CF/%d" % n))
    db.execute("UPDATE meta SET last = ? WHERE k = 'last'", (n,))
    db.execute("COMMIT")
    if n % 50 == 0:
        time.sleep(0.01)
`;

describe("PBX sync (real rsync through rrsync -wo)", function () {
  this.timeout(120_000);
  let tmp: string;
  let src: string;
  let peer: string;
  let script: string;
  let children: ChildProcess[] = [];

  before(() => {
    requireTools({
      rsync: "rsync",
      rrsync: "rsync",
      python3: "python3",
      flock: "util-linux",
      sqlite3: "sqlite3",
    });
  });

  beforeEach(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), "hastack-sync-"));
    src = path.join(tmp, "pbx1");
    peer = path.join(tmp, "pbx2");
    fs.mkdirSync(peer);
    // The very file the stack installs, run in place.
    script = path.join(SERVER_DIR, PBX_SYNC_SCRIPT_SOURCE);
    fs.writeFileSync(path.join(tmp, "rsh-rrsync"), RRSYNC_SHIM, { mode: 0o755 });
    writeEnv("always");
    const put = (rel: string, content: string | Buffer): void => {
      fs.mkdirSync(path.dirname(path.join(src, rel)), { recursive: true });
      fs.writeFileSync(path.join(src, rel), content);
    };
    put("etc/asterisk/pjsip.conf", "[transport-udp]\ntype=transport\n");
    put("etc/asterisk/extensions.conf", "[from-internal]\n");
    put("etc/asterisk/old_trunk.conf", "[trunk-old]\n");
    put("var/spool/asterisk/voicemail/default/1001/INBOX/msg0000.wav", crypto.randomBytes(50_000));
    put("var/spool/asterisk/voicemail/default/1001/INBOX/msg0000.txt", "[message]\n");
    put("var/spool/asterisk/monitor/2024/05/17/out-1.wav", crypto.randomBytes(120_000));
    put("var/spool/asterisk/tmp/scratch", "x");
    put("var/spool/asterisk/outgoing/wakeup.call", "Channel: PJSIP/1001\n");
    put("var/lib/asterisk/moh/custom/hold.wav", crypto.randomBytes(40_000));
    put("var/lib/asterisk/agi-bin/route.agi", "#!/bin/sh\n");
    put("tftpboot/SEP001122334455.cnf.xml", "<device/>\n");
    put(
      "var/www/html/admin/modules/core/module.xml",
      "<module><version>17.0.1</version></module>\n",
    );
    const astdb = await run(
      "sqlite3",
      [
        path.join(src, ASTDB),
        "CREATE TABLE astdb (id INTEGER PRIMARY KEY, key TEXT, value BLOB);" +
          "CREATE TABLE meta (k TEXT PRIMARY KEY, last INTEGER);" +
          "INSERT INTO meta VALUES ('last', 0);",
      ],
      { deadline: Date.now() + 30_000 },
    );
    expect(astdb.code, astdb.stderr).to.equal(0);
  });

  afterEach(() => {
    for (const c of children) {
      if (c.exitCode === null && c.signalCode === null && c.pid) {
        try {
          process.kill(-c.pid, "SIGKILL");
        } catch {
          // already gone
        }
      }
    }
    children = [];
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  function writeEnv(activeCheck: "always" | "never"): void {
    fs.writeFileSync(
      path.join(tmp, "sync.env"),
      renderPbxSyncEnv({
        serviceName: "pbx.example.test",
        peer: "pbx2.example.test",
        peerSide: "standby",
        textfileDir: path.join(tmp, "metrics"),
        syncRoot: src,
        peerRoot: peer,
        activeCheck,
        rsyncRsh: `${path.join(tmp, "rsh-rrsync")} wo ${tmp}`,
        plan: PLAN,
        sqliteCopy: path.join(SERVER_DIR, PBX_SQLITE_COPY_SOURCE),
      }),
    );
  }

  const sync = (cmd: string, env: Record<string, string> = {}) =>
    run("bash", [script, cmd, path.join(tmp, "sync.env")], {
      env: { LOCK_FILE: path.join(tmp, "sync.lock"), ...env },
      deadline: Date.now() + 60_000,
    });

  /** The live directories match; the peer's copies are this server's, beside its live files. */
  function expectConverged(): void {
    const want = hashTree(src, EXCLUDES);
    const got = hashTree(peer, [`/${COPIES}`]);
    expect(compareTrees(want, got)).to.deep.equal([]);
    expect(fs.existsSync(path.join(peer, ASTDB)), "the live astdb is never rsynced").to.equal(
      false,
    );
    expect(
      compareTrees(
        hashTree(path.join(src, COPIES, "local"), []),
        hashTree(path.join(peer, COPIES, "peer"), []),
      ),
    ).to.deep.equal([]);
  }

  const sql = async (db: string, q: string): Promise<string> => {
    const r = await run("sqlite3", ["-readonly", db, q], { deadline: Date.now() + 30_000 });
    expect(r.code, r.stderr).to.equal(0);
    return r.stdout.trim();
  };

  it("copies config, voicemail and recordings but never tmp/ or call files", async () => {
    const r = await sync("sync");
    expect(r.code, r.stderr).to.equal(0);
    expectConverged();
    expect(fs.existsSync(path.join(peer, "var/spool/asterisk/outgoing/wakeup.call"))).to.equal(
      false,
    );
    expect(fs.existsSync(path.join(peer, "var/spool/asterisk/tmp/scratch"))).to.equal(false);
    expect(
      fs.readFileSync(path.join(tmp, "metrics", "hastack_replication_pbx.prom"), "utf8"),
    ).to.match(
      /^hastack_replication_last_success_timestamp_seconds\{service="pbx",side="standby"\} \d{10}\n$/,
    );
  });

  it("converges new, changed and deleted files", async () => {
    expect((await sync("sync")).code).to.equal(0);
    fs.writeFileSync(
      path.join(src, "etc/asterisk/pjsip.conf"),
      "[transport-tls]\ntype=transport\nprotocol=tls\n",
    );
    fs.rmSync(path.join(src, "etc/asterisk/old_trunk.conf"));
    fs.rmSync(path.join(src, "var/spool/asterisk/voicemail/default/1001/INBOX"), {
      recursive: true,
    });
    fs.mkdirSync(path.join(src, "var/spool/asterisk/monitor/2024/05/18"), { recursive: true });
    fs.writeFileSync(
      path.join(src, "var/spool/asterisk/monitor/2024/05/18/in-2.wav"),
      crypto.randomBytes(70_000),
    );
    const r = await sync("sync");
    expect(r.code, r.stderr).to.equal(0);
    expectConverged();
    expect(fs.existsSync(path.join(peer, "etc/asterisk/old_trunk.conf"))).to.equal(false);
    expect(fs.readFileSync(path.join(peer, "etc/asterisk/pjsip.conf"), "utf8")).to.contain(
      "protocol=tls",
    );
  });

  it("check fails (exit 3) while the peer differs; final pushes and then passes", async () => {
    const before = await sync("check");
    expect(before.code).to.equal(3);
    expect(before.stderr).to.contain("differs");
    const final = await sync("final");
    expect(final.code, final.stderr).to.equal(0);
    expect(final.stderr).to.contain("holds exactly what this server holds");
    expectConverged();
    expect((await sync("check")).code).to.equal(0);
  });

  it("does nothing on the server that is not active, so a recovered primary never overwrites", async () => {
    writeEnv("never");
    const r = await sync("sync");
    expect(r.code).to.equal(0);
    expect(r.stderr).to.contain("not the active PBX");
    expect(fs.readdirSync(peer)).to.deep.equal([]);
    expect(fs.existsSync(path.join(tmp, "metrics")), "no success metric without a push").to.equal(
      false,
    );
    // The reverse sync before a fallback is explicit and ignores the check.
    expect((await sync("final")).code).to.equal(0);
    expectConverged();
  });

  it("an interrupted sync keeps deletions and the partial file, and the next run resumes without loss", async () => {
    expect((await sync("sync")).code).to.equal(0);
    const bigRel = "var/spool/asterisk/monitor/2024/05/17/conference-long.wav";
    const size = 24 * 1024 * 1024;
    fs.writeFileSync(path.join(src, bigRel), crypto.randomBytes(size));
    fs.rmSync(path.join(src, "etc/asterisk/old_trunk.conf"));

    // ~2 MiB/s: the transfer takes ~12 s; stop it once a few MiB have arrived.
    const child = spawn("bash", [script, "sync", path.join(tmp, "sync.env")], {
      env: {
        ...process.env,
        HASTACK_LIB: HASTACK_LIB_FILE,
        LOCK_FILE: path.join(tmp, "sync.lock"),
        BWLIMIT: "2048",
      },
      detached: true,
      stdio: "ignore",
    });
    children.push(child);
    const exited = new Promise<void>((res) => child.once("exit", () => res()));
    const dir = path.dirname(path.join(peer, bigRel));
    const deadline = Date.now() + 30_000;
    let seen = 0;
    while (Date.now() < deadline && seen < 3 * 1024 * 1024) {
      await new Promise((r) => setTimeout(r, 100));
      const temps = fs.existsSync(dir)
        ? fs.readdirSync(dir).filter((f) => f.startsWith(".conference-long.wav."))
        : [];
      seen = temps.reduce((n, f) => Math.max(n, fs.statSync(path.join(dir, f)).size), 0);
    }
    expect(seen, "transfer never got going").to.be.greaterThan(3 * 1024 * 1024 - 1);
    process.kill(-child.pid!, "SIGTERM");
    await exited;
    // The far side (rrsync → rsync receiver) moves its temp file into .rsync-partial as it
    // exits; wait until every process of the group is gone.
    const gone = Date.now() + 15_000;
    while (Date.now() < gone && groupAlive(child.pid!)) {
      await new Promise((r) => setTimeout(r, 50));
    }

    const partial = path.join(dir, ".rsync-partial", "conference-long.wav");
    expect(fs.existsSync(partial), "partial file kept in .rsync-partial").to.equal(true);
    const partialSize = fs.statSync(partial).size;
    expect(partialSize).to.be.within(1, size - 1);
    expect(fs.existsSync(path.join(peer, bigRel)), "no half file under the real name").to.equal(
      false,
    );
    expect(
      fs.existsSync(path.join(peer, "etc/asterisk/old_trunk.conf")),
      "--delete-after: nothing deleted by an interrupted run",
    ).to.equal(true);

    const resumed = await sync("sync", { RSYNC_OPTS: "--stats" });
    expect(resumed.code, resumed.stderr).to.equal(0);
    expectConverged();
    expect(fs.existsSync(path.join(peer, "etc/asterisk/old_trunk.conf"))).to.equal(false);
    expect(fs.existsSync(partial)).to.equal(false);
    // The resumed run sent only what the partial file lacked (plus delta overhead).
    const literal = Number(
      /Literal data: ([\d,]+) bytes/.exec(resumed.stdout)?.[1].replace(/,/g, ""),
    );
    expect(literal).to.be.greaterThan(0);
    expect(literal).to.be.at.most(size - partialSize + 256 * 1024);
  });

  it("astdb written throughout: every shipped copy is whole and a consistent prefix, never the live file", async () => {
    fs.writeFileSync(path.join(tmp, "writer.py"), WRITER);
    const writer = spawn("/usr/bin/python3", [path.join(tmp, "writer.py"), path.join(src, ASTDB)], {
      stdio: "ignore",
      detached: true,
    });
    children.push(writer);
    const shipped = path.join(peer, COPIES, "peer", ASTDB);
    const seen: number[] = [];
    for (let i = 0; i < 5; i++) {
      const r = await sync("sync");
      expect(r.code, r.stderr).to.equal(0);
      expect(await sql(shipped, "PRAGMA integrity_check;")).to.equal("ok");
      const [count, min, max, last] = (
        await sql(shipped, "SELECT count(*), min(id), max(id), (SELECT last FROM meta) FROM astdb;")
      )
        .split("|")
        .map(Number);
      if (last > 0) {
        expect({ count, min, max }, `sync ${i}`).to.deep.equal({ count: last, min: 1, max: last });
      }
      seen.push(last);
      expect(fs.existsSync(path.join(peer, ASTDB)), "live astdb not pushed").to.equal(false);
    }
    expect(writer.exitCode, "the writer kept writing throughout").to.equal(null);
    expect(seen[seen.length - 1], `copies advance: ${seen.join(", ")}`).to.be.greaterThan(0);
    expect(seen[seen.length - 1]).to.be.greaterThan(seen[0]);
  });

  it("a copy that cannot be made fails the sync before anything is pushed", async () => {
    fs.writeFileSync(path.join(src, ASTDB), "not a database");
    // Its five attempts without the 1 + 2 + 3 + 4 + 5 s between them.
    const r = await sync("sync", { COPY_RETRY_SECONDS: "0" });
    expect(r.code).to.not.equal(0);
    expect(r.stderr).to.contain("consistent copy of /var/lib/asterisk/astdb.sqlite3 failed");
    expect(fs.readdirSync(peer)).to.deep.equal([]);
    expect(fs.existsSync(path.join(tmp, "metrics")), "no success metric").to.equal(false);
  });
});

// Elastix end to end (issue 16): its SQLite databases and its local MySQL database travel as
// consistent copies with the sync, and the activation on the other server (the switch) installs
// them: afterwards that server holds what the first one held at the sync.
describe("Elastix sync → switch (real rsync, sqlite3 and two MariaDB servers)", function () {
  this.timeout(300_000);
  let tmp: string;
  const servers: MariadbServer[] = [];
  const elastix = syncPlan(replicatedSet("elastix"));

  before(() =>
    requireTools({
      rsync: "rsync",
      rrsync: "rsync",
      sqlite3: "sqlite3",
      mariadbd: "mariadb-server",
    }),
  );
  beforeEach(() => (tmp = fs.mkdtempSync(path.join(os.tmpdir(), "hastack-elastix-"))));
  afterEach(async () => {
    for (const s of servers.splice(0)) {
      await s.stop();
    }
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  it("the standby ends up with the primary's Elastix databases and FreePBX database as of the sync", async () => {
    const src = path.join(tmp, "pbx1");
    const peer = path.join(tmp, "pbx2");
    fs.mkdirSync(path.join(src, "etc/asterisk"), { recursive: true });
    fs.mkdirSync(path.join(src, "var/www/db"), { recursive: true });
    fs.mkdirSync(peer);
    fs.writeFileSync(path.join(src, "etc/asterisk/extensions.conf"), "[from-internal]\n");
    fs.writeFileSync(path.join(tmp, "rsh-rrsync"), RRSYNC_SHIM, { mode: 0o755 });
    const sqlite = async (db: string, q: string): Promise<string> => {
      const r = await run("sqlite3", [db, q], { deadline: Date.now() + 30_000 });
      expect(r.code, r.stderr).to.equal(0);
      return r.stdout.trim();
    };
    for (const [db, row] of [
      ["acl.db", "admin"],
      ["settings.db", "language"],
    ]) {
      await sqlite(
        path.join(src, "var/www/db", db),
        `CREATE TABLE t (v TEXT); INSERT INTO t VALUES ('${row}');`,
      );
    }
    const [local, standbyDb] = await Promise.all(
      ["local", "standby-db"].map((d) =>
        startMariadb({ dir: path.join(tmp, d), binlog: false, deadline: Date.now() + 180_000 }),
      ),
    );
    servers.push(local, standbyDb);
    await local.sql(
      "CREATE DATABASE asterisk; CREATE TABLE asterisk.users (extension VARCHAR(20) PRIMARY KEY, name VARCHAR(50));" +
        "INSERT INTO asterisk.users VALUES ('1001', 'Reception'), ('1002', 'Sales');",
    );
    await standbyDb.sql(
      "CREATE DATABASE asterisk; CREATE TABLE asterisk.users (extension VARCHAR(20) PRIMARY KEY, name VARCHAR(50));" +
        "INSERT INTO asterisk.users VALUES ('1001', 'Yesterday');",
    );

    fs.writeFileSync(
      path.join(tmp, "sync.env"),
      renderPbxSyncEnv({
        serviceName: "pbx.example.test",
        peer: "pbx2.example.test",
        peerSide: "standby",
        textfileDir: path.join(tmp, "metrics"),
        syncRoot: src,
        peerRoot: peer,
        activeCheck: "always",
        rsyncRsh: `${path.join(tmp, "rsh-rrsync")} wo ${tmp}`,
        plan: elastix,
        sqliteCopy: path.join(SERVER_DIR, PBX_SQLITE_COPY_SOURCE),
        dumpOpts: `--no-defaults --socket=${local.socket} -uroot`,
      }),
    );
    const synced = await run(
      "bash",
      [path.join(SERVER_DIR, PBX_SYNC_SCRIPT_SOURCE), "sync", path.join(tmp, "sync.env")],
      {
        env: { LOCK_FILE: path.join(tmp, "sync.lock") },
        deadline: Date.now() + 120_000,
      },
    );
    expect(synced.code, synced.stderr).to.equal(0);
    // Changes after the sync are not on the standby: the RPO is the sync interval.
    await local.sql("INSERT INTO asterisk.users VALUES ('1003', 'After the sync')");

    // The switch: the standby's activation installs what the primary shipped. Elastix's web UI
    // (httpd, which writes /var/www/db) is a stub here that logs when it is stopped and started,
    // with the settings database it sees then.
    const web = path.join(tmp, "web-ui");
    fs.writeFileSync(
      web,
      `#!/bin/sh\necho "$1 $(sqlite3 -readonly ${peer}/var/www/db/settings.db 'SELECT v FROM t' 2>/dev/null || echo none)" >> ${tmp}/web-ui.log\n`,
      { mode: 0o755 },
    );
    fs.writeFileSync(
      path.join(tmp, "activate.env"),
      renderPbxActivateEnv({
        flavour: "elastix",
        plan: elastix,
        root: peer,
        asteriskStop: "true",
        asteriskStart: "true",
        webStop: `${web} stop`,
        webStart: `${web} start`,
        dbClient: `mariadb --no-defaults --socket=${standbyDb.socket} -uroot`,
      }),
    );
    const activated = await run(
      "bash",
      [path.join(SERVER_DIR, PBX_ACTIVATE_SOURCE), path.join(tmp, "activate.env")],
      {
        deadline: Date.now() + 120_000,
      },
    );
    expect(activated.code, activated.stderr).to.equal(0);
    // Stopped before the shipped databases were installed, started once they were.
    expect(fs.readFileSync(path.join(tmp, "web-ui.log"), "utf8")).to.equal(
      "stop none\nstart language\n",
    );
    for (const [db, row] of [
      ["acl.db", "admin"],
      ["settings.db", "language"],
    ]) {
      const installed = path.join(peer, "var/www/db", db);
      expect(await sqlite(installed, "PRAGMA integrity_check;")).to.equal("ok");
      expect(await sqlite(installed, "SELECT v FROM t")).to.equal(row);
    }
    expect(
      (await standbyDb.sql("SELECT extension, name FROM asterisk.users ORDER BY extension")).trim(),
    ).to.equal("1001\tReception\n1002\tSales");
    expect(fs.readFileSync(path.join(peer, "etc/asterisk/extensions.conf"), "utf8")).to.equal(
      "[from-internal]\n",
    );
  });
});
