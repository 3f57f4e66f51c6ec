// npm run bench [-- --runs N] [--rehearsal warm|cold]: the cost of the components against a flat
// baseline (interleaved, with the spread), the growth with the number of service pairs, the blast
// radius of every switch, and on request the whole-stack rehearsal's boot time against its
// targets (lib/bench/). Last line: JSON.
import { CliError, exitWith, parseFlags, runTool, stringFlag, UsageError } from "../lib/cli/flags";
import { PACKAGE_ROOT } from "../lib/package-root";

const USAGE = `usage: npm run bench [-- --runs N] [--rehearsal warm|cold [--lock-wait S]]
  --runs N            rounds, 1–99 (default 5); each round runs every case once, in rotating
                      order, so both sides of a comparison share the machine's load
  --rehearsal MODE    also boot and check the whole prod stack once (root; minutes) and hold it
                      to its target: warm (base image cached) ≤ 300 s, cold (image built into an
                      empty cache first) ≤ 900 s
  --lock-wait S       seconds to wait for another rehearsal on this machine (default 0: refuse)
exit: 0 every target met, 1 a target missed, 2 bad flags`;

function main(argv: string[]): Promise<number> {
  return runTool("bench", USAGE, async () => {
    const { values } = parseFlags(argv, {
      runs: { type: "string" },
      rehearsal: { type: "string" },
      "lock-wait": { type: "string" },
    });
    const runs = stringFlag(values, "runs") ?? "5";
    if (!/^[1-9]\d?$/.test(runs)) {
      throw new UsageError(`--runs must be a whole number 1–99, got ${JSON.stringify(runs)}`);
    }
    const mode = stringFlag(values, "rehearsal");
    if (mode !== undefined && mode !== "warm" && mode !== "cold") {
      throw new UsageError(`--rehearsal must be warm or cold, got ${JSON.stringify(mode)}`);
    }
    if (mode !== undefined && process.getuid?.() !== 0) {
      throw new CliError("--rehearsal needs root (the rehearsal's containers and namespaces)");
    }
    const lockWait = stringFlag(values, "lock-wait");
    if (lockWait !== undefined && (mode === undefined || !/^\d{1,5}$/.test(lockWait))) {
      throw new UsageError(
        mode === undefined
          ? "--lock-wait goes with --rehearsal"
          : `--lock-wait must be whole seconds 0–99999, got ${JSON.stringify(lockWait)}`,
      );
    }
    const { runBench } = await import("../lib/bench/bench-command");
    return runBench({
      projectDir: PACKAGE_ROOT,
      runs: Number(runs),
      rehearsal: mode ? { mode, lockWait: Number(lockWait ?? "0") } : undefined,
      log: (line) => process.stderr.write(line + "\n"),
      print: (text) => process.stdout.write(text),
    });
  });
}

if (require.main === module) {
  exitWith("bench", main(process.argv.slice(2)));
}
