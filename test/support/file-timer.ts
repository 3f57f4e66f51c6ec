// Root-hook plugin (.mocharc.json `require`): in parallel mode each worker times the test file it
// runs (the root suite's first hook to its last), because the main process only sees a file's
// events replayed after the file has finished, so their timestamps cannot say how long it took.
// The summary reporter names the directory (FILE_TIMES_ENV) and reads one line per file from it.
import * as fs from "fs";
import * as path from "path";
import type { Context } from "mocha";

/** The variable the reporter sets (parallel mode only) to the directory workers write into. */
export const FILE_TIMES_ENV = "HASTACK_FILE_TIMES_DIR";

/** One line a worker writes per file it ran: the file and its own wall time. */
export interface FileTime {
  file: string;
  ms: number;
}

let started: { file: string; at: number } | undefined;

/** The test file whose root suite `ctx`'s hook belongs to (a worker's root holds one file). */
function fileOf(ctx: Context): string | undefined {
  const root = ctx.test?.parent;
  return root?.suites.find((s) => s.file)?.file ?? root?.tests.find((t) => t.file)?.file;
}

export const mochaHooks = {
  beforeAll(this: Context): void {
    const file = fileOf(this);
    started = process.env[FILE_TIMES_ENV] && file ? { file, at: Date.now() } : undefined;
  },
  afterAll(this: Context): void {
    const dir = process.env[FILE_TIMES_ENV];
    if (!dir || !started) {
      return;
    }
    const line: FileTime = { file: started.file, ms: Date.now() - started.at };
    fs.appendFileSync(path.join(dir, `worker-${process.pid}.jsonl`), JSON.stringify(line) + "\n");
    started = undefined;
  },
};
