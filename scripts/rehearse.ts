// `npm run rehearse -- <drill> [flags]`: runs one disaster drill on this machine against real
// daemons on loopback. A thin dispatcher: each drill lives in scripts/rehearse-<drill>.ts and
// exports `main(args: string[]): Promise<number>` (the exit code), printing progress to stderr
// and a JSON summary as its last stdout line. Drill modules load lazily, so one drill's
// missing binaries never stop another. Each drill cleans up after itself, also on SIGINT.
import * as path from "path";

/** Known drills and what each proves. */
export const DRILLS: Record<string, string> = {
  mysql:
    "kill the MySQL/MariaDB primary under load, fail over, fall back; zero acknowledged writes lost",
  backup: "back up to the primary NAS, replicate to the standby NAS, restore and compare checksums",
};

export function usage(): string {
  return [
    "usage: npm run rehearse -- <drill> [flags]   (<drill> --help for its flags)",
    ...Object.entries(DRILLS).map(([name, what]) => `  ${name.padEnd(8)} ${what}`),
  ].join("\n");
}

interface DrillModule {
  main?: (args: string[]) => Promise<number>;
}

/** Resolves a drill name to its module's entry point; throws a message for unknown names. */
export function loadDrill(name: string | undefined): (args: string[]) => Promise<number> {
  if (name === undefined || !Object.prototype.hasOwnProperty.call(DRILLS, name)) {
    throw new Error(
      `${name === undefined ? "no drill given" : `unknown drill ${JSON.stringify(name)}`}: expected one of ${Object.keys(DRILLS).join(", ")}`,
    );
  }
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const mod = require(path.join(__dirname, `rehearse-${name}`)) as DrillModule;
  if (typeof mod.main !== "function") {
    throw new Error(`scripts/rehearse-${name}.ts does not export main(args): Promise<number>`);
  }
  return mod.main;
}

async function run(argv: string[]): Promise<number> {
  const [name, ...args] = argv;
  if (name === "--help" || name === "-h") {
    process.stdout.write(usage() + "\n");
    return 0;
  }
  let main: (args: string[]) => Promise<number>;
  try {
    main = loadDrill(name);
  } catch (e) {
    process.stderr.write(`rehearse: ${(e as Error).message}\n${usage()}\n`);
    return 2;
  }
  return main(args);
}

if (require.main === module) {
  run(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (e: Error) => {
      process.stderr.write(`rehearse: ${e.message}\n`);
      process.exit(1);
    },
  );
}
