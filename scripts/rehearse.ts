// `npm run rehearse -- <drill> [flags]`: runs one disaster drill on this machine against real
// daemons on loopback. A thin dispatcher over lib/rehearse/drill.ts: each drill exports
// `main(args: string[]): Promise<number>` (the exit code), prints progress to stderr and a JSON
// summary as its last stdout line, and cleans up after itself, also on SIGINT.
import { loadDrill, usage } from "../lib/rehearse/drill";

async function run(argv: string[]): Promise<number> {
  const [name, ...args] = argv;
  if (name === "--help" || name === "-h") {
    process.stdout.write(usage() + "\n");
    return 0;
  }
  let main: (args: string[]) => Promise<number>;
  if (name === "stack" && args.includes("--apply")) {
    // Issue 12: an update applied to a rehearsal left up by `stack --keep`.
    const { applyMain } = await import("../lib/rehearse/stack/apply-run");
    return applyMain(args);
  }
  const drills = args.indexOf("--drills");
  if (name === "stack" && drills >= 0 && args[drills + 1] !== "none") {
    // Issue 12: drills on the booted stack (boots it when none is up).
    const { drillsMain } = await import("../lib/rehearse/stack/drills");
    return drillsMain(args);
  }
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
