// npm run impact -- INPUT [AFTER] [--window START/END] [--allow URN]... [--announce FILE.md
//   [--lang id|en] [--contacts FILE | --stack-file Pulumi.prod.yaml]] [--json]
// Thin shell over impact-plan.ts and announcement.ts: flags, files, printing, exit code.
// Exit: 0 nothing worse than a brief interruption (or planned/allowed), 3 outage or data risk,
// 4 incomplete plan (failed/cancelled/corrupt run, cut-off log, counts differ), 2 bad flags or input.
import * as fs from "fs";
import { parse as parseYaml } from "yaml";
import {
  Contact,
  ImpactInputError,
  buildImpactPlan,
  decideExit,
  parseInputs,
  parseWindow,
  renderPlan,
} from "../lib/impact/impact-plan";
import { Lang, renderAnnouncement } from "../lib/announce/announcement";

const USAGE = `usage: npm run impact -- INPUT [AFTER] [options]

INPUT is one of:
  preview.json            output of \`pulumi preview --json\`
  events.jsonl            engine event log (\`pulumi preview|up --event-log FILE\`, Automation API
                          events, or \`pulumi stack history events ID --all --output json\`)
  before.json after.json  two offline synth files (\`npm run synth\`) of one stack: an ESTIMATE
Use "-" to read the input from standard input.

options:
  --window START/END      ISO 8601 with time zone, e.g. 2025-07-05T22:00+07:00/2025-07-06T01:00+07:00:
                          outages inside it are planned (exit 0)
  --allow URN             accept the data risk of this resource (repeat per resource; needs --window)
  --announce FILE.md      write the maintenance announcement
  --lang en|id            announcement language (default en)
  --contacts FILE         contacts for the announcement (JSON or YAML list of {name, role, phone, email})
  --stack-file FILE       read contacts from a stack file's hastack:contacts
  --across-stacks         compare two synth files of differently named stacks resource by resource
  --json                  print the classified plan as JSON instead of the table

exit: 0 no worse than a brief interruption (or planned), 3 outage or data risk,
      4 incomplete plan (failed, cancelled or corrupt run; cut-off log), 2 bad input`;

class UsageError extends Error {}

interface Flags {
  inputs: string[];
  window?: string;
  allow: string[];
  announce?: string;
  lang: Lang;
  contacts?: string;
  stackFile?: string;
  json: boolean;
  acrossStacks: boolean;
}

export function parseFlags(argv: string[]): Flags {
  const f: Flags = { inputs: [], allow: [], lang: "en", json: false, acrossStacks: false };
  const value = (i: number, flag: string, what: string): string => {
    const v = argv[i + 1];
    if (v === undefined || (v.startsWith("--") && v !== "-")) {
      throw new UsageError(`${flag} needs ${what}`);
    }
    return v;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    switch (a) {
      case "--window":
        f.window = value(i++, a, "START/END (ISO 8601)");
        break;
      case "--allow": {
        const urn = value(i++, a, "a resource URN");
        if (!urn.startsWith("urn:pulumi:")) {
          throw new UsageError(
            `--allow needs a resource URN (urn:pulumi:…), got ${JSON.stringify(urn)}`,
          );
        }
        f.allow.push(urn);
        break;
      }
      case "--announce":
        f.announce = value(i++, a, "an output file, e.g. announcement.md");
        break;
      case "--lang": {
        const l = value(i++, a, "en or id");
        if (l !== "en" && l !== "id") {
          throw new UsageError(`--lang must be "en" or "id", got ${JSON.stringify(l)}`);
        }
        f.lang = l;
        break;
      }
      case "--contacts":
        f.contacts = value(i++, a, "a JSON or YAML file");
        break;
      case "--stack-file":
        f.stackFile = value(i++, a, "a stack file such as Pulumi.prod.yaml");
        break;
      case "--json":
        f.json = true;
        break;
      case "--across-stacks":
        f.acrossStacks = true;
        break;
      case "-h":
      case "--help":
        throw new UsageError("");
      default:
        if (a.startsWith("--")) {
          throw new UsageError(`unknown option ${a}`);
        }
        f.inputs.push(a);
    }
  }
  if (f.inputs.length === 0) {
    throw new UsageError("give an input file");
  }
  if (f.allow.length > 0 && f.window === undefined) {
    throw new UsageError(
      "--allow needs --window START/END: a data risk is only accepted in a planned window",
    );
  }
  if (f.contacts && f.stackFile) {
    throw new UsageError("give either --contacts or --stack-file, not both");
  }
  return f;
}

