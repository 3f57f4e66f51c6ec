// npm run bench [-- --runs N]: the cost of the components against a flat baseline (interleaved,
// with the spread), the growth with the number of service pairs, and the blast radius of every
// switch (lib/bench/). Last line: JSON.
import { exitWith, parseFlags, runTool, stringFlag, UsageError } from "../lib/cli/flags";
import { PACKAGE_ROOT } from "../lib/package-root";

const USAGE = `usage: npm run bench [-- --runs N]
  --runs N   rounds, 1–99 (default 5); each round runs every case once, in rotating order,
             so both sides of a comparison share the machine's load
exit: 0 every target met, 1 a target missed, 2 bad flags`;

function main(argv: string[]): Promise<number> {
  return runTool("bench", USAGE, async () => {
    const { values } = parseFlags(argv, { runs: { type: "string" } });
    const runs = stringFlag(values, "runs") ?? "5";
    if (!/^[1-9]\d?$/.test(runs)) {
      throw new UsageError(`--runs must be a whole number 1–99, got ${JSON.stringify(runs)}`);
    }
    const { runBench } = await import("../lib/bench/bench-command");
    return runBench({
      projectDir: PACKAGE_ROOT,
      runs: Number(runs),
      log: (line) => process.stderr.write(line + "\n"),
      print: (text) => process.stdout.write(text),
    });
  });
}

if (require.main === module) {
  exitWith("bench", main(process.argv.slice(2)));
}
