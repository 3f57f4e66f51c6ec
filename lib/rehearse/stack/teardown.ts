// Everything the stack rehearsal starts on this machine, recorded as it is made and removed in
// reverse order (issue 11): processes, mounts, network namespaces, directories. The record is a
// file, so `--down` removes a stack left up by `--keep`, and a cleanup after Ctrl-C (synchronous,
// from a signal handler) removes exactly what this run made, never anything by name pattern.
import * as fs from "fs";
import * as path from "path";
import { spawnSync } from "child_process";

export type Made =
  | { kind: "process"; pid: number; what: string }
  | { kind: "mount"; target: string }
  | { kind: "netns"; name: string }
  | { kind: "dir"; path: string };

export class Teardown {
  private made: Made[] = [];
  constructor(private readonly stateFile: string) {
    if (fs.existsSync(stateFile)) {
      this.made = (JSON.parse(fs.readFileSync(stateFile, "utf8")) as { made: Made[] }).made;
    }
  }

  get items(): readonly Made[] {
    return this.made;
  }

  add(m: Made): void {
    this.made.push(m);
    fs.mkdirSync(path.dirname(this.stateFile), { recursive: true });
    fs.writeFileSync(this.stateFile, JSON.stringify({ made: this.made }, null, 1));
  }

  /** Removes everything recorded, newest first; returns what could not be removed. */
  runSync(log: (l: string) => void = () => undefined): string[] {
    const failed: string[] = [];
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
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
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
      // systemd-nspawn powers the container off on SIGTERM... SIGRTMIN+4 is poweroff for systemd;
      // nspawn itself forwards SIGTERM as a clean shutdown request to the container's init.
      try {
        process.kill(m.pid, "SIGTERM");
      } catch {
        return undefined;
      }
      if (waitGone(m.pid, 30000)) {
        return undefined;
      }
      try {
        process.kill(m.pid, "SIGKILL");
      } catch {
        return undefined;
      }
      return waitGone(m.pid, 10000) ? undefined : `process ${m.pid} (${m.what}) did not stop`;
    }
    case "mount": {
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