function readText(path: string): string {
  try {
    return fs.readFileSync(path === "-" ? 0 : path, "utf8");
  } catch (e) {
    throw new ImpactInputError(
      `${path}: cannot read (${(e as NodeJS.ErrnoException).code ?? String(e)})`,
    );
  }
}

/** Contacts from a JSON/YAML list, or from a stack file's `hastack:contacts`. */
export function readContacts(path: string, fromStackFile: boolean): Contact[] {
  let doc: unknown;
  try {
    doc = parseYaml(readText(path));
  } catch (e) {
    if (e instanceof ImpactInputError) {
      throw e;
    }
    throw new ImpactInputError(
      `${path}: not valid JSON or YAML (${(e as Error).message.split("\n")[0]})`,
    );
  }
  const flag = fromStackFile ? "--stack-file" : "--contacts";
  const list = fromStackFile
    ? (doc as { config?: Record<string, unknown> } | null)?.config?.["hastack:contacts"]
    : doc;
  if (list === undefined && fromStackFile) {
    throw new ImpactInputError(`${flag} ${path}: no config key hastack:contacts`);
  }
  if (!Array.isArray(list)) {
    throw new ImpactInputError(`${flag} ${path}: expected a list of {name, role, phone, email}`);
  }
  return list.map((c, i) => {
    const r = c as Record<string, unknown>;
    if (typeof r?.name !== "string" || typeof r?.role !== "string") {
      throw new ImpactInputError(`${flag} ${path}: contact [${i}] needs "name" and "role" strings`);
    }
    return {
      name: r.name,
      role: r.role,
      phone: typeof r.phone === "string" ? r.phone : undefined,
      email: typeof r.email === "string" ? r.email : undefined,
    };
  });
}

export function main(argv: string[]): number {
  let flags: Flags;
  try {
    flags = parseFlags(argv);
  } catch (e) {
    if (e instanceof UsageError) {
      if (e.message) {
        process.stderr.write(`impact: ${e.message}\n\n`);
      }
      process.stderr.write(USAGE + "\n");
      return e.message ? 2 : 0;
    }
    throw e;
  }
  try {
    const window = flags.window ? parseWindow(flags.window) : undefined;
    const input = parseInputs(
      flags.inputs.map((path) => ({ path, text: readText(path) })),
      { acrossStacks: flags.acrossStacks },
    );
    process.stderr.write(`impact: ${input.steps.length} step(s) read (${input.kind})\n`);
    const plan = buildImpactPlan(input);
    const verdict = decideExit(plan, { window, allow: flags.allow });
    if (flags.json) {
      process.stdout.write(
        JSON.stringify({ plan: { ...plan, config: undefined }, verdict }, null, 2) + "\n",
      );
    } else {
      process.stdout.write(renderPlan(plan, verdict));
    }
    if (flags.announce) {
      const contacts = flags.contacts
        ? readContacts(flags.contacts, false)
        : flags.stackFile
          ? readContacts(flags.stackFile, true)
          : undefined;
      const text = renderAnnouncement(plan, { lang: flags.lang, window, contacts });
      try {
        fs.writeFileSync(flags.announce, text);
      } catch (e) {
        throw new ImpactInputError(
          `--announce ${flags.announce}: cannot write (${(e as NodeJS.ErrnoException).code ?? String(e)})`,
        );
      }
      process.stderr.write(`impact: announcement (${flags.lang}) written to ${flags.announce}\n`);
    }
    return verdict.code;
  } catch (e) {
    if (e instanceof ImpactInputError) {
      process.stderr.write(`impact: ${e.message}\n`);
      return 2;
    }
    throw e;
  }
}

if (require.main === module) {
  process.exitCode = main(process.argv.slice(2));
}
