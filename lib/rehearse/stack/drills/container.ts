// What every drill on the booted stack (issue 12) works with: the running servers (their PID 1,
// to enter with nsenter or to kill), a bounded wait, and the context and outcome the registry in
// index.ts hands to and takes from each drill.
import * as fs from "fs";
import * as path from "path";
import { execFileSync } from "child_process";
import { leaderPid } from "../index";
import { Made } from "../teardown";

/** A container on the stack: the PID 1 to enter (nsenter) or kill. */
export interface DrillServer {
  name: string;
  leader: number;
}

/** What a drill gets: the kept stack it runs on. */
export interface DrillContext {
  stack: string;
  /** The rehearsal's state directory (made.json, booted.json, keys). */
  dir: string;
  settings: { adminCidrs: string[]; region: string; domain: string };
  /** Running servers by name (mail-primary, mysql-standby, ...). */
  servers: Map<string, DrillServer>;
  log: (line: string) => void;
}

/**
 * What a drill gives back: its figures for the summary's "drills" object (the issue names them
 * per drill), problems (each fails the run), and what it could not rehearse here and why.
 */
export interface DrillOutcome {
  figures: Record<string, unknown>;
  problems: string[];
  notRehearsed: string[];
}

/** The running servers of a rehearsal, from its made.json. */
export function runningServers(dir: string): Map<string, DrillServer> {
  const made = (
    JSON.parse(fs.readFileSync(path.join(dir, "made.json"), "utf8")) as { made: Made[] }
  ).made;
  const out = new Map<string, DrillServer>();
  for (const m of made) {
    const name = m.kind === "process" ? /^systemd-nspawn (\S+)$/.exec(m.what)?.[1] : undefined;
    if (m.kind === "process" && name) {
      const leader = leaderPid(m.pid);
      if (leader !== undefined) {
        out.set(name, { name, leader });
      }
    }
  }
  return out;
}

/** Runs argv inside a server (all its namespaces), returning stdout; throws on a non-zero exit. */
export function inServer(
  s: DrillServer,
  argv: string[],
  env: Record<string, string> = {},
  timeoutMs = 120_000,
): string {
  return execFileSync(
    "nsenter",
    [
      "-t",
      String(s.leader),
      "-a",
      "--",
      "env",
      ...Object.entries(env).map(([k, v]) => `${k}=${v}`),
      ...argv,
    ],
    // Large answers (every id a drill wrote) stay well inside the buffer.
    {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "pipe"],
      timeout: timeoutMs,
      maxBuffer: 256 * 1024 * 1024,
    },
  );
}

/**
 * Polls `probe` every half second until it returns a value, for at most `seconds`; throws naming
 * `what` and the last error otherwise.
 */
export async function until<T>(
  what: string,
  seconds: number,
  probe: () => T | undefined | Promise<T | undefined>,
): Promise<T> {
  const end = Date.now() + seconds * 1000;
  let last = "";
  while (Date.now() < end) {
    try {
      const v = await probe();
      if (v !== undefined) {
        return v;
      }
    } catch (e) {
      last = (e as Error).message.split("\n")[0];
    }
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Error(`gave up after ${seconds} s waiting for ${what}${last ? ` (${last})` : ""}`);
}
