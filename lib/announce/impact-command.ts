// What `npm run impact` does once its flags are parsed (scripts/impact.ts): read the plan, print
// the report, and write the staff announcement and the operator runbook atomically — never over
// one of the tool's inputs. lib/impact/ classifies; this file only reads, calls and writes.
import * as fs from "fs";
import { parse as parseYaml } from "yaml";
import { CliError } from "../cli/flags";
import { checkFileTarget, OutputTarget, writeFileAtomic } from "../cli/output";
import {
  Contact,
  ImpactInputError,
  buildImpactPlan,
  decideExit,
  parseInputs,
  parseWindow,
  renderPlan,
} from "../impact/impact-plan";
import { Lang, renderAnnouncement } from "./announcement";
import { renderRunbook } from "./runbook";

export interface ImpactCommand {
  inputs: string[];
  window?: string;
  allow: string[];
  announce?: string;
  runbook?: string;
  lang: Lang;
  contacts?: string;
  stackFile?: string;
  json: boolean;
  /** Compare synth files of differently named stacks resource by resource. Defaults to false. */
  acrossStacks?: boolean;
  log: (line: string) => void;
  print: (text: string) => void;
}

/**
 * `--window` must name real calendar dates: JavaScript rolls 30 February over to 2 March, which
 * used to surface as "END must be after START".
 */
export function checkWindowDates(text: string): void {
  for (const part of text.split("/")) {
    const m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})/.exec(part);
    if (!m) {
      continue; // parseWindow reports the format
    }
    const [year, month, day, hour, minute] = m.slice(1).map(Number);
    const daysInMonth = new Date(Date.UTC(year, month, 0)).getUTCDate();
    if (month < 1 || month > 12 || day < 1 || day > daysInMonth) {
      throw new CliError(
        `--window: ${part.slice(0, 10)} is not a date in the calendar${month >= 1 && month <= 12 ? ` (that month has ${daysInMonth} days)` : ""}`,
      );
    }
    if (hour > 23 || minute > 59) {
      throw new CliError(`--window: ${part.slice(11, 16)} is not a time of day`);
    }
  }
}

function readText(path: string): string {
  try {
    return fs.readFileSync(path === "-" ? 0 : path, "utf8");
  } catch (e) {
    throw new CliError(`${path}: cannot read (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
  }
}

/** Contacts from a JSON/YAML list, or from a stack file's `hastack:contacts`. */
export function readContacts(path: string, fromStackFile: boolean): Contact[] {
  const flag = fromStackFile ? "--stack-file" : "--contacts";
  let doc: unknown;
  try {
    doc = parseYaml(readText(path));
  } catch (e) {
    if (e instanceof CliError) {
      throw e;
    }
    throw new CliError(
      `${flag} ${path}: not valid JSON or YAML (${(e as Error).message.split("\n")[0]})`,
    );
  }
  const list = fromStackFile
    ? (doc as { config?: Record<string, unknown> } | null)?.config?.["hastack:contacts"]
    : doc;
  if (list === undefined && fromStackFile) {
    throw new CliError(`${flag} ${path}: no config key hastack:contacts`);
  }
  if (!Array.isArray(list)) {
    throw new CliError(`${flag} ${path}: expected a list of {name, role, phone, email}`);
  }
  return list.map((c, i) => {
    const r = c as Record<string, unknown>;
    if (typeof r?.name !== "string" || typeof r?.role !== "string") {
      throw new CliError(`${flag} ${path}: contact [${i}] needs "name" and "role" strings`);
    }
    return {
      name: r.name,
      role: r.role,
      phone: typeof r.phone === "string" ? r.phone : undefined,
      email: typeof r.email === "string" ? r.email : undefined,
    };
  });
}

/** Runs the report; returns the verdict's exit code (0 or 3). Throws CliError (exit 2). */
export function runImpact(c: ImpactCommand): number {
  if (c.allow.length > 0 && !c.window) {
    throw new CliError(
      "--allow needs --window START/END: a data risk is accepted only inside a planned window",
    );
  }
  const inputs = [
    ...c.inputs,
    ...(c.contacts ? [c.contacts] : []),
    ...(c.stackFile ? [c.stackFile] : []),
  ];
  const targets: OutputTarget[] = [];
  for (const [flag, path] of [
    ["--announce", c.announce],
    ["--runbook", c.runbook],
  ] as const) {
    if (path) {
      targets.push({ flag, path, inputs: [...inputs, ...targets.map((t) => t.path)] });
    }
  }
  // Checked before anything is read or written: a bad path fails fast and touches nothing.
  targets.forEach(checkFileTarget);
  try {
    if (c.window) {
      checkWindowDates(c.window);
    }
    const window = c.window ? parseWindow(c.window) : undefined;
    const input = parseInputs(
      c.inputs.map((path) => ({ path, text: readText(path) })),
      { acrossStacks: c.acrossStacks ?? false },
    );
    c.log(`impact: ${input.steps.length} step(s) read (${input.kind})`);
    const plan = buildImpactPlan(input);
    const verdict = decideExit(plan, { window, allow: c.allow });
    if (c.json) {
      c.print(JSON.stringify({ plan: { ...plan, config: undefined }, verdict }, null, 2) + "\n");
    } else {
      c.print(renderPlan(plan, verdict));
    }
    const contacts = c.contacts
      ? readContacts(c.contacts, false)
      : c.stackFile
        ? readContacts(c.stackFile, true)
        : undefined;
    for (const t of targets) {
      const text =
        t.flag === "--announce"
          ? renderAnnouncement(plan, { lang: c.lang, window, contacts })
          : renderRunbook(plan, { lang: c.lang, window, contacts });
      writeFileAtomic(t, text);
      c.log(
        `impact: ${t.flag === "--announce" ? "announcement for staff" : "operator runbook"} (${c.lang}) written to ${t.path}`,
      );
    }
    return verdict.code;
  } catch (e) {
    if (e instanceof ImpactInputError) {
      throw new CliError(e.message);
    }
    throw e;
  }
}
