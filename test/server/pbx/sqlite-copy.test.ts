// hastack-pbx-sqlite-copy against real sqlite3 (issue 16): a writer commits continuously while
// copies are taken; every copy must pass PRAGMA integrity_check and hold a consistent prefix of
// the writes (rows 1..n and the counter row of the same transaction, nothing half-written).
import { expect } from "chai";
import { ChildProcess, spawn } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { SERVER_DIR } from "../../../components/server-files";
import { requireTools, run } from "../../../lib/rehearse/backup";

const SCRIPT = path.join(SERVER_DIR, "pbx", "hastack-pbx-sqlite-copy.sh");

// Each transaction inserts row n (a 4 KiB blob, so pages keep changing) and sets meta.last = n;
// the writer pauses 2 ms between commits (hundreds of commits a second, far above what Asterisk
// writes to astdb). Without any pause a rollback-journal writer starves readers outright on a
// loaded machine: the copy then fails, bounded and loudly, which is the script's job but not what
// this test measures.
const WRITER = `
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], timeout=30, isolation_level=None)
db.execute("PRAGMA journal_mode=DELETE")
db.execute("CREATE TABLE IF NOT EXISTS astdb (id INTEGER PRIMARY KEY, key TEXT, value BLOB)")
db.execute("CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, last INTEGER)")
db.execute("INSERT OR IGNORE INTO meta VALUES ('last', 0)")
n = 0
while True:
    n += 1
    db.execute("BEGIN IMMEDIATE")
    db.execute("INSERT INTO astdb VALUES (?, ?, randomblob(4096))", (n, "/CF/%d" % n))
    db.execute("UPDATE meta SET last = ? WHERE k = 'last'", (n,))
    db.execute("COMMIT")
    time.sleep(0.002)
`;

describe("hastack-pbx-sqlite-copy (real sqlite3, a writer committing throughout)", function () {
  this.timeout(180_000);
  let tmp: string;
  let writer: ChildProcess | undefined;

  before(() => requireTools({ sqlite3: "sqlite3", python3: "python3" }));
  beforeEach(() => (tmp = fs.mkdtempSync(path.join(os.tmpdir(), "hastack-sqlite-"))));
  afterEach(() => {
    writer?.kill("SIGKILL");
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  const sql = async (db: string, q: string): Promise<string> => {
    const r = await run("sqlite3", ["-readonly", db, q], { deadline: Date.now() + 30_000 });
    expect(r.code, r.stderr).to.equal(0);
    return r.stdout.trim();
  };

  it("every copy is whole and a consistent prefix, and copies advance with the writer", async () => {
    const src = path.join(tmp, "astdb.sqlite3");
    fs.writeFileSync(path.join(tmp, "writer.py"), WRITER);
    writer = spawn("/usr/bin/python3", [path.join(tmp, "writer.py"), src], { stdio: "ignore" });
    // Bounded wait until the writer has committed something.
    const until = Date.now() + 60_000;
    while (Date.now() < until) {
      if (fs.existsSync(src)) {
        const r = await run("sqlite3", ["-readonly", src, "SELECT last FROM meta"], {
          deadline: Date.now() + 10_000,
        });
        if (r.code === 0 && Number(r.stdout.trim()) > 100) {
          break;
        }
      }
      await new Promise((res) => setTimeout(res, 100));
    }
    const seen: number[] = [];
    for (let i = 0; i < 8; i++) {
      const dest = path.join(tmp, "copies", `astdb-${i}.sqlite3`);
      // The script's own bound: 5 attempts of up to 20 s each plus 15 s of pauses.
      const r = await run("bash", [SCRIPT, src, dest], { deadline: Date.now() + 150_000 });
      expect(r.code, r.stderr).to.equal(0);
      expect(fs.existsSync(`${dest}.part`), "no temporary left").to.equal(false);
      expect(await sql(dest, "PRAGMA integrity_check;")).to.equal("ok");
      const [count, min, max, last] = (
        await sql(dest, "SELECT count(*), min(id), max(id), (SELECT last FROM meta) FROM astdb;")
      )
        .split("|")
        .map(Number);
      // A prefix: rows 1..n with no gap, and the counter from the same transaction.
      expect({ count, min, max }, `copy ${i}`).to.deep.equal({ count: last, min: 1, max: last });
      seen.push(last);
    }
    expect(writer.exitCode, "the writer kept writing throughout").to.equal(null);
    expect(seen[seen.length - 1], `copies advance: ${seen.join(", ")}`).to.be.greaterThan(seen[0]);
  });

  it("refuses a source it cannot read and leaves DEST untouched", async () => {
    const dest = path.join(tmp, "dest.sqlite3");
    fs.writeFileSync(dest, "previous copy");
    const r = await run("bash", [SCRIPT, path.join(tmp, "missing.sqlite3"), dest], {
      deadline: Date.now() + 30_000,
    });
    expect(r.code).to.equal(1);
    expect(r.stderr).to.contain("cannot read");
    expect(fs.readFileSync(dest, "utf8")).to.equal("previous copy");
  });
});
