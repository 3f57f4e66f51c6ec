// `--apply` and `--drills` on a kept stack hold the machine's rehearsal lock (issue 12): the one a
// boot takes (lock.ts, HASTACK_REHEARSAL_LOCK), for their whole run. A run that finds it taken is
// refused naming the holder, `--lock-wait S` waits for it, and the drills' boot of a stack inside
// their run takes it again without deadlocking on itself.
import { expect } from "chai";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { spawn } from "child_process";
import { DrillUsageError } from "../../../lib/rehearse/drill";
import { RehearsalLockBusy, takeLock } from "../../../lib/rehearse/stack/lock";
import { parseDrillsArgs } from "../../../lib/rehearse/stack/drills";
import { holdingRehearsalLock, parseApplyArgs } from "../../../lib/rehearse/stack/apply-run";

const CLI = path.join(__dirname, "../../../scripts/rehearse.js");
const LOCK_JS = path.join(__dirname, "../../../lib/rehearse/stack/lock.js");

/** Another process trying the lock once (no wait): "took" or the refusal's message. */
function tryFromAnotherProcess(file: string): Promise<string> {
  const script = `require(${JSON.stringify(LOCK_JS)}).takeLock(${JSON.stringify(file)}, "probe", 0)
    .then((l) => { l.release(); console.log("took"); process.exit(0); },
          (e) => { console.log(e.message); process.exit(0); });`;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["-e", script], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.on("error", reject);
    child.on("close", () => resolve(out.trim()));
  });
}

/** The rehearse CLI with the lock and state directory of this test; its exit code and stderr. */
function cli(
  args: string[],
  env: Record<string, string>,
): Promise<{ code: number | null; stderr: string; stdout: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, ...env },
    });
    let stderr = "";
    let stdout = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stderr, stdout }));
  });
}

describe("rehearse apply/drills: --lock-wait", () => {
  it("both take --lock-wait S", () => {
    expect(parseApplyArgs(["--apply", "b.json", "a.json", "--lock-wait", "30"]).lockWait).to.equal(
      30,
    );
    expect(parseDrillsArgs(["--drills", "mysql", "--lock-wait", "0"]).lockWait).to.equal(0);
    expect(parseDrillsArgs(["--drills", "mysql"]).lockWait).to.equal(0);
  });
  for (const v of ["-1", "1.5", "soon", "--keep", undefined]) {
    it(`refuses --lock-wait ${String(v)}`, () => {
      const tail = v === undefined ? [] : [v];
      const message = /--lock-wait must be a whole number of seconds, 0 or more, got /;
      expect(() => parseApplyArgs(["--apply", "b", "a", "--lock-wait", ...tail])).to.throw(
        DrillUsageError,
        message,
      );
      expect(() => parseDrillsArgs(["--drills", "mysql", "--lock-wait", ...tail])).to.throw(
        DrillUsageError,
        message,
      );
    });
  }
});

