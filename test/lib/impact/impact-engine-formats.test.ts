// Issue 14: the impact tool reads what the real engine prints. One regression test per defect,
// each on a fixture in the engine's own format (test/fixtures/impact): `pulumi up|preview
// --event-log` JSON lines (apitype.EngineEvent), `pulumi preview --json` (display.PreviewDigest),
// the bare JSON array of `pulumi stack history events --output json`, and synth files.
import { expect } from "chai";
import { spawnSync } from "child_process";
import fc from "fast-check";
import * as fs from "fs";
import * as path from "path";
import {
  DATA_TYPES,
  ImpactInputError,
  ImpactPlan,
  KEY_TYPES,
  PlanStep,
  buildImpactPlan,
  classifyStep,
  decideExit,
  effectiveOp,
  normalizeDeployment,
  parseInputs,
  parseWindow,
  renderPlan,
  serviceParams,
} from "../../../lib/impact/impact-plan";
import { estimateRtoSeconds } from "../../../components/pair-defaults";
import { PACKAGE_ROOT } from "../../../lib/package-root";

const FIXTURES = path.join(PACKAGE_ROOT, "test", "fixtures", "impact");
const CLI = path.join(PACKAGE_ROOT, "dist", "scripts", "impact.js");
const WINDOW = "2025-07-05T22:00+07:00/2025-07-06T01:00+07:00";
const MINUTE = "2025-07-05T22:00+07:00/2025-07-05T22:01+07:00";

function fixture(name: string): { path: string; text: string } {
  const p = path.join(FIXTURES, name);
  return { path: p, text: fs.readFileSync(p, "utf8") };
}

function planOf(...names: string[]): ImpactPlan {
  return buildImpactPlan(parseInputs(names.map(fixture)));
}

function stepNamed(plan: ImpactPlan, name: string) {
  const s = plan.steps.find((x) => x.name === name);
  expect(s, `step ${name}`).not.to.equal(undefined);
  return s!;
}

