// Mocha's spec reporter plus two closing parts: the files that took longest (where the suite's
// time goes, so a slow test is seen where it is added), then one plain line,
// "N passed, N failed, N skipped", that CI reads as the suite's verdict (mocha is not among the
// runners whose own summary it parses).
//
// Seconds per file are each file's own wall time in both modes. Serial: from its top suite's
// begin to end as they happen. Parallel: a file's events reach this process replayed after the
// file has finished (their timestamps say nothing), so each worker times its own files with the
// root-hook plugin test/support/file-timer.ts and writes them to a directory this reporter makes;
// files run side by side then, so their sum exceeds the run's wall time (printed beside it).
import * as fs from "fs";
import * as Mocha from "mocha";
import * as os from "os";
import * as path from "path";
import { FILE_TIMES_ENV, FileTime } from "./file-timer";

/** How many of the slowest files the closing table lists. */
const SLOWEST_SHOWN = 12;

class SummaryReporter extends Mocha.reporters.Spec {
  constructor(runner: Mocha.Runner, options?: Mocha.MochaOptions) {
    super(runner, options);
    const runStarted = Date.now();
    const parallel = options?.parallel === true;
    // Set before the worker pool forks (on run), so every worker inherits it; never inherited from
    // an outer run (a test that spawns mocha from inside a worker).
    const timesDir = parallel
      ? fs.mkdtempSync(path.join(os.tmpdir(), "hastack-file-times-"))
      : undefined;
    if (timesDir) {
      process.env[FILE_TIMES_ENV] = timesDir;
    } else {
      delete process.env[FILE_TIMES_ENV];
    }
    const started = new Map<Mocha.Suite, number>();
    const perFile = new Map<string, number>();
    const add = (file: string, ms: number): void => {
      const rel = path.relative(process.cwd(), file);
      perFile.set(rel, (perFile.get(rel) ?? 0) + ms);
    };
    if (!parallel) {
      runner.on(Mocha.Runner.constants.EVENT_SUITE_BEGIN, (suite: Mocha.Suite) => {
        if (suite.parent?.root && suite.file) {
          started.set(suite, Date.now());
        }
      });
      runner.on(Mocha.Runner.constants.EVENT_SUITE_END, (suite: Mocha.Suite) => {
        const t0 = started.get(suite);
        if (t0 !== undefined && suite.file) {
          add(suite.file, Date.now() - t0);
        }
      });
    }
    runner.once(Mocha.Runner.constants.EVENT_RUN_END, () => {
      if (timesDir) {
        for (const name of fs.readdirSync(timesDir)) {
          for (const line of fs.readFileSync(path.join(timesDir, name), "utf8").split("\n")) {
            if (line.trim()) {
              const t = JSON.parse(line) as FileTime;
              add(t.file, t.ms);
            }
          }
        }
        fs.rmSync(timesDir, { recursive: true, force: true });
      }
      const slowest = [...perFile].sort((a, b) => b[1] - a[1]).slice(0, SLOWEST_SHOWN);
      if (slowest.length > 0) {
        const total = [...perFile.values()].reduce((a, b) => a + b, 0);
        const side = parallel
          ? `, side by side in ${options?.jobs ?? "?"} workers: ${seconds(Date.now() - runStarted)} s of wall time`
          : "";
        process.stdout.write(
          `\nslowest files (of ${perFile.size}, ${seconds(total)} s in all${side}):\n`,
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

function seconds(ms: number): string {
  return (ms / 1000).toFixed(0);
}

export = SummaryReporter;