describe("rehearse apply/drills: the rehearsal lock for the whole run", function () {
  this.timeout(120_000);
  let dir: string;
  beforeEach(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), "hastack-apply-lock-"))));
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it("is held while the run works and free after it, also when it fails", async () => {
    const file = path.join(dir, "lock");
    const during = await holdingRehearsalLock(
      "prod",
      0,
      () => undefined,
      () => tryFromAnotherProcess(file),
      file,
    );
    expect(during).to.contain(`holds ${file}: pid ${process.pid} (stack prod`);
    expect(await tryFromAnotherProcess(file)).to.equal("took");
    let failed: Error | undefined;
    await holdingRehearsalLock(
      "prod",
      0,
      () => undefined,
      () => Promise.reject(new Error("a drill failed")),
      file,
    ).catch((e: Error) => (failed = e));
    expect(failed?.message).to.equal("a drill failed");
    expect(await tryFromAnotherProcess(file)).to.equal("took");
  });

  it("is not re-entrant unless taken shared: two plain takers in one process exclude", async () => {
    const file = path.join(dir, "lock");
    const first = await takeLock(file, "prod", 0);
    let err: Error | undefined;
    await takeLock(file, "prod", 0).catch((e: Error) => (err = e));
    first.release();
    expect(err).to.be.instanceOf(RehearsalLockBusy);
  });

  it("refuses when another holds it, naming the holder", async () => {
    const file = path.join(dir, "lock");
    const other = await takeLock(file, "someone-else", 0);
    let ran = false;
    let err: Error | undefined;
    await holdingRehearsalLock(
      "prod",
      0,
      () => undefined,
      async () => {
        ran = true;
      },
      file,
    ).catch((e: Error) => (err = e));
    other.release();
    expect(ran).to.equal(false);
    expect(err).to.be.instanceOf(RehearsalLockBusy);
    expect(err!.message).to.contain(`pid ${process.pid} (stack someone-else`);
  });

  it("is re-entrant in one process: a boot inside a drills run takes it again", async () => {
    const file = path.join(dir, "lock");
    const drills = await takeLock(file, "prod", 0, () => undefined, true);
    // What the boot does inside the drills' run (index.ts takes LOCK_FILE itself, not shared).
    const boot = await takeLock(file, "prod", 0);
    boot.release();
    expect(await tryFromAnotherProcess(file)).to.contain(`pid ${process.pid} (stack prod`);
    boot.release(); // twice: no effect
    expect(await tryFromAnotherProcess(file)).to.contain(`pid ${process.pid} (stack prod`);
    drills.release();
    expect(await tryFromAnotherProcess(file)).to.equal("took");
  });

  it("is not re-entrant unless taken shared: two plain takers in one process exclude", async () => {
    const file = path.join(dir, "lock");
    const first = await takeLock(file, "prod", 0);
    let err: Error | undefined;
    await takeLock(file, "prod", 0).catch((e: Error) => (err = e));
    first.release();
    expect(err).to.be.instanceOf(RehearsalLockBusy);
  });

  const root = process.getuid?.() === 0;
  (root ? describe : describe.skip)("through the CLI (root)", () => {
    const env = (): Record<string, string> => ({
      HASTACK_REHEARSAL_LOCK: path.join(dir, "lock"),
      HASTACK_REHEARSAL_DIR: path.join(dir, "state"),
    });

    it("--apply is refused while another holds the lock, naming it", async () => {
      const held = await takeLock(path.join(dir, "lock"), "held-by-test", 0);
      try {
        const r = await cli(["stack", "--apply", "b.json", "a.json"], env());
        expect(r.code).to.equal(1);
        expect(r.stderr).to.contain(
          `another stack rehearsal holds ${path.join(dir, "lock")}: pid ${process.pid} (stack held-by-test`,
        );
      } finally {
        held.release();
      }
    });

    it("--drills is refused while another holds the lock, before looking for a stack", async () => {
      const held = await takeLock(path.join(dir, "lock"), "held-by-test", 0);
      try {
        const r = await cli(["stack", "--drills", "mysql"], env());
        expect(r.code).to.equal(1);
        expect(r.stderr).to.contain(`pid ${process.pid} (stack held-by-test`);
        // It never reached the boot: nothing was made in its state directory.
        expect(r.stderr).not.to.contain("booting one");
        expect(fs.existsSync(path.join(dir, "state"))).to.equal(false);
      } finally {
        held.release();
      }
    });

    it("--apply --lock-wait waits for the holder, then runs (here: finds no stack up)", async () => {
      const held = await takeLock(path.join(dir, "lock"), "held-by-test", 0);
      setTimeout(() => held.release(), 1500);
      const started = Date.now();
      const b = path.join(dir, "b.json");
      fs.writeFileSync(
        b,
        JSON.stringify({ version: 3, deployment: { manifest: {}, resources: [] } }),
      );
      const r = await cli(["stack", "--apply", b, b, "--lock-wait", "60"], env());
      expect(Date.now() - started).to.be.at.least(1400);
      expect(r.stderr).to.contain("waiting up to 60 s for the rehearsal lock");
      expect(r.stderr).not.to.contain("another stack rehearsal holds");
      expect(r.stderr).to.match(/no rehearsal is up/);
      expect(r.code).to.equal(1);
    });
  });
});
