// `npm run rehearse -- backup` end to end: the drill's library, for real (mariadbd, rsync,
// rrsync), and proof that it can fail — a snapshot altered on the standby NAS is reported.
import { expect } from "chai";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { spawn } from "child_process";
import { parseBackupDrillArgs, rehearseBackup, run } from "../../../lib/rehearse/backup";
import { PACKAGE_ROOT } from "../../../lib/package-root";

const REHEARSE = path.join(PACKAGE_ROOT, "dist", "scripts", "rehearse.js");

describe("rehearseBackup (real MariaDB, rsync, standby NAS, fresh restore)", function () {
  this.timeout(240_000);

  it("restores every job from the standby NAS with zero mismatches", async () => {
    const work = fs.mkdtempSync(path.join(os.tmpdir(), "hastack-rb-test-"));
    const lines: string[] = [];
    const s = await rehearseBackup({
      workDir: work,
      rows: 2000,
      log: (l) => lines.push(l),
      timeoutSeconds: 200,
    });
    expect(s.problems).to.deep.equal([]);
    expect(s.ok).to.equal(true);
    expect(s.mismatches).to.equal(0);
    // 2000 CDRs + 200 added between the rounds + 300 app documents.
    expect(s.rows).to.equal(2500);
    expect(s.jobs.map((j) => j.name)).to.deep.equal([
      "mail-maildirs",
      "mysql-dump",
      "pbx-config",
      "pbx-spool",
      "pbx-lib",
      "pbx-provisioning",
      "pbx-webroot",
      "pbx-copies",
    ]);
    expect(
      lines.some((l) => /pbx-copies: restored .*astdb\.sqlite3 passes integrity_check/.test(l)),
    ).to.equal(true);
    expect(s.files).to.be.greaterThan(250);
    expect(s.bytes).to.be.greaterThan(4_000_000);
    expect(lines.some((l) => l.includes("checksums match"))).to.equal(true);
    expect(fs.existsSync(work), "work directory removed").to.equal(false);
  });

  it("reports a mismatch when a snapshot on the standby NAS was altered", async () => {
    const s = await rehearseBackup({
      rows: 200,
      mailboxes: 2,
      messagesPerMailbox: 5,
      recordings: 2,
      timeoutSeconds: 200,
      afterReplication: (nas) => {
        const dir = path.join(nas.standby, "pbx-config", "latest", "data");
        fs.appendFileSync(path.join(dir, "extensions.conf"), "; tampered\n");
      },
    });
    expect(s.ok).to.equal(false);
    expect(s.mismatches).to.be.greaterThan(0);
    expect(s.problems.join("\n")).to.match(/pbx-config.*(MANIFEST|does not match)/);
  });
});

describe("rehearse backup CLI", function () {
  this.timeout(420_000);

  const good: [string[], object][] = [
    [[], {}],
    [["--rows", "200", "--keep"], { rows: 200, keep: true }],
    [["--timeout", "90"], { timeoutSeconds: 90 }],
    [["--help"], { help: true }],
  ];
  for (const [args, want] of good) {
    it(`parses ${JSON.stringify(args)}`, () =>
      expect(parseBackupDrillArgs(args)).to.deep.equal(want));
  }
  const bad: [string[], RegExp][] = [
    [["--rows", "lots"], /--rows must be a whole number from 1 to 1000000, got "lots"/],
    [["--rows"], /--rows needs a value/],
    [["--timeout", "0"], /--timeout must be a whole number/],
    [["--fast"], /unknown flag "--fast"/],
  ];
  for (const [args, want] of bad) {
    it(`refuses ${JSON.stringify(args)}`, () =>
      expect(() => parseBackupDrillArgs(args)).to.throw(want));
  }

  it("bad flags: exit 2, a message naming the flag, usage, no stack trace", async () => {
    const r = await run("node", [REHEARSE, "backup", "--rows", "lots"], {
      deadline: Date.now() + 30_000,
    });
    expect(r.code).to.equal(2);
    expect(r.stderr).to.contain('--rows must be a whole number from 1 to 1000000, got "lots"');
    expect(r.stderr).to.contain("usage: npm run rehearse -- backup");
    expect(r.stderr).not.to.match(/\n\s+at /);
  });

  it("passes through the dispatcher: exit 0, last stdout line JSON with mismatches 0", async () => {
    const r = await run("node", [REHEARSE, "backup", "--rows", "300"], {
      deadline: Date.now() + 400_000,
    });
    expect(r.code, r.stderr).to.equal(0);
    const last = r.stdout.trim().split("\n").pop()!;
    const summary = JSON.parse(last);
    expect(summary).to.include({ drill: "backup", ok: true, mismatches: 0, rows: 800 });
    expect(r.stderr).to.contain("rehearse backup: PASSED");
  });

  for (const stage of ["source database:", "round 1: mail-maildirs"]) {
    it(`SIGINT after "${stage}" stops its MariaDB and removes its work directory (exit 130)`, async () => {
      const work = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "hastack-rb-int-")), "w");
      const child = spawn("node", [REHEARSE, "backup", "--work-dir", work], {
        stdio: ["ignore", "pipe", "pipe"],
      });
      let stderr = "";
      child.stderr.on("data", (d) => (stderr += d));
      const exited = new Promise<number | null>((res) => child.once("exit", (code) => res(code)));
      const pidFile = path.join(work, "db-source", "mysqld.pid");
      const deadline = Date.now() + 60_000;
      while (
        Date.now() < deadline &&
        !(stderr.includes("source database:") && fs.existsSync(pidFile))
      ) {
        await new Promise((r) => setTimeout(r, 50));
      }
      expect(fs.existsSync(pidFile), stderr).to.equal(true);
      const pid = Number(fs.readFileSync(pidFile, "utf8").trim());
      child.kill("SIGINT");
      expect(await exited).to.equal(130);
      expect(fs.existsSync(work), "work directory removed").to.equal(false);
      let alive = true;
      for (let i = 0; i < 100 && alive; i++) {
        try {
          process.kill(pid, 0);
          await new Promise((r) => setTimeout(r, 50));
        } catch {
          alive = false;
        }
      }
      expect(alive, `mariadbd ${pid} still running`).to.equal(false);
      fs.rmSync(path.dirname(work), { recursive: true, force: true });
    });
  }
});
