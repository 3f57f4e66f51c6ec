// The suite's reporter (test/support/summary-reporter.ts) run for real: mocha spawned on two
// fixture files, serial and parallel, its output read. CI reads the last line as the verdict, and
// the slowest-files table must be each file's own seconds in both modes (in parallel mode the
// events arrive replayed after a file ends, so timing them would give ~0 s for every file).
import { expect } from "chai";
import { execFile } from "child_process";
import * as path from "path";
import { PACKAGE_ROOT } from "../../lib/package-root";
import { FILE_TIMES_ENV } from "./file-timer";

const MOCHA = path.join(PACKAGE_ROOT, "node_modules", "mocha", "bin", "mocha.js");
const FIXTURES = path.join("dist", "test", "support", "reporter-fixtures");
const SLOW = path.join(FIXTURES, "slow-hook.fixture.js");
const FAILING = path.join(FIXTURES, "failing.fixture.js");
/** The slow fixture's hook wait (test/support/reporter-fixtures/slow-hook.fixture.ts). */
const SLOW_HOOK_MS = 2000;

interface MochaRun {
  code: number;
  stdout: string;
}

/** mocha with the suite's reporter and timing plugin, as .mocharc.json wires them. */
function runMocha(args: string[]): Promise<MochaRun> {
  // Not this run's worker variables: the child is its own run.
  const env = { ...process.env };
  delete env[FILE_TIMES_ENV];
  delete env.MOCHA_WORKER_ID;
  const argv = [
    MOCHA,
    "--no-config",
    "--reporter",
    path.join("dist", "test", "support", "summary-reporter.js"),
    "--require",
    path.join("dist", "test", "support", "file-timer.js"),
    "--timeout",
    "60000",
    ...args,
  ];
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      argv,
      { cwd: PACKAGE_ROOT, env, timeout: 120000 },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === "number" ? err.code : -1) : 0;
        if (code === -1) {
          reject(new Error(`mocha did not finish: ${err?.message}\n${stderr}`));
        } else {
          resolve({ code, stdout });
        }
      },
    );
  });
}

/** The slowest-files table: seconds by file, and its heading. */
function table(stdout: string): { heading: string; seconds: Map<string, number> } {
  const lines = stdout.split("\n");
  const at = lines.findIndex((l) => l.startsWith("slowest files"));
  expect(at, `no slowest-files table in:\n${stdout}`).to.be.greaterThan(-1);
  const seconds = new Map<string, number>();
  for (const line of lines.slice(at + 1)) {
    const m = /^\s+([\d.]+) s {2}(\S+)$/.exec(line);
    if (!m) {
      break;
    }
    seconds.set(m[2], Number(m[1]));
  }
  return { heading: lines[at], seconds };
}

function lastLine(stdout: string): string {
  return stdout.trimEnd().split("\n").pop()!;
}

for (const mode of ["serial", "parallel"] as const) {
  describe(`summary reporter, ${mode}`, function () {
    this.timeout(180000);
    const modeArgs = mode === "parallel" ? ["--parallel", "--jobs", "2"] : [];
    let run: MochaRun;

    before(async () => {
      run = await runMocha([...modeArgs, SLOW, FAILING]);
    });

    it("ends with the verdict line CI reads, and a failure fails the run", () => {
      expect(lastLine(run.stdout)).to.equal("3 passed, 1 failed, 1 skipped");
      expect(run.code).to.equal(1);
    });

    it("prints the failure readably: the test, the message, expected and actual", () => {
      expect(run.stdout).to.contain("fails with a readable message");
      expect(run.stdout).to.contain("reporter-fixture-marker");
      expect(run.stdout).to.contain("the pair's primary");
      expect(run.stdout).to.contain("the pair's standby");
    });

    it("lists each file's own seconds, the hook's time included", () => {
      const { heading, seconds } = table(run.stdout);
      expect([...seconds.keys()].sort()).to.deep.equal([FAILING, SLOW].sort());
      expect(seconds.get(SLOW)!).to.be.at.least(SLOW_HOOK_MS / 1000);
      expect(seconds.get(FAILING)!).to.be.below(seconds.get(SLOW)!);
      expect(heading).to.match(/^slowest files \(of 2, \d+ s in all/);
      if (mode === "parallel") {
        expect(heading).to.match(/side by side in 2 workers: \d+ s of wall time\):$/);
      }
    });
  });
}

describe("summary reporter, a passing run", function () {
  this.timeout(180000);

  it("exits 0 with 0 failed", async () => {
    const run = await runMocha(["--parallel", "--jobs", "2", SLOW]);
    expect(lastLine(run.stdout)).to.equal("2 passed, 0 failed, 0 skipped");
    expect(run.code).to.equal(0);
  });
});
