// `npm run rehearse -- stack --drills LIST|all` (issue 12): drills on the booted stack, in value
// order. Holds the machine's rehearsal lock for the whole run (the boot's lock, re-entrant: the
// boot inside takes it again); boots the stack with --keep when none is up (the issue-11
// rehearsal, unchanged), runs the drills on it, and removes it afterwards unless --keep. Last
// stdout line: one JSON object — the boot's figures with "drills" added when this run booted the
// stack, else the kept stack's identity with "drills". Exit 0 only when the boot (if any) passed
// and every drill asked for ran, lost nothing and mismatched nothing.
import * as fs from "fs";
import * as path from "path";
import { Drill, DrillUsageError, runDrill } from "../../drill";
import { RUN_ROOT, drill as stackDrill, parseStackArgs, readStackSettings } from "../index";
import { holdingRehearsalLock, parseLockWait } from "../apply-run";
import { Made, Teardown } from "../teardown";
import { runMysqlDrill } from "./mysql";
import { runMailDrill } from "./mail";
import { runPbxDrill } from "./pbx";
import { runNasDrill } from "./nas";
import { runMigrationDrill } from "./migration";
import { DrillContext, DrillOutcome, runningServers } from "./container";

/** Every drill of the issue, in value order; only those in BUILT run today. */
export const DRILL_ORDER = ["mysql", "mail", "pbx", "nas", "migration"] as const;
export type DrillName = (typeof DRILL_ORDER)[number];
/** The built drills; each is one file of this folder exporting its runner. */
export const DRILLS: Partial<Record<DrillName, (ctx: DrillContext) => Promise<DrillOutcome>>> = {
  mysql: runMysqlDrill,
  mail: runMailDrill,
  pbx: runPbxDrill,
  nas: runNasDrill,
  migration: runMigrationDrill,
};
export const BUILT: string[] = DRILL_ORDER.filter((d) => DRILLS[d] !== undefined);

export interface DrillsOptions {
  stack: string;
  drills: string[];
  keep: boolean;
  /** Seconds to wait for the machine's rehearsal lock. Defaults to 0: refuse, naming the holder. */
  lockWait: number;
  /** Passed to the boot when none is up. Defaults to the boot's own default. */
  bootTimeout?: number;
}

export const DRILLS_USAGE = [
  "usage: npm run rehearse -- stack --drills LIST|all [--stack NAME] [--keep] [--lock-wait S] [--boot-timeout S]",
  `  Drills on the booted stack, in this order: ${DRILL_ORDER.join(", ")} (built: ${BUILT.join(", ")}).`,
  "  Boots the stack (--keep) when none is up; removes it afterwards unless --keep. Holds the",
  "  machine's rehearsal lock throughout; --lock-wait S waits that long for it (default 0: refuse,",
  "  naming the holder).",
].join("\n");

export function parseDrillsArgs(args: string[]): DrillsOptions & { help?: boolean } {
  const o: DrillsOptions & { help?: boolean } = {
    stack: "prod",
    drills: [],
    keep: false,
    lockWait: 0,
  };
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === "--help" || a === "-h") {
      o.help = true;
    } else if (a === "--drills") {
      const v = args[++i] ?? "";
      const list = v === "all" ? [...DRILL_ORDER] : v.split(",").filter(Boolean);
      const unknown = list.filter((d) => !(DRILL_ORDER as readonly string[]).includes(d));
      if (list.length === 0 || unknown.length > 0) {
        throw new DrillUsageError(
          `--drills must be all or a comma-separated list of ${DRILL_ORDER.join(", ")}, got ${JSON.stringify(v)}`,
        );
      }
      o.drills = DRILL_ORDER.filter((d) => list.includes(d));
    } else if (a === "--stack") {
      const v = args[++i];
      if (!v || !/^[A-Za-z0-9_.-]+$/.test(v)) {
        throw new DrillUsageError(`--stack must be a stack name, got ${JSON.stringify(v)}`);
      }
      o.stack = v;
    } else if (a === "--keep") {
      o.keep = true;
    } else if (a === "--lock-wait") {
      o.lockWait = parseLockWait(args[++i]);
    } else if (a === "--boot-timeout") {
      const v = Number(args[++i]);
      if (!Number.isInteger(v) || v < 60) {
        throw new DrillUsageError("--boot-timeout must be a whole number of seconds, at least 60");
      }
      o.bootTimeout = v;
    } else {
      throw new DrillUsageError(`--drills: unknown flag ${a}`);
    }
  }
  return o;
}

let bootedHere = false;
let keepStack = false;
let stackName = "prod";

/**
 * Which kept stack the drills ran on, for a run that did not boot it: its name and state
 * directory, its router namespace (the rehearsal's id), when it was booted (its admin key is made
 * then) and the servers running now.
 */
export function stackIdentity(stack: string, dir: string): Record<string, unknown> {
  const made = (
    JSON.parse(fs.readFileSync(path.join(dir, "made.json"), "utf8")) as { made: Made[] }
  ).made;
  const router = made.find((m) => m.kind === "netns" && m.name.startsWith("hsr-"));
  let bootedAt: string | null = null;
  try {
    bootedAt = fs.statSync(path.join(dir, "admin-key")).mtime.toISOString();
  } catch {
    // a stack whose boot stopped before its keys: no time to give
  }
  const running = [...runningServers(dir).keys()].sort();
  return {
    stack,
    dir,
    router: router && router.kind === "netns" ? router.name : null,
    bootedAt,
    running: running.length,
    runningServers: running,
  };
}

/**
 * The last JSON line: the boot's figures (when this run booted the stack) or the kept stack's
 * identity, with "drills" added and the drills' notRehearsed after the boot's.
 */
