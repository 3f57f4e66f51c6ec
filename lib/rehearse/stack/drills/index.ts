// `npm run rehearse -- stack --drills LIST|all` (issue 12): drills on the booted stack, in value
// order. Boots the stack with --keep when none is up (the issue-11 rehearsal, unchanged), runs the
// drills on it, and removes it afterwards unless --keep. Last stdout line: one JSON object with
// "drills" per drill. Exit 0 only when every drill asked for ran, lost nothing and mismatched
// nothing.
import * as fs from "fs";
import * as path from "path";
import { Drill, DrillUsageError, runDrill } from "../../drill";
import { RUN_ROOT, main as stackMain, readStackSettings } from "../index";
import { Teardown } from "../teardown";
import { runMysqlDrill } from "./mysql";
import { runPbxDrill } from "./pbx";
import { runNasDrill } from "./nas";
import { DrillContext, DrillOutcome, runningServers } from "./container";

/** Every drill of the issue, in value order; only those in BUILT run today. */
export const DRILL_ORDER = ["mysql", "mail", "pbx", "nas", "migration"] as const;
export type DrillName = (typeof DRILL_ORDER)[number];
/** The built drills; each is one file of this folder exporting its runner. */
export const DRILLS: Partial<Record<DrillName, (ctx: DrillContext) => Promise<DrillOutcome>>> = {
  mysql: runMysqlDrill,
  pbx: runPbxDrill,
  nas: runNasDrill,
};
export const BUILT: string[] = DRILL_ORDER.filter((d) => DRILLS[d] !== undefined);

export interface DrillsOptions {
  stack: string;
  drills: string[];
  keep: boolean;
}

export const DRILLS_USAGE = [
  "usage: npm run rehearse -- stack --drills LIST|all [--stack NAME] [--keep]",
  `  Drills on the booted stack, in this order: ${DRILL_ORDER.join(", ")} (built: ${BUILT.join(", ")}).`,
  "  Boots the stack (--keep) when none is up; removes it afterwards unless --keep.",
].join("\n");

export function parseDrillsArgs(args: string[]): DrillsOptions & { help?: boolean } {
  const o: DrillsOptions & { help?: boolean } = { stack: "prod", drills: [], keep: false };
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
    } else {
      throw new DrillUsageError(`--drills: unknown flag ${a}`);
    }
  }
  return o;
}

let bootedHere = false;
let keepStack = false;
let stackName = "prod";

export const drillsDrill: Drill<DrillsOptions> = {
  usage: DRILLS_USAGE,
  parseArgs: parseDrillsArgs,
  async run(o, log) {
    if (process.getuid?.() !== 0) {
      throw new Error("--drills needs root (the rehearsal's containers and namespaces)");
    }
    stackName = o.stack;
    keepStack = o.keep;
    const dir = path.join(RUN_ROOT, o.stack);
    const problems: string[] = [];
    if (!fs.existsSync(path.join(dir, "made.json"))) {
      log(`no rehearsal of ${o.stack} is up: booting one (rehearse stack --keep)`);
      bootedHere = true;
      const code = await stackMain(["--stack", o.stack, "--keep"]);
      if (code !== 0) {
        problems.push(
          `the stack rehearsal exited ${code} (its problems above); drills run on it anyway`,
        );
      }
    }
    const settings = readStackSettings(o.stack);
    const result: Record<string, unknown> = {};
    const notRehearsed: string[] = [];
    for (const d of o.drills) {
      if (DRILLS[d as DrillName] === undefined) {
        problems.push(`drill ${d} is not built yet (issue 12)`);
        notRehearsed.push(`${d} drill: not built yet`);
        continue;
      }
      const started = Date.now();
      log(`drill ${d}: starting`);
      let outcome: DrillOutcome;
      try {
        outcome = await DRILLS[d as DrillName]!({
          stack: o.stack,
          dir,
          settings,
          servers: runningServers(dir),
          log: (l) => log(`${d}: ${l}`),
        });
      } catch (e) {
        // One drill failing outright still leaves the others to run and report.
        outcome = { figures: {}, problems: [(e as Error).message], notRehearsed: [] };
      }
      problems.push(...outcome.problems.map((p) => `drill ${d}: ${p}`));
      notRehearsed.push(...outcome.notRehearsed);
      result[d] = outcome.figures;
      log(`drill ${d}: done in ${Math.round((Date.now() - started) / 1000)} s`);
    }
    return {
      passed: problems.length === 0,
      problems,
      summary: JSON.stringify({ stack: o.stack, drills: result, notRehearsed }),
    };
  },
  cleanupSync(): void {
    // A stack this run booted goes away with it unless --keep; one that was up stays up.
    if (bootedHere && !keepStack) {
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
