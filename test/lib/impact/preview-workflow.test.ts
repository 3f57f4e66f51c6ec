// The pull-request gate (.github/workflows/preview.yml, issue 14): the workflow parses, names
// only pinned action versions, authenticates to AWS by OIDC and takes secrets from the
// repository, passes the preview file to `npm run impact`, and fails on exit 3 unless the PR
// carries the approval label. The shell of every `run:` step is checked by the real shellcheck,
// and the impact and gate steps are executed with bash against real impact exits.
import { expect } from "chai";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { parse } from "yaml";
import { PACKAGE_ROOT } from "../../../lib/package-root";

const WORKFLOW = path.join(PACKAGE_ROOT, ".github", "workflows", "preview.yml");
const FIXTURES = path.join(PACKAGE_ROOT, "test", "fixtures", "impact");

interface Step {
  name?: string;
  id?: string;
  uses?: string;
  run?: string;
  if?: string;
  with?: Record<string, unknown>;
  env?: Record<string, string>;
}
interface Job {
  if?: string;
  permissions?: Record<string, string>;
  steps: Step[];
}
interface Workflow {
  on: Record<string, { branches?: string[]; types?: string[] }>;
  env: Record<string, string>;
  jobs: Record<string, Job>;
}

const text = fs.readFileSync(WORKFLOW, "utf8");
const wf = parse(text) as Workflow;
const allSteps = Object.values(wf.jobs).flatMap((j) => j.steps);

function stepWith(job: Job, pred: (s: Step) => boolean, what: string): Step {
  const s = job.steps.find(pred);
  expect(s, what).not.to.equal(undefined);
  return s!;
}

/** `${{ … }}` expressions replaced by a plain word, so the script is bash shellcheck can read. */
function bashOf(run: string): string {
  return `#!/bin/bash -e\n${run.replace(/\$\{\{[^}]*\}\}/g, "EXPR")}`;
}

function runBash(script: string, env: Record<string, string>, cwd: string) {
  return spawnSync("bash", ["-e", "-c", script], {
    cwd,
    env: { ...process.env, ...env },
    encoding: "utf8",
    timeout: 60_000,
  });
}

describe("preview workflow: structure", () => {
  it("runs on pull requests to main (and on label changes) and on push to main", () => {
    expect(wf.on.pull_request.branches).to.deep.equal(["main"]);
    expect(wf.on.pull_request.types).to.include.members([
      "opened",
      "synchronize",
      "labeled",
      "unlabeled",
    ]);
    expect(wf.on.push.branches).to.deep.equal(["main"]);
    expect(wf.jobs.preview.if).to.match(/github\.event_name == 'pull_request'/);
    expect(wf.jobs.up.if).to.match(/github\.event_name == 'push'/);
  });

  it("every action is pinned to a full release tag or a commit SHA (no @main, @master, @v4)", () => {
    const uses = allSteps.filter((s) => s.uses).map((s) => s.uses!);
    expect(uses.length).to.be.greaterThan(4);
    for (const u of uses) {
      expect(u, u).to.match(/^[\w.-]+\/[\w.-]+@(v\d+\.\d+\.\d+|[0-9a-f]{40})$/);
    }
  });

  it("AWS comes through OIDC (id-token: write, a role, no stored keys); secrets only from the repository", () => {
    for (const name of ["preview", "up"]) {
      const job = wf.jobs[name];
      expect(job.permissions?.["id-token"], name).to.equal("write");
      expect(job.permissions?.contents, name).to.equal("read");
      const aws = stepWith(
        job,
        (s) => s.uses?.startsWith("aws-actions/configure-aws-credentials@") ?? false,
        `${name}: configure-aws-credentials`,
      );
      expect(aws.with?.["role-to-assume"]).to.equal("${{ secrets.AWS_ROLE_ARN }}");
      expect(aws.with).not.to.have.any.keys("aws-access-key-id", "aws-secret-access-key");
    }
    expect(text).not.to.match(/AKIA[0-9A-Z]{16}|pul-[0-9a-f]{40}/);
    for (const m of text.matchAll(/PULUMI_ACCESS_TOKEN:\s*(.*)/g)) {
      expect(m[1]).to.equal("${{ secrets.PULUMI_ACCESS_TOKEN }}");
    }
    expect(wf.jobs.preview.permissions?.["pull-requests"]).to.equal("write");
  });

  it("the preview is pulumi/actions' pinned CLI running `pulumi preview --json` into a file impact reads", () => {
    const job = wf.jobs.preview;
    const cli = stepWith(
      job,
      (s) => s.uses?.startsWith("pulumi/actions@") ?? false,
      "pulumi/actions",
    );
    expect(cli.with?.["pulumi-version"]).to.equal("${{ env.PULUMI_VERSION }}");
    expect(wf.env.PULUMI_VERSION).to.match(/^\d+\.\d+\.\d+$/);
    const preview = stepWith(job, (s) => /pulumi preview/.test(s.run ?? ""), "preview step");
    const m = /pulumi preview [^\n]*--json[^\n]*>\s*(\S+)/.exec(preview.run!);
    expect(m, "preview --json > FILE").not.to.equal(null);
    const file = m![1];
    const impact = stepWith(job, (s) => /npm run -s impact/.test(s.run ?? ""), "impact step");
    expect(impact.run).to.include(`npm run -s impact -- ${file}`);
    expect(job.steps.indexOf(preview)).to.be.lessThan(job.steps.indexOf(impact));
  });

  it("posts the report as a PR comment and gates on exit 3 with the approval label", () => {
    const job = wf.jobs.preview;
    const comment = stepWith(job, (s) => /gh pr comment/.test(s.run ?? ""), "comment step");
    expect(comment.run).to.include("impact-report.txt");
    expect(comment.env?.GH_TOKEN).to.equal("${{ github.token }}");
    const gate = stepWith(job, (s) => s.name === "Gate on the impact verdict", "gate step");
    expect(gate.env?.APPROVED).to.equal(
      "${{ contains(github.event.pull_request.labels.*.name, env.APPROVAL_LABEL) }}",
    );
    expect(gate.env?.IMPACT_CODE).to.equal("${{ steps.impact.outputs.code }}");
    expect(wf.env.APPROVAL_LABEL).to.equal("impact-approved");
  });

  it("on push to main it runs `up` through pulumi/actions", () => {
    const up = stepWith(wf.jobs.up, (s) => s.uses?.startsWith("pulumi/actions@") ?? false, "up");
    expect(up.with?.command).to.equal("up");
    expect(up.env?.PULUMI_ACCESS_TOKEN).to.equal("${{ secrets.PULUMI_ACCESS_TOKEN }}");
  });
});