export function drillsSummary(
  base: Record<string, unknown>,
  drills: Record<string, unknown>,
  notRehearsed: string[],
): Record<string, unknown> {
  const before = Array.isArray(base.notRehearsed) ? (base.notRehearsed as string[]) : [];
  return { ...base, drills, notRehearsed: [...before, ...notRehearsed] };
}

/** Figures that must be 0 in every drill (issue 12: nothing lost, nothing mismatched). */
export const MUST_BE_ZERO = ["lost", "mismatches", "wrongServer"] as const;

/**
 * Problems the figures themselves show when the drill reported none: a figure of MUST_BE_ZERO
 * above 0 or not a number (a drill cannot pass with a loss it did not call a problem).
 */
export function figureProblems(drill: string, figures: Record<string, unknown>): string[] {
  const out: string[] = [];
  for (const k of MUST_BE_ZERO) {
    const v = figures[k];
    if (v === undefined) {
      continue;
    }
    if (typeof v !== "number" || !Number.isFinite(v)) {
      out.push(`drill ${drill}: ${k} is ${JSON.stringify(v)}, not a count`);
    } else if (v > 0) {
      out.push(`drill ${drill}: ${k} ${v}`);
    }
  }
  return out;
}

/** Runs the drills asked for, in value order; a drill that throws still lets the others run. */
export async function runDrills(
  o: { stack: string; dir: string; drills: string[] },
  log: (l: string) => void,
  registry: Partial<Record<string, (ctx: DrillContext) => Promise<DrillOutcome>>> = DRILLS,
): Promise<{ figures: Record<string, unknown>; problems: string[]; notRehearsed: string[] }> {
  const settings = readStackSettings(o.stack);
  const figures: Record<string, unknown> = {};
  const problems: string[] = [];
  const notRehearsed: string[] = [];
  for (const d of o.drills) {
    const runner = registry[d];
    if (runner === undefined) {
      problems.push(`drill ${d} is not built yet (issue 12)`);
      notRehearsed.push(`${d} drill: not built yet`);
      continue;
    }
    const started = Date.now();
    log(`drill ${d}: starting`);
    let outcome: DrillOutcome;
    try {
      outcome = await runner({
        stack: o.stack,
        dir: o.dir,
        settings,
        // Read again for each drill: a drill that boots a server again gives it a new PID 1.
        servers: runningServers(o.dir),
        log: (l) => log(`${d}: ${l}`),
      });
    } catch (e) {
      outcome = { figures: {}, problems: [(e as Error).message], notRehearsed: [] };
    }
    problems.push(...outcome.problems.map((p) => `drill ${d}: ${p}`));
    if (outcome.problems.length === 0) {
      problems.push(...figureProblems(d, outcome.figures));
    }
    notRehearsed.push(...outcome.notRehearsed);
    figures[d] = outcome.figures;
    log(`drill ${d}: done in ${Math.round((Date.now() - started) / 1000)} s`);
  }
  return { figures, problems, notRehearsed };
}

async function drillsHeld(
  o: DrillsOptions,
  log: (l: string) => void,
): Promise<{ passed: boolean; problems: string[]; summary: string }> {
  const dir = path.join(RUN_ROOT, o.stack);
  const problems: string[] = [];
  let base: Record<string, unknown>;
  if (!fs.existsSync(path.join(dir, "made.json"))) {
    log(`no rehearsal of ${o.stack} is up: booting one (rehearse stack --keep)`);
    bootedHere = true;
    const boot = await stackDrill.run(
      parseStackArgs([
        "--stack",
        o.stack,
        "--keep",
        ...(o.bootTimeout !== undefined ? ["--boot-timeout", String(o.bootTimeout)] : []),
      ]),
      (l) => log(`boot: ${l}`),
    );
    problems.push(...boot.problems.map((p) => `boot: ${p}`));
    base = JSON.parse(boot.summary) as Record<string, unknown>;
    if (!fs.existsSync(path.join(dir, "made.json"))) {
      return { passed: false, problems, summary: JSON.stringify(drillsSummary(base, {}, [])) };
    }
  } else {
    base = stackIdentity(o.stack, dir);
    log(
      `drills on the kept stack ${o.stack} (${String(base.router)}, booted ${String(base.bootedAt)}, ${String(base.running)} servers running)`,
    );
  }
  const r = await runDrills({ stack: o.stack, dir, drills: o.drills }, log);
  problems.push(...r.problems);
  return {
    passed: problems.length === 0,
    problems,
    summary: JSON.stringify(drillsSummary(base, r.figures, r.notRehearsed)),
  };
}

export const drillsDrill: Drill<DrillsOptions> = {
  usage: DRILLS_USAGE,
  parseArgs: parseDrillsArgs,
  async run(o, log) {
    if (process.getuid?.() !== 0) {
      throw new Error("--drills needs root (the rehearsal's containers and namespaces)");
    }
    stackName = o.stack;
    keepStack = o.keep;
    return holdingRehearsalLock(o.stack, o.lockWait, log, async () => {
      try {
        return await drillsHeld(o, log);
      } finally {
        // Inside the lock: the next run finds the stack either up or gone, never half removed.
        drillsDrill.cleanupSync();
      }
    });
  },
  cleanupSync(): void {
    // A stack this run booted goes away with it unless --keep; one that was up stays up.
    if (bootedHere && !keepStack) {
      bootedHere = false;
      process.stderr.write(`rehearse stack --drills: removing the stack it booted\n`);
      new Teardown(path.join(RUN_ROOT, stackName, "made.json")).runSync((l) =>
        process.stderr.write(`rehearse stack --drills: ${l}\n`),
      );
    }
  },
};

export function drillsMain(args: string[]): Promise<number> {
  return runDrill("stack --drills", drillsDrill, args);
}
