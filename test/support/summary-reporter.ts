// Mocha's spec reporter plus two closing parts: the files that took longest (where the suite's
// time goes, so a slow test is seen where it is added), then one plain line,
// "N passed, N failed, N skipped", that CI reads as the suite's verdict (mocha is not among the
// runners whose own summary it parses).
import * as Mocha from "mocha";
import * as path from "path";

/** How many of the slowest files the closing table lists. */
const SLOWEST_SHOWN = 12;

class SummaryReporter extends Mocha.reporters.Spec {
  constructor(runner: Mocha.Runner, options?: Mocha.MochaOptions) {
    super(runner, options);
    const started = new Map<Mocha.Suite, number>();
    const perFile = new Map<string, number>();
    runner.on(Mocha.Runner.constants.EVENT_SUITE_BEGIN, (suite: Mocha.Suite) => {
      if (suite.parent?.root && suite.file) {
        started.set(suite, Date.now());
      }
    });
    runner.on(Mocha.Runner.constants.EVENT_SUITE_END, (suite: Mocha.Suite) => {
      const t0 = started.get(suite);
      if (t0 === undefined || !suite.file) {
        return;
      }
      const file = path.relative(process.cwd(), suite.file);
      perFile.set(file, (perFile.get(file) ?? 0) + (Date.now() - t0));
    });
    runner.once(Mocha.Runner.constants.EVENT_RUN_END, () => {
      const slowest = [...perFile].sort((a, b) => b[1] - a[1]).slice(0, SLOWEST_SHOWN);
      if (slowest.length > 0) {
        const total = [...perFile.values()].reduce((a, b) => a + b, 0);
        process.stdout.write(
          `\nslowest files (of ${perFile.size}, ${(total / 1000).toFixed(0)} s in all):\n`,
        );
        for (const [file, ms] of slowest) {
          process.stdout.write(`  ${(ms / 1000).toFixed(1).padStart(7)} s  ${file}\n`);
        }
      }
      const s = runner.stats ?? { passes: 0, failures: 0, pending: 0 };
      process.stdout.write(`\n${s.passes} passed, ${s.failures} failed, ${s.pending} skipped\n`);
    });
  }
}

export = SummaryReporter;