describe("preview workflow: the steps' shell, for real", function () {
  this.timeout(120_000);
  let dir: string;
  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "hastack-workflow-"));
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it("shellcheck finds nothing in any run: block", () => {
    allSteps
      .filter((s) => s.run)
      .forEach((s, i) => {
        const r = spawnSync("shellcheck", ["-s", "bash", "-"], {
          input: bashOf(s.run!),
          encoding: "utf8",
          timeout: 30_000,
        });
        expect(r.error, "shellcheck must be installed (test/install-deps.sh)").to.equal(undefined);
        expect(r.status, `step ${s.name ?? s.run!.split("\n")[0]} (#${i}):\n${r.stdout}`).to.equal(
          0,
        );
      });
  });

  /** Runs the impact step on a fixture with npm shimmed to the built CLI; returns its recorded exit. */
  function impactStep(fixture: string): string {
    const step = wf.jobs.preview.steps.find((s) => s.id === "impact")!;
    const bin = path.join(dir, "bin");
    fs.mkdirSync(bin, { recursive: true });
    // `npm run -s impact -- ARGS` → node dist/scripts/impact.js ARGS (the build is current in tests).
    fs.writeFileSync(
      path.join(bin, "npm"),
      `#!/bin/bash\nwhile [ "$#" -gt 0 ] && [ "$1" != "--" ]; do shift; done\nshift\nexec "${process.execPath}" "${path.join(PACKAGE_ROOT, "dist", "scripts", "impact.js")}" "$@"\n`,
      { mode: 0o755 },
    );
    fs.copyFileSync(path.join(FIXTURES, fixture), path.join(dir, "preview.json"));
    const out = path.join(dir, "github-output");
    fs.writeFileSync(out, "");
    const r = runBash(step.run!, { PATH: `${bin}:${process.env.PATH}`, GITHUB_OUTPUT: out }, dir);
    expect(r.status, r.stderr).to.equal(0);
    return fs.readFileSync(out, "utf8").trim();
  }

  it("the impact step records impact's exit code without failing itself", () => {
    expect(impactStep("preview-mail-failover.json")).to.equal("code=0");
    expect(impactStep("preview-mail-move-az.json")).to.equal("code=3");
    expect(fs.readFileSync(path.join(dir, "impact-report.txt"), "utf8")).to.match(
      /BLOCKED \(exit 3\)/,
    );
    expect(impactStep("preview-failed.json")).to.equal("code=4");
  });

  const cases: [string, string, number][] = [
    ["0", "false", 0],
    ["3", "false", 1],
    ["3", "true", 0],
    ["4", "true", 1],
    ["2", "true", 1],
    ["", "false", 1],
  ];
  for (const [code, approved, want] of cases) {
    it(`gate: impact exit ${code || "(none)"}, label ${approved === "true" ? "present" : "absent"} → ${want === 0 ? "passes" : "fails"}`, () => {
      const gate = wf.jobs.preview.steps.find((s) => s.name === "Gate on the impact verdict")!;
      const r = runBash(
        gate.run!,
        { IMPACT_CODE: code, APPROVED: approved, APPROVAL_LABEL: wf.env.APPROVAL_LABEL },
        dir,
      );
      expect(r.status, r.stdout + r.stderr).to.equal(want);
    });
  }
});
