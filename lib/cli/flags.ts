// Flag parsing shared by every command-line tool (scripts/*.ts): Node's own `util.parseArgs`,
// with its errors turned into one line that names the flag, and one way to report a refusal.
// A tool exits 0 on success (and on --help), 2 on bad flags or files, and never prints a stack
// trace for input it was given (issue 15).
import { parseArgs, ParseArgsConfig } from "util";

/** A refusal the tool reports as one line (`tool: message`) and exits with `exitCode`. */
export class CliError extends Error {
  constructor(
    message: string,
    /** 2 for bad flags or files (the default); a tool may use 1 for bad content. */
    public readonly exitCode: number = 2,
  ) {
    super(message);
    this.name = "CliError";
  }
}

/** Bad flags: the tool prints the message and its usage, and exits 2. */
export class UsageError extends CliError {
  constructor(message: string) {
    super(message, 2);
    this.name = "UsageError";
  }
}

/** `--help` was asked for: the tool prints its usage on stdout and exits 0. */
export class HelpRequested extends Error {
  constructor() {
    super("help");
    this.name = "HelpRequested";
  }
}

type Options = NonNullable<ParseArgsConfig["options"]>;

export interface ParsedFlags {
  values: Record<string, string | boolean | string[] | undefined>;
  positionals: string[];
}

/**
 * `util.parseArgs` in strict mode with `--help`/`-h` added. Throws HelpRequested for help and
 * UsageError (one line, naming the flag) for anything parseArgs refuses, or for a value that
 * looks like another flag (`--out --stack`), which parseArgs would otherwise take as the value.
 */
export function parseFlags(
  argv: string[],
  options: Options,
  opts: { positionals?: boolean } = {},
): ParsedFlags {
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({
      args: argv,
      options: { ...options, help: { type: "boolean", short: "h" } },
      strict: true,
      allowPositionals: opts.positionals ?? false,
      tokens: true,
    });
  } catch (e) {
    throw new UsageError(describeParseError(e as Error & { code?: string }));
  }
  if (parsed.values.help) {
    throw new HelpRequested();
  }
  for (const token of parsed.tokens ?? []) {
    if (token.kind === "option" && token.inlineValue === false && typeof token.value === "string") {
      if (token.value.startsWith("--")) {
        throw new UsageError(`${token.rawName} needs a value, got the flag ${token.value}`);
      }
    }
  }
  const values = { ...parsed.values } as ParsedFlags["values"];
  delete values.help;
  return { values, positionals: parsed.positionals };
}

function describeParseError(e: Error & { code?: string }): string {
  const m = e.message;
  switch (e.code) {
    case "ERR_PARSE_ARGS_UNKNOWN_OPTION": {
      const flag = /Unknown option '([^']+)'/.exec(m)?.[1] ?? m;
      return `unknown option ${flag}`;
    }
    case "ERR_PARSE_ARGS_INVALID_OPTION_VALUE": {
      const flag = /Option '(?:-\w, )?(--[\w-]+)/.exec(m)?.[1];
      if (/argument missing/.test(m)) {
        return `${flag ?? "an option"} needs a value`;
      }
      return flag ? `${flag} takes no value` : m;
    }
    case "ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL": {
      const arg = /Unexpected argument '([^']+)'/.exec(m)?.[1] ?? m;
      return `unexpected argument ${JSON.stringify(arg)}`;
    }
    default:
      return m.split("\n")[0];
  }
}

/** The tools' shared ending: run, print a refusal as one line, return the exit code. */
export async function runTool(
  tool: string,
  usage: string,
  body: () => Promise<number> | number,
): Promise<number> {
  try {
    return await body();
  } catch (e) {
    if (e instanceof HelpRequested) {
      process.stdout.write(usage + "\n");
      return 0;
    }
    if (e instanceof UsageError) {
      process.stderr.write(`${tool}: ${e.message}\n${usage}\n`);
      return e.exitCode;
    }
    if (e instanceof CliError) {
      process.stderr.write(`${tool}: ${e.message}\n`);
      return e.exitCode;
    }
    throw e;
  }
}

/**
 * Exits with the tool's code; an unexpected failure (a bug) prints its trace and exits 1.
 * Exits explicitly: the Pulumi runtime may leave handles open after a synth. (Writes to files
 * and pipes are synchronous on Linux, so nothing printed is lost.)
 */
export function exitWith(tool: string, result: Promise<number>): void {
  result.then(
    (code) => process.exit(code),
    (e: unknown) => {
      process.stderr.write(`${tool}: unexpected failure: ${(e as Error)?.stack ?? String(e)}\n`);
      process.exit(1);
    },
  );
}

/** A string flag's value, or undefined. */
export function stringFlag(values: ParsedFlags["values"], name: string): string | undefined {
  const v = values[name];
  return typeof v === "string" ? v : undefined;
}
