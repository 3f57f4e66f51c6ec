// npm run bench [-- --runs N]: the cost of the components against a flat baseline, the growth
// with the number of service pairs, and the blast radius of every switch. Last line: JSON.
import { execFile } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { promisify } from "util";
import { measureBlastRadius, median, Sample, summarize, WORKER } from "../lib/bench/benchmark";
import { synthesize } from "../lib/synth/offline-synth";
import { PACKAGE_ROOT } from "../lib/package-root";

const run = promisify(execFile);

async function sample(name: string, file?: string): Promise<Sample> {
  const { stdout } = await run(process.execPath, [WORKER, name, ...(file ? [file] : [])], {
    maxBuffer: 1 << 20,
  });
  return JSON.parse(stdout.trim().split("\n").pop()!) as Sample;
}

function parseRuns(argv: string[]): number {
  if (argv.length === 0) {
    return 5;
  }
  if (argv.length === 2 && argv[0] === "--runs" && /^[1-9]\d?$/.test(argv[1])) {
    return Number(argv[1]);
  }
  process.stderr.write("usage: npm run bench [-- --runs N]   (N: 1–99 runs per case, default 5)\n");
  process.exit(2);
}

async function main(): Promise<void> {
  const runs = parseRuns(process.argv.slice(2));
  const projectDir = PACKAGE_ROOT;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "hastack-bench-"));
  const prodFile = path.join(dir, "prod.json");
  fs.writeFileSync(prodFile, JSON.stringify(await synthesize({ projectDir, stack: "prod" })));

  const cases = ["prod", "baseline", "pairs:1", "pairs:10", "pairs:50"];
  const medians: Record<string, { seconds: number; peakMB: number }> = {};
  const log = (s: string): boolean => process.stderr.write(s + "\n");
  log(
    `bench: ${runs} runs per case, each in a fresh process (node ${process.version}, ${os.cpus().length} cores)`,
  );
  log("case         resources   synth s (median)   process s   peak MiB");
  for (const c of cases) {
    const samples: Sample[] = [];
    for (let i = 0; i < runs; i++) {
      samples.push(await sample(c, c === "baseline" ? prodFile : undefined));
    }
    const m = {
      seconds: median(samples.map((s) => s.seconds)),
      peakMB: median(samples.map((s) => s.peakMB)),
    };
    medians[c] = m;
    log(
      `${c.padEnd(12)} ${String(samples[0].resources).padStart(9)}   ${m.seconds.toFixed(3).padStart(16)}   ${median(
        samples.map((s) => s.processSeconds),
      )
        .toFixed(2)
        .padStart(9)}   ${m.peakMB.toFixed(0).padStart(8)}`,
    );
  }
  const result = summarize(medians);
  log(`components / flat baseline: ${result.summary.baselineRatio}×`);
  log(
    `per extra pair: ${(result.perPairSeconds * 1000).toFixed(1)} ms; 50 pairs = ${result.linearRatio}× one pair`,
  );
  log("\nblast radius of each switch (resources changed):");
  for (const r of await measureBlastRadius(projectDir)) {
    log(`  ${r.step.padEnd(34)} ${String(r.changed).padStart(3)}   ${r.types.join(", ")}`);
  }
  for (const c of result.checks) {
    log(`${c.ok ? "ok  " : "FAIL"} ${c.name}: ${c.detail}`);
  }
  fs.rmSync(dir, { recursive: true, force: true });
  process.stdout.write(JSON.stringify(result.summary) + "\n");
  process.exitCode = result.checks.every((c) => c.ok) ? 0 : 1;
}

main().catch((e) => {
  process.stderr.write(`bench: ${(e as Error).stack ?? e}\n`);
  process.exit(1);
});
