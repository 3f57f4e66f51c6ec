// npm run impact -- INPUT [AFTER] [--window START/END] [--allow URN]... [--announce FILE.md]
//   [--runbook FILE.md] [--lang id|en] [--contacts FILE | --stack-file Pulumi.prod.yaml] [--json]
// What a change does to the people who use the stack (lib/impact/, lib/announce/).
// Exit: 0 nothing worse than a brief interruption (or planned/allowed), 3 outage or data risk,
// 4 incomplete plan (failed/cancelled/corrupt run, cut-off log, counts differ), 2 bad flags or input.
import { exitWith, parseFlags, runTool, stringFlag, UsageError } from "../lib/cli/flags";

const USAGE = `usage: npm run impact -- INPUT [AFTER] [options]

INPUT is one of:
  preview.json            output of \`pulumi preview --json\`
  events.jsonl            engine event log (\`pulumi preview|up --event-log FILE\`, Automation API
                          events, or \`pulumi stack history events ID --all --output json\`)
  before.json after.json  two offline synth files (\`npm run synth\`) of the same stack: an ESTIMATE.
                          To compare two versions of one stack, synth both with
                          \`--stack NAME --stack-file FILE\` (same NAME), not two differently named stacks.
Use "-" to read the input from standard input.

options:
  --window START/END      ISO 8601 with time zone, e.g. 2025-07-05T22:00+07:00/2025-07-06T01:00+07:00:
                          outages inside it are planned (exit 0)
  --allow URN             accept the data risk of this resource (repeat per resource; needs --window)
  --announce FILE.md      write the announcement for staff (no commands, no ids)
  --runbook FILE.md       write the operator runbook (steps, checks, full rollback)
  --lang en|id            language of both documents (default en)
  --contacts FILE         contacts (JSON or YAML list of {name, role, phone, email})
  --stack-file FILE       read contacts from a stack file's hastack:contacts
  --across-stacks         compare two synth files of differently named stacks resource by resource
  --json                  print the classified plan as JSON instead of the table

exit: 0 no worse than a brief interruption (or planned), 3 outage or data risk,
      4 incomplete plan (failed, cancelled or corrupt run; cut-off log), 2 bad input`;

function main(argv: string[]): Promise<number> {
  return runTool("impact", USAGE, async () => {
    const { values, positionals } = parseFlags(
      argv,
      {
        window: { type: "string" },
        allow: { type: "string", multiple: true },
        announce: { type: "string" },
        runbook: { type: "string" },
        lang: { type: "string" },
        contacts: { type: "string" },
        "stack-file": { type: "string" },
        json: { type: "boolean" },
        "across-stacks": { type: "boolean" },
      },
      { positionals: true },
    );
    const allow = (values.allow as string[] | undefined) ?? [];
    for (const urn of allow) {
      if (!urn.startsWith("urn:pulumi:")) {
        throw new UsageError(
          `--allow needs a resource URN (urn:pulumi:…), got ${JSON.stringify(urn)}`,
        );
      }
    }
    const lang = stringFlag(values, "lang") ?? "en";
    if (lang !== "en" && lang !== "id") {
      throw new UsageError(`--lang must be "en" or "id", got ${JSON.stringify(lang)}`);
    }
    if (positionals.length === 0) {
      throw new UsageError("give an input file");
    }
    if (values.contacts && values["stack-file"]) {
      throw new UsageError("give either --contacts or --stack-file, not both");
    }
    if (values.window === undefined && allow.length > 0) {
      throw new UsageError(
        "--allow needs --window START/END: a data risk is accepted only inside a planned window",
      );
    }
    const { runImpact } = await import("../lib/announce/impact-command");
    return runImpact({
      inputs: positionals,
      window: stringFlag(values, "window"),
      allow,
      announce: stringFlag(values, "announce"),
      runbook: stringFlag(values, "runbook"),
      lang,
      contacts: stringFlag(values, "contacts"),
      stackFile: stringFlag(values, "stack-file"),
      json: values.json === true,
      acrossStacks: values["across-stacks"] === true,
      log: (line) => process.stderr.write(line + "\n"),
      print: (text) => process.stdout.write(text),
    });
  });
}

if (require.main === module) {
  exitWith("impact", main(process.argv.slice(2)));
}