function runCli(args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: "utf8", timeout: 60_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe("impact (issue 14): a refresh in front of the real step never hides it", () => {
  it("up --refresh event log: refresh then delete of the serving volume is a data risk, exit 3", () => {
    const plan = planOf("events-up-refresh-delete-volume.jsonl");
    const vol = stepNamed(plan, "mysql-pair-primary-data");
    expect(vol.engineOps).to.deep.equal(["refresh", "delete"]);
    expect(vol.op).to.equal("delete");
    expect(vol.class).to.equal("data-risk");
    expect(vol.downtimeSeconds).to.equal(null);
    expect(vol.until).to.equal("until restored from backup");
    expect(decideExit(plan).code).to.equal(3);
  });

  it("the real step's diff is kept, not the refresh's (instanceType, not the drifted tag)", () => {
    const pbx = stepNamed(planOf("events-up-refresh-delete-volume.jsonl"), "pbx-pair-primary");
    expect(pbx.op).to.equal("update");
    expect(pbx.diffReasons).to.deep.equal(["instanceType"]);
    expect(pbx.class).to.equal("brief");
    expect(pbx.refreshFound).to.equal("changed");
  });

  it("the same in --json: plan.steps[] has the delete with class data-risk, exit 3", () => {
    const r = runCli([path.join(FIXTURES, "events-up-refresh-delete-volume.jsonl"), "--json"]);
    expect(r.code, r.stderr).to.equal(3);
    const doc = JSON.parse(r.stdout);
    const vol = doc.plan.steps.find((s: { urn: string }) =>
      s.urn.endsWith("::mysql-pair-primary-data"),
    );
    expect([vol.op, vol.class]).to.deep.equal(["delete", "data-risk"]);
    expect(doc.verdict.code).to.equal(3);
  });

  it("pulumi preview --refresh --json: the refresh step and the delete of one URN are one delete", () => {
    const plan = planOf("preview-refresh-delete-volume.json");
    const vol = stepNamed(plan, "mysql-pair-primary-data");
    expect([vol.op, vol.class]).to.deep.equal(["delete", "data-risk"]);
    expect(decideExit(plan).code).to.equal(3);
    expect(plan.counts.matches).to.equal(true);
  });

  it("a refresh that finds a volume deleted outside Pulumi is reported, though the update re-creates it", () => {
    const plan = planOf("history-events-refresh-found-deleted.json");
    const vol = stepNamed(plan, "mail-pair-primary-data");
    expect(vol.op).to.equal("create");
    expect(vol.refreshFound).to.equal("deleted");
    expect(vol.class).to.equal("data-risk");
    expect(vol.reason).to.match(/refresh found it already deleted/);
    expect(plan.notes.join("\n")).to.match(/mail-pair-primary-data: a refresh found it deleted/);
    expect(decideExit(plan).code).to.equal(3);
  });

  const ops: [string[], string][] = [
    [["refresh", "update"], "update"],
    [["refresh", "delete"], "delete"],
    [["refresh", "same"], "refresh"],
    [["refresh"], "refresh"],
    [["refresh", "create-replacement", "replace", "delete-replaced"], "replace"],
    [["import-replacement", "replace", "discard-replaced"], "import-replacement"],
    [["update", "refresh"], "update"],
  ];
  for (const [input, want] of ops) {
    it(`effective op of [${input.join(", ")}] is ${want}`, () => {
      expect(effectiveOp(input)).to.equal(want);
    });
  }
});

describe("impact (issue 14): a failed, cancelled, corrupt or cut-off run is never OK", () => {
  it("a preview that failed before its first step: exit 4, never 'No changes.'", () => {
    const plan = planOf("events-preview-failed.jsonl");
    const v = decideExit(plan);
    expect(v.code).to.equal(4);
    expect(v.incomplete.join("\n")).to.match(/result "failed"/);
    const text = renderPlan(plan, v);
    expect(text).not.to.match(/^No changes\.$/m);
    expect(text).to.match(/Verdict: INCOMPLETE PLAN \(exit 4\)/);
    expect(text).not.to.match(/Verdict: OK/);
  });

  it("engine error messages lose their colour markup", () => {
    const plan = planOf("events-preview-failed.jsonl");
    const notes = plan.notes.join("\n");
    expect(notes).to.include('hastack:mail.active must be "primary" or "standby"');
    expect(notes).not.to.include("<{%");
  });

  it("a failed `pulumi preview --json` (error diagnostics, no changeSummary): exit 4", () => {
    const v = decideExit(planOf("preview-failed.json"));
    expect(v.code).to.equal(4);
    expect(v.incomplete.join("\n")).to.match(/reported an error/);
    expect(v.incomplete.join("\n")).to.match(/no "changeSummary"/);
  });

  it("an event log cut off at a line boundary (no summary event): exit 4", () => {
    const plan = planOf("events-cut-off.jsonl");
    expect(plan.steps.find((s) => s.name === "mail-mx")?.class).to.equal("brief");
    const v = decideExit(plan);
    expect(v.code).to.equal(4);
    expect(v.incomplete.join("\n")).to.match(/no summary event/);
  });

  it("a log cancelled before its summary (cancelEvent, no summary): exit 4", () => {
    const f = fixture("events-cut-off.jsonl");
    const text = `${f.text}{"sequence":9,"timestamp":1751720401,"cancelEvent":{}}\n`;
    const v = decideExit(buildImpactPlan(parseInputs([{ path: f.path, text }])));
    expect(v.code).to.equal(4);
  });

  it("maybeCorrupt and a failed step: exit 4 even with --window", () => {
    const plan = planOf("events-maybe-corrupt.jsonl");
    const v = decideExit(plan, { window: parseWindow(WINDOW) });
    expect(v.code).to.equal(4);
    expect(v.incomplete.join("\n")).to.match(/maybeCorrupt/);
    expect(v.incomplete.join("\n")).to.match(/1 step\(s\) failed/);
    expect(stepNamed(plan, "pbx-pair-primary").failed).to.equal(true);
  });

  it("the CLI exits 4 for a failed preview", () => {
    const r = runCli([path.join(FIXTURES, "events-preview-failed.jsonl")]);
    expect(r.code, r.stderr).to.equal(4);
    expect(r.stdout).to.match(/INCOMPLETE PLAN \(exit 4\)/);
  });
});

describe("impact (issue 14): every step appears, counts equal the engine's", () => {
  it("the engine's resourceChanges equal the plan's change counts", () => {
    const plan = planOf("events-rds-s3.jsonl");
    expect(plan.counts.matches).to.equal(true);
    expect(plan.counts.plan).to.deep.equal({ replace: 2, delete: 1 });
    expect(plan.counts.rawSteps).to.equal(1 + 3 * 2 + 1);
  });

  it("replace reasons come from every step of the replacement, not only the replace event", () => {
    const f = fixture("events-mysql-volume-kms.jsonl");
    // Only create-replacement/delete-replaced keep the reason: no keys, no -replace diff on replace.
    const lines = f.text
      .split("\n")
      .map((l) =>
        l.includes('"op":"replace"')
          ? l
              .replace('"keys":["kmsKeyId"],', "")
              .replace(
                '"detailedDiff":{"kmsKeyId":{"diffKind":"add-replace","inputDiff":true}}',
                '"detailedDiff":{}',
              )
          : l,
      );
    const replaceLines = lines.filter((l) => l.includes('"op":"replace"'));
    expect(replaceLines).to.have.length(2);
    for (const l of replaceLines) {
      expect(l).not.to.include('"keys":');
      expect(l).not.to.include("add-replace");
    }
    const plan = buildImpactPlan(parseInputs([{ path: f.path, text: lines.join("\n") }]));
    expect(stepNamed(plan, "mysql-pair-standby-data").replaceReasons).to.deep.equal(["kmsKeyId"]);
  });

  it("counts that differ make the plan incomplete and say how", () => {
    const f = fixture("events-mail-failover.jsonl");
    const text = f.text.replace(
      '"resourceChanges":{"same":44,"update":2}',
      '"resourceChanges":{"same":44,"update":3}',
    );
    expect(text).not.to.equal(f.text);
    const plan = buildImpactPlan(parseInputs([{ path: f.path, text }]));
    expect(plan.counts.matches).to.equal(false);
    expect(plan.counts.explanation).to.match(
      /engine counts 3 update but the input's steps give 2 update/,
    );
    expect(decideExit(plan).code).to.equal(4);
  });

  it("a synth diff says why nothing is compared", () => {
    const plan = buildImpactPlan(
      parseInputs([fixture("synth-prod.json"), fixture("synth-prod.json")]),
    );
    expect(plan.counts.matches).to.equal(null);
    expect(renderPlan(plan, decideExit(plan))).to.match(
      /not compared: a synth diff has no engine summary/,
    );
  });

  it("the report lists every step that is not unchanged and counts the rest", () => {
    const plan = planOf("events-import-replacement.jsonl");
    const text = renderPlan(plan, decideExit(plan));
    expect(text).to.match(
      /^import-replacement\s+import-replacement,replace,discard-replaced\s+mail/m,
    );
    expect(text).to.match(
      /Steps: 4 engine step\(s\) over 2 resource\(s\): 1 listed above, 1 unchanged/,
    );
  });
});

describe("impact (issue 14): data stores and keys", () => {
  it("import-replacement + discard-replaced deletes nothing: no data risk, exit 0", () => {
    const plan = planOf("events-import-replacement.jsonl");
    const vol = stepNamed(plan, "mail-pair-primary-data");
    expect(vol.op).to.equal("import-replacement");
    expect(vol.class).to.equal("none");
    expect(decideExit(plan).code).to.equal(0);
    expect(plan.counts.matches).to.equal(true);
  });

  it("scheduling a KMS key's deletion is a data risk, never none", () => {
    const plan = planOf("events-kms-key-delete.jsonl");
    const key = stepNamed(plan, "backup-key");
    expect(key.class).to.equal("data-risk");
    expect(key.reason).to.match(/unreadable/);
    expect(decideExit(plan).code).to.equal(3);
  });

  it("RDS replacements and an S3 delete are open-ended (until restored from backup), never 0 s", () => {
    const plan = planOf("events-rds-s3.jsonl");
    for (const name of ["reports-db", "cdr-archive-db", "invoices"]) {
      const s = stepNamed(plan, name);
      expect([s.class, s.downtimeSeconds, s.until], name).to.deep.equal([
        "data-risk",
        null,
        "until restored from backup",
      ]);
    }
    expect(stepNamed(plan, "reports-db").replaceReasons).to.deep.equal(["storageEncrypted"]);
    expect(renderPlan(plan, decideExit(plan))).to.match(
      /^stack\s+DATA RISK\s+until restored from backup/m,
    );
  });

  it("a window alone never accepts them; each needs --allow", () => {
    const plan = planOf("events-rds-s3.jsonl");
    const w = parseWindow(MINUTE);
    const v = decideExit(plan, { window: w });
    expect(v.code).to.equal(3);
    expect(v.blocking.filter((b) => b.startsWith("data risk"))).to.have.length(3);
    const urns = plan.steps.filter((s) => s.class === "data-risk").map((s) => s.urn);
    const some = decideExit(plan, { window: w, allow: urns.slice(0, 2) });
    expect(some.code).to.equal(3);
    const all = decideExit(plan, { window: w, allow: urns });
    expect(all.code).to.equal(0);
    expect(all.allowed).to.have.length(3);
  });

  describe("invariant: a delete or replace of a stateful type is never 'none'", () => {
    const params = serviceParams(parseInputs([fixture("preview-no-changes.json")]), "stack");
    for (const type of [...DATA_TYPES, ...KEY_TYPES]) {
      for (const op of ["delete", "replace"]) {
        it(`${op} ${type}`, () => {
          const s: PlanStep = {
            op,
            urn: `urn:pulumi:prod::hastack::${type}::x`,
            type,
            name: "x",
            ancestorTypes: [],
            service: "stack",
            replaceReasons: [],
            diffReasons: [],
            protect: false,
            retainOnDelete: false,
          };
          const c = classifyStep(s, params, [s]);
          expect(c.class).to.equal("data-risk");
          expect(c.downtimeSeconds).to.equal(null);
        });
      }
    }
    it("property: whatever the side, switchover, flags or refresh finding, never none (issue 10)", () => {
      fc.assert(
        fc.property(
          fc.constantFrom(...DATA_TYPES, ...KEY_TYPES),
          fc.constantFrom("delete", "replace"),
          fc.constantFrom<"primary" | "standby" | undefined>("primary", "standby", undefined),
          fc.subarray<"primary" | "standby">(["primary", "standby"]),
          fc.constantFrom<"dns" | "eip">("dns", "eip"),
          fc.boolean(),
          fc.boolean(),
          fc.constantFrom<"deleted" | "changed" | undefined>("deleted", "changed", undefined),
          (type, op, side, activeSides, switchover, retainOnDelete, protect, refreshFound) => {
            const s: PlanStep = {
              op,
              urn: `urn:pulumi:prod::hastack::${type}::x`,
              type,
              name: "x",
              ancestorTypes: [],
              service: "mail",
              side,
              replaceReasons: [],
              diffReasons: [],
              protect,
              retainOnDelete,
              refreshFound,
            };
            const c = classifyStep(s, { ...params, activeSides, switchover }, [s]);
            // The one exception: a delete that retainOnDelete keeps in AWS, found intact.
            if (op === "delete" && retainOnDelete && refreshFound !== "deleted") {
              return c.class === "none";
            }
            const serving =
              side === undefined || activeSides.length === 0 || activeSides.includes(side);
            return c.class === "data-risk" && (!serving || c.downtimeSeconds === null);
          },
        ),
        { numRuns: 500 },
      );
    });

    it("compliant: a retained delete leaves the data in AWS (none)", () => {
      const s: PlanStep = {
        op: "delete",
        urn: "urn:pulumi:prod::hastack::aws:ebs/volume:Volume::x",
        type: "aws:ebs/volume:Volume",
        name: "x",
        ancestorTypes: [],
        service: "stack",
        replaceReasons: [],
        diffReasons: [],
        protect: false,
        retainOnDelete: true,
      };
      expect(classifyStep(s, params, [s]).class).to.equal("none");
    });
  });
});

describe("impact (issue 14): projects and stacks", () => {
  it("another project's mysql-www is not reported under hastack's mysql", () => {
    const plan = planOf("preview-foreign-project.json");
    const www = stepNamed(plan, "mysql-www");
    expect(www.project).to.equal("www");
    expect(www.service).to.equal("foreign");
    expect(plan.services.map((s) => s.service)).not.to.include("mysql");
    expect(plan.notes.join("\n")).to.match(/1 step\(s\) belong to project\(s\) www, not hastack/);
  });

  it("two different stacks' synth files: exit 2 with the --stack NAME --stack-file FILE hint", () => {
    expect(() => parseInputs([fixture("synth-prod.json"), fixture("synth-staging.json")])).to.throw(
      ImpactInputError,
      /stack "prod" but .* is stack "staging".*--stack prod --stack-file FILE.*--across-stacks/s,
    );
    const r = runCli([
      path.join(FIXTURES, "synth-prod.json"),
      path.join(FIXTURES, "synth-staging.json"),
    ]);
    expect(r.code).to.equal(2);
    expect(r.stderr).to.match(/--stack prod --stack-file FILE/);
    expect(r.stderr).not.to.match(/^\s+at /m);
  });

  it("--across-stacks compares them resource by resource (a resize, not 'everything down')", () => {
    const input = parseInputs([fixture("synth-prod.json"), fixture("synth-staging.json")], {
      acrossStacks: true,
    });
    expect(input.steps.map((s) => [s.name, s.op])).to.deep.equal([
      ["mail-pair-primary-data", "update"],
    ]);
    const r = runCli([
      path.join(FIXTURES, "synth-prod.json"),
      path.join(FIXTURES, "synth-staging.json"),
      "--across-stacks",
    ]);
    expect(r.code, r.stderr).to.equal(0);
  });

  it("a stack export (no name, custom, ignoreChanges fields) reads as the one Deployment type", () => {
    const synth = JSON.parse(fixture("synth-prod.json").text);
    const exported = JSON.parse(JSON.stringify(synth));
    for (const r of exported.deployment.resources) {
      delete r.name;
      delete r.ignoreChanges;
      if (r.custom === false) {
        delete r.custom;
      }
    }
    const d = normalizeDeployment(exported);
    expect(d.deployment.resources.map((r) => [r.name, r.custom, r.ignoreChanges])).to.deep.equal(
      synth.deployment.resources.map((r: { name: string; custom: boolean }) => [
        r.name,
        r.custom,
        [],
      ]),
    );
    const plan = buildImpactPlan(
      parseInputs([
        { path: "export.json", text: JSON.stringify(exported) },
        fixture("synth-prod.json"),
      ]),
    );
    expect(plan.steps).to.deep.equal([]);
  });
});

describe("impact (issue 14): flags", () => {
  it("--window on 30 February names the date, not 'END must be after START'", () => {
    expect(() => parseWindow("2025-02-30T22:00+07:00/2025-03-01T01:00+07:00")).to.throw(
      ImpactInputError,
      /2025-02-30T22:00\+07:00 is not a calendar date and time \(month 2 of 2025 has 28 days\)/,
    );
  });

  it("--allow without --window: exit 2, as the usage says", () => {
    const urn =
      "urn:pulumi:prod::hastack::hastack:mail:MailPair$hastack:server:ServerPair$aws:ebs/volume:Volume::mail-pair-primary-data";
    const r = runCli([path.join(FIXTURES, "preview-mail-failover.json"), "--allow", urn]);
    expect(r.code).to.equal(2);
    expect(r.stderr).to.match(/--allow needs --window/);
  });
});

describe("impact: one set of defaults with the components (issue 10)", () => {
  it("an eip service without outputs gets the components' RTO (operator response included)", () => {
    const doc = JSON.parse(fixture("preview-pbx-failover.json").text);
    doc.steps = doc.steps.filter((s: { urn: string }) => !s.urn.includes("pulumi:pulumi:Stack"));
    const p = serviceParams(parseInputs([{ path: "p.json", text: JSON.stringify(doc) }]), "pbx");
    expect(p.source).to.equal("config");
    expect(p.switchover).to.equal("eip");
    expect(p.rtoSeconds).to.equal(
      estimateRtoSeconds({ switchover: "eip", ttl: p.ttl, failureThreshold: p.failureThreshold }),
    );
    expect(p.rtoSeconds).to.equal(30 + 900 + 30);
  });
});
