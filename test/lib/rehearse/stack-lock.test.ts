// The machine-wide lock of the stack rehearsal (issue 11): a second run is refused with the
// holder's pid and stack, can wait a bounded time for it, and a killed holder frees the lock.
import { expect } from "chai";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { spawn } from "child_process";
import { RehearsalLockBusy, takeLock } from "../../../lib/rehearse/stack/lock";

describe("stack rehearsal: one run at a time (flock)", function () {
  this.timeout(180_000);
  let dir: string;
  beforeEach(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), "hastack-lock-"))));
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it("refuses a second holder, naming the first; frees on release", async () => {
    const file = path.join(dir, "lock");
    const first = await takeLock(file, "prod", 0);
    let err: Error | undefined;
    await takeLock(file, "other", 0).catch((e: Error) => (err = e));
    expect(err).to.be.instanceOf(RehearsalLockBusy);
    expect(err!.message).to.contain(`holds ${file}: pid ${process.pid} (stack prod`);
    first.release();
    const again = await takeLock(file, "other", 10);
    again.release();
  });

  it("waits a bounded time for the holder", async () => {
    const file = path.join(dir, "lock");
    const first = await takeLock(file, "prod", 0);
    setTimeout(() => first.release(), 500);
    const started = Date.now();
    const second = await takeLock(file, "prod", 20);
    expect(Date.now() - started).to.be.within(400, 20_000);
    second.release();
  });

  it("is free again once a holder is killed (no stale lock)", async () => {
    const file = path.join(dir, "lock");
    const script = `require(${JSON.stringify(path.join(__dirname, "../../../lib/rehearse/stack/lock.js"))})
      .takeLock(${JSON.stringify(file)}, "killed", 0).then(() => { console.log("held"); setInterval(() => {}, 1000); });`;
    const holder = spawn(process.execPath, ["-e", script], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    await new Promise<void>((resolve) => holder.stdout!.on("data", () => resolve()));
    let err: Error | undefined;
    await takeLock(file, "prod", 0).catch((e: Error) => (err = e));
    expect(err?.message).to.contain(`pid ${holder.pid} (stack killed`);
    holder.kill("SIGKILL");
    const mine = await takeLock(file, "prod", 20);
    mine.release();
  });
});
