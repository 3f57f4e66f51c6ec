// Everything the stack rehearsal starts on this machine, recorded as it is made and removed in
// reverse order (issue 11): processes, mounts, network namespaces, directories. The record is a
// file, so `--down` removes a stack left up by `--keep`, and a cleanup after Ctrl-C (synchronous,
// from a signal handler) removes exactly what this run made, never anything by name pattern.
import * as fs from "fs";
import * as path from "path";
import { spawnSync } from "child_process";
import { removeCgroupTree } from "./container";

export type Made =
  | { kind: "process"; pid: number; what: string }
  | { kind: "mount"; target: string }
  | { kind: "netns"; name: string }
  | { kind: "dir"; path: string }
  | { kind: "cgroup"; path: string };

/**
 * nspawn's state directory, a tmpfs the rehearsal mounts when it is not (nspawn removes its
 * propagation directories only from a tmpfs). Every rehearsal on the machine uses it: it is never
 * unmounted, also where an older run recorded it (a kept stack booted before may still use it).
 */
export const NSPAWN_RUN_DIR = "/run/systemd/nspawn";

export class Teardown {
  private made: Made[] = [];
  constructor(private readonly stateFile: string) {
    this.reload();
  }

  /**
   * The file is the record, not this object: another process (a drill booting a server again,
   * reboot.ts) may have added to it since.
   */
  private reload(): void {
    if (fs.existsSync(this.stateFile)) {
      this.made = (JSON.parse(fs.readFileSync(this.stateFile, "utf8")) as { made: Made[] }).made;
    }
  }

  get items(): readonly Made[] {
    this.reload();
    return this.made;
  }

  add(m: Made): void {
    this.reload();
    this.made.push(m);
    fs.mkdirSync(path.dirname(this.stateFile), { recursive: true });
    fs.writeFileSync(this.stateFile, JSON.stringify({ made: this.made }, null, 1));
  }

  /** Removes everything recorded, newest first; returns what could not be removed. */
  runSync(log: (l: string) => void = () => undefined): string[] {
    this.reload();
    const failed: string[] = [];
    // Processes first and together: each container shuts down cleanly in parallel (SIGTERM is a
    // poweroff request for systemd-nspawn), then whatever is left after the grace time is killed.
    const procs = this.made.filter(
      (m): m is Extract<Made, { kind: "process" }> => m.kind === "process",
    );
    for (const p of procs) {
      signal(p.pid, "SIGTERM");
    }
    const until = Date.now() + 45000;
    while (procs.some((p) => alive(p.pid)) && Date.now() < until) {
      spawnSync("sleep", ["0.3"]);
    }
    for (const p of procs.filter((x) => alive(x.pid))) {
      log(`cleanup: ${p.what} (${p.pid}) still running after 45 s: killing it`);
      signal(p.pid, "SIGKILL");
    }
    for (const m of [...this.made].reverse()) {
      const err = undo(m);
      if (err) {
        failed.push(err);
        log(`cleanup: ${err}`);
      }
    }
    this.made = [];
    fs.rmSync(this.stateFile, { force: true });
    return failed;
  }
}

function alive(pid: number): boolean {
  try {
    // A zombie (exited, not yet reaped by this process) counts as gone.
    return !/^\d+ \(.*\) Z/.test(fs.readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return false;
  }
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // already gone
  }
}

function waitGone(pid: number, ms: number): boolean {
  const until = Date.now() + ms;
  while (alive(pid) && Date.now() < until) {
    spawnSync("sleep", ["0.2"]);
  }
  return !alive(pid);
}

function undo(m: Made): string | undefined {
  switch (m.kind) {
    case "process": {
      if (!alive(m.pid)) {
        return undefined;
      }
      signal(m.pid, "SIGKILL");
      return waitGone(m.pid, 10000) ? undefined : `process ${m.pid} (${m.what}) did not stop`;
    }
    case "mount": {
      if (path.resolve(m.target) === NSPAWN_RUN_DIR) {
        return undefined;
      }
      const r = spawnSync("umount", [m.target], { encoding: "utf8" });
      if (r.status === 0) {
        return undefined;
      }
      if (!isMounted(m.target)) {
        return undefined;
      }
      const lazy = spawnSync("umount", ["-l", m.target], { encoding: "utf8" });
      return lazy.status === 0 ? undefined : `umount ${m.target}: ${r.stderr.trim()}`;
    }
    case "netns": {
      if (!fs.existsSync(`/run/netns/${m.name}`)) {
        return undefined;
      }
      const r = spawnSync("ip", ["netns", "delete", m.name], { encoding: "utf8" });
      return r.status === 0 ? undefined : `ip netns delete ${m.name}: ${r.stderr.trim()}`;
    }
    case "cgroup": {
      // Emptied asynchronously after its processes are killed (slowly on a busy machine): a
      // bounded retry.
      const until = Date.now() + 60000;
      while (!removeCgroupTree(m.path)) {
        if (Date.now() > until) {
          return `rmdir ${m.path}: still populated`;
        }
        spawnSync("sleep", ["0.2"]);
      }
      return undefined;
    }
    case "dir":
      try {
        fs.rmSync(m.path, { recursive: true, force: true });
        return undefined;
      } catch (e) {
        return `rm -r ${m.path}: ${(e as Error).message}`;
      }
  }
}

export function isMounted(target: string): boolean {
  const t = path.resolve(target);
  return fs
    .readFileSync("/proc/self/mountinfo", "utf8")
    .split("\n")
    .some((l) => l.split(" ")[4] === t);
}
