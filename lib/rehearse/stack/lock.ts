// One stack rehearsal at a time on a machine (issue 11): two runs would share /run/systemd/nspawn,
// the image cache and, above all, 2 cores, so each would time out. The lock is flock(1) on a file,
// held by a helper process that lives exactly as long as this one (it waits on our pipe): a
// killed run never leaves a stale lock. Beside it, who holds it, for the message of the next run.
import * as fs from "fs";
import * as path from "path";
import { ChildProcess, spawn } from "child_process";

export interface LockHolder {
  pid: number;
  stack: string;
  since: string;
  cwd: string;
  argv: string[];
}

export class RehearsalLockBusy extends Error {}

/** A held lock; release() frees it (exiting the process does too). */
export interface RehearsalLock {
  file: string;
  release(): void;
}

function describeHolder(file: string): string {
  try {
    const h = JSON.parse(fs.readFileSync(`${file}.holder`, "utf8")) as LockHolder;
    return `pid ${h.pid} (stack ${h.stack}, since ${h.since}, in ${h.cwd}: ${h.argv.join(" ")})`;
  } catch {
    return "a process that left no description";
  }
}

/**
 * Locks this process holds and shares (taken with `share`), by file: how many takers (a drills
 * run that boots the stack) and how to free it once the last one releases.
 */
const heldHere = new Map<string, { takers: number; free: () => void }>();

/** A handle on a lock this process holds; the last release frees it, whoever took it first. */
function handle(file: string): RehearsalLock {
  let released = false;
  return {
    file,
    release(): void {
      const held = heldHere.get(file);
      if (released || !held) {
        return;
      }
      released = true;
      held.takers--;
      if (held.takers === 0) {
        heldHere.delete(file);
        held.free();
      }
    },
  };
}

/**
 * Takes the machine's rehearsal lock, waiting up to `waitSeconds` (0: not at all). Throws
 * RehearsalLockBusy naming the holder when it stays taken. Taken with `share`, later takers in
 * this same process join it instead of waiting on it: the drills (issue 12) hold it for their
 * whole run and boot the stack inside it. It is freed when the last taker releases it.
 */
export async function takeLock(
  file: string,
  stack: string,
  waitSeconds: number,
  log: (l: string) => void = () => undefined,
  share = false,
): Promise<RehearsalLock> {
  const held = heldHere.get(file);
  if (held) {
    held.takers++;
    return handle(file);
  }
  fs.mkdirSync(path.dirname(file), { recursive: true });
  if (waitSeconds > 0) {
    log(`waiting up to ${waitSeconds} s for the rehearsal lock ${file}`);
  }
  const child: ChildProcess = spawn(
    "flock",
    ["-w", String(waitSeconds), "-E", "75", file, "sh", "-c", "echo locked; exec cat >/dev/null"],
    // Its own process group: Ctrl-C on the run must not free the lock before the cleanup ends.
    { stdio: ["pipe", "pipe", "pipe"], detached: true },
  );
  const got = await new Promise<boolean | string>((resolve) => {
    let err = "";
    child.stdout!.on("data", (d: Buffer) => {
      if (d.toString().includes("locked")) {
        resolve(true);
      }
    });
    child.stderr!.on("data", (d: Buffer) => (err += d.toString()));
    child.on("error", (e) => resolve(`flock: ${e.message}`));
    child.on("close", (code) => resolve(code === 75 ? false : `flock exited ${code}: ${err}`));
  });
  if (got !== true) {
    child.kill();
    if (got === false) {
      throw new RehearsalLockBusy(
        `another stack rehearsal holds ${file}: ${describeHolder(file)}. ` +
          `Wait for it (--lock-wait SECONDS), or if it was left up with --keep, remove it with --down`,
      );
    }
    throw new Error(`cannot take the rehearsal lock ${file}: ${got}`);
  }
  const holder: LockHolder = {
    pid: process.pid,
    stack,
    since: new Date().toISOString(),
    cwd: process.cwd(),
    argv: process.argv.slice(1),
  };
  fs.writeFileSync(`${file}.holder`, JSON.stringify(holder));
  // The helper must not keep this process alive; its pipe is closed when we exit.
  child.unref();
  (child.stdout as unknown as { unref?: () => void }).unref?.();
  (child.stderr as unknown as { unref?: () => void }).unref?.();
  (child.stdin as unknown as { unref?: () => void }).unref?.();
  const free = (): void => {
    fs.rmSync(`${file}.holder`, { force: true });
    child.stdin!.end();
    child.kill();
  };
  if (!share) {
    let released = false;
    return {
      file,
      release(): void {
        if (!released) {
          released = true;
          free();
        }
      },
    };
  }
  heldHere.set(file, { takers: 1, free });
  return handle(file);
}
