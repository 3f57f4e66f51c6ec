// `npm run rehearse -- stack --drills LIST|all` (issue 12): drills on the booted stack, in value
// order. Boots the stack with --keep when none is up (the issue-11 rehearsal, unchanged), runs the
// drills on it, and removes it afterwards unless --keep. Last stdout line: one JSON object with
// "drills" per drill. Exit 0 only when every drill asked for ran, lost nothing and mismatched
// nothing.
import * as fs from "fs";
import * as path from "path";
import { PACKAGE_ROOT } from "../../../package-root";
import { synthesize, synthesizeEdited } from "../../../synth/offline-synth";
import { Drill, DrillUsageError, runDrill } from "../../drill";
import { RUN_ROOT, leaderPid, main as stackMain, readStackSettings } from "../index";
import { Made, Teardown } from "../teardown";
import { bootedTarget } from "../apply-run";
import { DrillServer, mysqlDrill } from "./mysql";

/** Every drill of the issue, in value order; only those in BUILT run today. */
export const DRILL_ORDER = ["mysql", "mail", "pbx", "nas", "migration"] as const;
export const BUILT = ["mysql"];

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

function servers(dir: string): Map<string, DrillServer> {
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
    const domain = settings.domain;
    const result: Record<string, unknown> = {};
    const notRehearsed: string[] = [];
    for (const d of o.drills) {
      if (!BUILT.includes(d)) {
        problems.push(`drill ${d} is not built yet (issue 12)`);
        notRehearsed.push(`${d} drill: not built yet`);
        continue;
      }
      const started = Date.now();
      log(`drill ${d}: starting`);
      if (d === "mysql") {
        const before = await synthesize({ projectDir: PACKAGE_ROOT, stack: o.stack });
        const after = await synthesizeEdited({
          projectDir: PACKAGE_ROOT,
          stack: o.stack,
          edit: (c) => {
            c["hastack:mysql"] = { ...c["hastack:mysql"], active: "standby" };
          },
        });
        const target = await bootedTarget(o.stack, dir, settings);
        const s = servers(dir);
        const need = ["mysql-primary", "mysql-standby", "pbx-primary"];
        const missing = need.filter((n) => !s.has(n));
        if (missing.length > 0) {
          problems.push(`drill mysql: no running container for ${missing.join(", ")}`);
          continue;
        }
        const r = await mysqlDrill(
          {
            target,
            before,
            after,
            region: settings.region,
            domain,
            primary: s.get("mysql-primary")!,
            standby: s.get("mysql-standby")!,
            client: s.get("pbx-primary")!,
          },
          log,
        );
        problems.push(...r.problems.map((p) => `drill mysql: ${p}`));
        notRehearsed.push(...r.notRehearsed);
        result.mysql = {
          acknowledged: r.acknowledged,
          lost: r.lost,
          rtoSeconds: r.rtoSeconds,
          fallbackSeconds: r.fallbackSeconds,
          applySeconds: r.applySeconds,
        };
      }
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
