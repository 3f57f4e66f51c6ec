// One benchmark case in a fresh process: `node bench-worker.js CASE [DEPLOYMENT_FILE]`, where
// CASE is prod, baseline (needs the prod synth file) or pairs:N. Prints one JSON Sample.
import { flatBaselineProgram, generatedPairsProgram, Sample } from "../lib/bench/benchmark";
import { readDeployment, runUnderMocks, synthesize, Deployment } from "../lib/synth/offline-synth";
import { PACKAGE_ROOT } from "../lib/package-root";

async function main(): Promise<void> {
  const [name, file] = process.argv.slice(2);
  const projectDir = PACKAGE_ROOT;
  // Load what every case uses before timing: the cases differ in what they declare, not in
  // which SDK modules Node has to read from disk.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  require("@pulumi/aws");
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  require("../index");
  let run: () => Promise<Deployment>;
  if (name === "prod") {
    run = () => synthesize({ projectDir, stack: "prod" });
  } else if (name === "baseline" && file) {
    const program = flatBaselineProgram(readDeployment(file));
    run = () => runUnderMocks(program, { stack: "prod" });
  } else if (/^pairs:\d+$/.test(name ?? "")) {
    run = () =>
      runUnderMocks(generatedPairsProgram(Number(name.split(":")[1])), { stack: "bench" });
  } else {
    throw new Error(`unknown case ${JSON.stringify(name)} (prod | baseline FILE | pairs:N)`);
  }
  const started = process.hrtime.bigint();
  const d = await run();
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const sample: Sample = {
    seconds,
    processSeconds: process.uptime(),
    peakMB: process.resourceUsage().maxRSS / 1024,
    resources: d.deployment.resources.length,
  };
  process.stdout.write(JSON.stringify(sample) + "\n");
}

main().catch((e) => {
  process.stderr.write(`bench-worker: ${(e as Error).message}\n`);
  process.exit(1);
});
