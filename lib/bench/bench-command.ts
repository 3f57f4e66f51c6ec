// What `npm run bench` does once its flags are parsed (scripts/bench.ts): every case in a fresh
// process, the cases interleaved round by round so both sides of the components-vs-baseline
// comparison share the machine's load, and each figure reported with its spread.
import { execFile } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { promisify } from "util";
import {
  measureBlastRadius,
  median,
  pairedRatios,
  roundOrder,
  Sample,
  spread,
  summarize,
  WORKER,
} from "./benchmark";
import { synthesize } from "../synth/offline-synth";
import { benchRehearsal, RehearsalMode, rehearsalCheck } from "./rehearsal-bench";

const run = promisify(execFile);

async function sample(name: string, file?: string): Promise<Sample> {
  const { stdout } = await run(process.execPath, [WORKER, name, ...(file ? [file] : [])], {
    maxBuffer: 1 << 20,
  });
  return JSON.parse(stdout.trim().split("\n").pop()!) as Sample;
}

export const CASES = ["prod", "baseline", "pairs:1", "pairs:10", "pairs:50"] as const;

/** Runs the benchmark; returns the exit code (1 when a target is missed). */
export async function runBench(o: {
  projectDir: string;
  runs: number;
  /** Also time the whole-stack rehearsal once (issue 11's targets). */
  rehearsal?: { mode: RehearsalMode; lockWait: number };
  log: (line: string) => void;
  print: (t: string) => void;
}): Promise<number> {
  // The rehearsal first, on the machine as the user left it: run after the synth rounds (a
  // minute and more of both cores busy) the same boot took 331–340 s where it took 285–292 s
  // alone (2026-12-01, quiet machine, same image and state directory).
  let rehearsal: Record<string, unknown> | undefined;
  let rehearsalVerdict: { name: string; ok: boolean; detail: string } | undefined;
  if (o.rehearsal) {
    o.log(`whole-stack rehearsal, ${o.rehearsal.mode} (rehearse stack --drills none):`);
    const f = await benchRehearsal({ ...o.rehearsal, log: o.log });
    rehearsalVerdict = rehearsalCheck(f);
    rehearsal = { ...f };
    o.log("");
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "hastack-bench-"));
  try {
    const prodFile = path.join(dir, "prod.json");
    fs.writeFileSync(
      prodFile,
      JSON.stringify(await synthesize({ projectDir: o.projectDir, stack: "prod" })),
    );
    o.log(
      `bench: ${o.runs} rounds, every case once per round in rotating order, each in a fresh process (node ${process.version}, ${os.cpus().length} cores, load ${os.loadavg()[0].toFixed(1)})`,
    );
    const samples: Record<string, Sample[]> = Object.fromEntries(CASES.map((c) => [c, []]));
    for (let round = 0; round < o.runs; round++) {
      for (const c of roundOrder(CASES, round)) {
        samples[c].push(await sample(c, c === "baseline" ? prodFile : undefined));
      }
    }
    o.log("case         resources   synth s: min / median / max   process s   peak MiB");
    const medians: Record<string, { seconds: number; peakMB: number }> = {};
    for (const c of CASES) {
      const s = spread(samples[c].map((x) => x.seconds));
      medians[c] = { seconds: s.median, peakMB: median(samples[c].map((x) => x.peakMB)) };
      o.log(
        `${c.padEnd(12)} ${String(samples[c][0].resources).padStart(9)}   ${`${s.min.toFixed(3)} / ${s.median.toFixed(3)} / ${s.max.toFixed(3)}`.padStart(27)}   ${median(
          samples[c].map((x) => x.processSeconds),
        )
          .toFixed(2)
          .padStart(9)}   ${medians[c].peakMB.toFixed(0).padStart(8)}`,
      );
    }
    const ratios = pairedRatios(
      samples.prod.map((x) => x.seconds),
      samples.baseline.map((x) => x.seconds),
    );
    const result = summarize(medians, ratios);
    const r = spread(ratios, 2);
    o.log(
      `components / flat baseline, per round: min ${r.min}×, median ${r.median}×, max ${r.max}×`,
    );
    o.log(
      `per extra pair: ${(result.perPairSeconds * 1000).toFixed(1)} ms; 50 pairs = ${result.linearRatio}× one pair`,
    );
    o.log("\nblast radius of each switch (resources changed):");
    for (const b of await measureBlastRadius(o.projectDir)) {
      o.log(`  ${b.step.padEnd(34)} ${String(b.changed).padStart(3)}   ${b.types.join(", ")}`);
    }
    const checks = [...result.checks, ...(rehearsalVerdict ? [rehearsalVerdict] : [])];
    for (const c of checks) {
      o.log(`${c.ok ? "ok  " : "FAIL"} ${c.name}: ${c.detail}`);
    }
    o.print(JSON.stringify({ ...result.summary, ...(rehearsal ? { rehearsal } : {}) }) + "\n");
    return checks.every((c) => c.ok) ? 0 : 1;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
