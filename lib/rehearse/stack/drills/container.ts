// What every drill on the booted stack (issue 12) works with: the running servers (their PID 1,
// to enter with nsenter or to kill), a bounded wait, and the context and outcome the registry in
// index.ts hands to and takes from each drill.
import * as fs from "fs";
import * as path from "path";
import { execFileSync } from "child_process";
import { leaderPid } from "../index";
import { Made } from "../teardown";
import { Deployment, synthesize, synthesizeEdited } from "../../../synth/offline-synth";
import { PACKAGE_ROOT } from "../../../package-root";

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

/**
 * The outcome of a drill that cannot start because some of the servers it needs are not running,
 * or undefined when they all are.
 */
export function refuseWithout(ctx: DrillContext, names: string[]): DrillOutcome | undefined {
  const missing = names.filter((n) => !ctx.servers.has(n));
  return missing.length === 0
    ? undefined
    : {
        figures: {},
        problems: [`no running container for ${missing.join(", ")}`],
        notRehearsed: [],
      };
}

/**
 * The switch a failover drill applies: the stack's synth as it is (BEFORE) and with
 * `active: standby` for `hastack:<service>` (AFTER).
 */
export async function switchSynths(
  stack: string,
  service: "mysql" | "pbx" | "mail" | "nas",
): Promise<{ before: Deployment; after: Deployment }> {
  const before = await synthesize({ projectDir: PACKAGE_ROOT, stack });
  const after = await synthesizeEdited({
    projectDir: PACKAGE_ROOT,
    stack,
    edit: (c) => {
      c[`hastack:${service}`] = { ...c[`hastack:${service}`], active: "standby" };
    },
  });
  return { before, after };
}
