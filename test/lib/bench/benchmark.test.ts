// The benchmark's logic (not its timings: those are `npm run bench`'s job).
import { expect } from "chai";
import {
  flatBaselineProgram,
  generatedPairsProgram,
  median,
  resourceClass,
  pairedRatios,
  roundOrder,
  spread,
  summarize,
} from "../../../lib/bench/benchmark";
import {
  readRehearsalSummary,
  rehearsalCheck,
  RehearsalFigures,
} from "../../../lib/bench/rehearsal-bench";
import { spawnSync } from "child_process";
import * as path from "path";
import { PACKAGE_ROOT } from "../../../lib/package-root";
import { runUnderMocks } from "../../../lib/synth/offline-synth";
import { synthProd } from "../../support/stack-files";

describe("benchmark", () => {
  it("median of odd and even lists", () => {
    expect(median([3, 1, 2])).to.equal(2);
    expect(median([4, 1, 3, 2])).to.equal(2.5);
    expect(() => median([])).to.throw("median of no values");
  });

  it("the flat baseline declares exactly the prod synth's AWS resources, without components", async () => {
    const prod = await synthProd();
    const baseline = await runUnderMocks(flatBaselineProgram(prod), { stack: "prod" });
    const custom = (rs: typeof prod.deployment.resources): string[] =>
      rs
        .filter((r) => r.custom)
        .map((r) => `${r.type} ${r.name}`)
        .sort();
    expect(custom(baseline.deployment.resources)).to.deep.equal(custom(prod.deployment.resources));
    const components = baseline.deployment.resources.filter(
      (r) => !r.custom && r.type !== "pulumi:pulumi:Stack",
    );
    expect(components).to.deep.equal([]);
  });

  it("resolves resource classes from type tokens, and refuses unknown ones", () => {
    expect(resourceClass("aws:ec2/instance:Instance").name).to.equal("Instance");
    expect(() => resourceClass("aws:ec2/nothing:Nothing")).to.throw(
      "no resource class for aws:ec2/nothing:Nothing",
    );
  });

  it("generated stacks grow by the same resources per pair", async () => {
    const count = async (n: number): Promise<number> =>
      (await runUnderMocks(generatedPairsProgram(n), { stack: "bench" })).deployment.resources
        .length;
    const [one, three] = [await count(1), await count(3)];
    const perPair = (three - one) / 2;
    expect(perPair).to.be.greaterThan(20);
    expect(one - perPair).to.equal(2); // the Stack and the shared Dns component
  });

  it("summarize checks the targets and fails them when missed", () => {
    const ok = summarize({
      prod: { seconds: 0.1, peakMB: 150 },
      baseline: { seconds: 0.09, peakMB: 140 },
      "pairs:1": { seconds: 0.02, peakMB: 140 },
      "pairs:10": { seconds: 0.2, peakMB: 160 },
      "pairs:50": { seconds: 1.0, peakMB: 300 },
    });
    expect(ok.summary).to.deep.equal({
      prodSeconds: 0.1,
      baselineRatio: 1.11,
      pairs: { "1": 0.02, "10": 0.2, "50": 1 },
      peakMB: 300,
    });
    expect(ok.checks.every((c) => c.ok)).to.equal(true);
    const slow = summarize({
      prod: { seconds: 6, peakMB: 150 },
      baseline: { seconds: 2, peakMB: 140 },
      "pairs:1": { seconds: 0.01, peakMB: 140 },
      "pairs:10": { seconds: 0.2, peakMB: 160 },
      "pairs:50": { seconds: 1.0, peakMB: 300 },
    });
    expect(slow.checks.filter((c) => !c.ok).map((c) => c.name)).to.deep.equal([
      "components cost at most 1.3× the flat baseline",
      "50 pairs within 55× one pair (linear growth)",
      "synth of prod well under 5 s",
    ]);
  });

  it("interleaves: every case once per round, the start rotating, so no side always runs first", () => {
    const cases = ["prod", "baseline", "pairs:1"];
    const rounds = [0, 1, 2, 3].map((r) => roundOrder(cases, r));
    expect(rounds).to.deep.equal([
      ["prod", "baseline", "pairs:1"],
      ["baseline", "pairs:1", "prod"],
      ["pairs:1", "prod", "baseline"],
      ["prod", "baseline", "pairs:1"],
    ]);
    for (const r of rounds) {
      expect([...r].sort()).to.deep.equal([...cases].sort());
    }
  });

  it("the verdict uses the median of per-round ratios and reports their spread", () => {
    // A load burst in round 3 slows both sides of that round; the ratio stays honest.
    const ratios = pairedRatios([0.5, 0.52, 2.0, 0.49, 0.51], [0.42, 0.44, 1.7, 0.41, 0.43]);
    expect(spread(ratios, 2)).to.deep.equal({ min: 1.18, median: 1.19, max: 1.2 });
    const medians = {
      prod: { seconds: 0.51, peakMB: 150 },
      baseline: { seconds: 0.3, peakMB: 140 }, // medians alone would say 1.7×
      "pairs:1": { seconds: 0.02, peakMB: 140 },
      "pairs:10": { seconds: 0.2, peakMB: 160 },
      "pairs:50": { seconds: 1.0, peakMB: 300 },
    };
    const r = summarize(medians, ratios);
    expect(r.summary.baselineRatio).to.equal(1.19);
    expect(r.summary.baselineRatioSpread).to.deep.equal({ min: 1.18, median: 1.19, max: 1.2 });
    expect(r.checks[0].ok).to.equal(true);
    expect(summarize(medians).checks[0].ok).to.equal(false);
    expect(() => pairedRatios([1], [])).to.throw(/same, non-zero number/);
  });

  it("the CLI: --help exits 0, a bad --runs exits 2, without running anything", () => {
    const cli = path.join(PACKAGE_ROOT, "dist", "scripts", "bench.js");
    const help = spawnSync(process.execPath, [cli, "--help"], { encoding: "utf8" });
    expect(help.status).to.equal(0);
    expect(help.stdout).to.include("usage: npm run bench");
    const bad = spawnSync(process.execPath, [cli, "--runs", "0"], { encoding: "utf8" });
    expect(bad.status).to.equal(2);
    expect(bad.stderr).to.include('bench: --runs must be a whole number 1–99, got "0"');
  });

  it("the CLI refuses a bad --rehearsal or a --lock-wait without one, exit 2, naming the flag", () => {
    const cli = path.join(PACKAGE_ROOT, "dist", "scripts", "bench.js");
    const cases: [string[], string][] = [
      [["--rehearsal", "hot"], 'bench: --rehearsal must be warm or cold, got "hot"'],
      [["--lock-wait", "5"], "bench: --lock-wait goes with --rehearsal"],
      [
        ["--rehearsal", "warm", "--lock-wait", "soon"],
        'bench: --lock-wait must be whole seconds 0–99999, got "soon"',
      ],
    ];
    for (const [args, said] of cases) {
      const r = spawnSync(process.execPath, [cli, ...args], { encoding: "utf8" });
      expect(r.status, args.join(" ")).to.equal(2);
      expect(r.stderr).to.include(said);
    }
  });

  describe("the whole-stack rehearsal's figures", () => {
    const run = (over: Partial<RehearsalFigures>): RehearsalFigures => ({
      mode: "warm",
      seconds: 280,
      rehearsalSeconds: 270,
      servers: 8,
      booted: 8,
      passed: true,
      timings: {},
      cores: 2,
      loadBefore: 0.4,
      loadAfter: 1.9,
      targetSeconds: 300,
      ...over,
    });

    it("reads the rehearsal's last stdout line, and nothing from a run that printed none", () => {
      expect(
        readRehearsalSummary('progress\n{"servers":8,"booted":8,"seconds":575}\n'),
      ).to.deep.equal({ servers: 8, booted: 8, seconds: 575 });
      expect(readRehearsalSummary("")).to.equal(null);
      expect(readRehearsalSummary("rehearse stack: FAILED\n")).to.equal(null);
      expect(readRehearsalSummary("42\n")).to.equal(null);
    });

    it("meets the target only when the run passed within it", () => {
      expect(rehearsalCheck(run({})).ok).to.equal(true);
      expect(rehearsalCheck(run({ seconds: 300 })).ok).to.equal(true);
      const slow = rehearsalCheck(run({ seconds: 575 }));
      expect(slow.ok).to.equal(false);
      expect(slow.detail).to.include("575 s, 8/8 booted (load 0.4 → 1.9 on 2 cores)");
      const failed = rehearsalCheck(run({ seconds: 200, passed: false, booted: 7 }));
      expect(failed.ok, "a fast failure is no pass").to.equal(false);
      expect(failed.detail).to.include("failed after 200 s (7/8 booted");
      expect(rehearsalCheck(run({ mode: "cold", targetSeconds: 900 })).name).to.equal(
        "whole-stack rehearsal cold (image built first) within 900 s",
      );
    });
  });
});
