// Impact plans from real-format inputs: `pulumi preview --json` digests and engine event logs
// (fixtures in test/fixtures/impact, shaped like display.PreviewDigest and apitype.EngineEvent),
// the classification table, the exit-code policy, the CLI and the announcement.
import { expect } from "chai";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import {
  ClassifiedStep,
  ImpactInputError,
  ImpactPlan,
  PlanStep,
  applyIgnoreChanges,
  buildImpactPlan,
  classifyStep,
  decideExit,
  logicalOp,
  parseInputs,
  parseUrn,
  parseWindow,
  replaceReasonsFor,
  serviceOf,
  serviceParams,
  sideOf,
} from "../../../lib/impact/impact-plan";
import { PACKAGE_ROOT } from "../../../lib/package-root";

const ROOT = PACKAGE_ROOT;
const FIXTURES = path.join(ROOT, "test", "fixtures", "impact");
const CLI = path.join(ROOT, "dist", "scripts", "impact.js");
const WINDOW = "2025-07-05T22:00+07:00/2025-07-06T01:00+07:00";

function fixture(name: string): { path: string; text: string } {
  const p = path.join(FIXTURES, name);
  return { path: p, text: fs.readFileSync(p, "utf8") };
}

function planOf(...names: string[]): ImpactPlan {
  return buildImpactPlan(parseInputs(names.map(fixture)));
}

function classes(plan: ImpactPlan): Record<string, string> {
  return Object.fromEntries(plan.services.map((s) => [s.service, s.class]));
}

function runCli(args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: "utf8", timeout: 30_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe("impact: URNs and services", () => {
  const cases: [string, { type: string; parents: string[]; name: string; service: string }][] = [
    [
      "urn:pulumi:prod::hastack::hastack:mail:MailPair$hastack:server:ServerPair$aws:ec2/instance:Instance::mail-pair-primary",
      {
        type: "aws:ec2/instance:Instance",
        parents: ["hastack:server:ServerPair", "hastack:mail:MailPair"],
        name: "mail-pair-primary",
        service: "mail",
      },
    ],
    [
      "urn:pulumi:prod::hastack::hastack:dns:Dns$aws:route53/zone:Zone::dns-zone",
      {
        type: "aws:route53/zone:Zone",
        parents: ["hastack:dns:Dns"],
        name: "dns-zone",
        service: "dns",
      },
    ],
    [
      "urn:pulumi:prod::hastack::hastack:nas:NasBackups$hastack:server:ServerPair$aws:ebs/volume:Volume::nas-pair-standby-data",
      {
        type: "aws:ebs/volume:Volume",
        parents: ["hastack:server:ServerPair", "hastack:nas:NasBackups"],
        name: "nas-pair-standby-data",
        service: "nas",
      },
    ],
    // A ServerPair straight under the stack: the name's first segment names the service.
    [
      "urn:pulumi:prod::hastack::hastack:server:ServerPair$aws:ec2/eip:Eip::pbx-primary-eip",
      {
        type: "aws:ec2/eip:Eip",
        parents: ["hastack:server:ServerPair"],
        name: "pbx-primary-eip",
        service: "pbx",
      },
    ],
    [
      "urn:pulumi:prod::hastack::aws:ec2/vpc:Vpc::network-vpc",
      { type: "aws:ec2/vpc:Vpc", parents: [], name: "network-vpc", service: "stack" },
    ],
  ];
  for (const [urn, want] of cases) {
    it(`maps ${want.name} (${want.type}) to ${want.service}`, () => {
      const u = parseUrn(urn);
      expect(u.type).to.equal(want.type);
      expect(u.parentTypes).to.deep.equal(want.parents);
      expect(u.name).to.equal(want.name);
      expect(u.stack).to.equal("prod");
      expect(serviceOf(u.type, u.parentTypes, u.name)).to.equal(want.service);
    });
  }
  it("the nearest service component wins over a name that looks like another service", () => {
    expect(
      serviceOf("aws:ec2/eip:Eip", ["hastack:server:ServerPair", "hastack:pbx:PbxPair"], "mail-x"),
    ).to.equal("pbx");
  });
  it("refuses something that is not a URN", () => {
    expect(() => parseUrn("arn:aws:ec2:::instance/i-1")).to.throw(
      ImpactInputError,
      /not a Pulumi URN/,
    );
    expect(() => parseUrn("urn:pulumi:prod::hastack")).to.throw(ImpactInputError);
  });
});

describe("impact: pulumi preview --json", () => {
  it("a dns failover (two failover records updated) is a brief interruption of mail, exit 0", () => {
    const plan = planOf("preview-mail-failover.json");
    expect(plan.kind).to.equal("preview-json");
    expect(classes(plan)).to.deep.equal({ mail: "brief" });
    const mail = plan.services[0];
    // TTL 60 from the root stack's outputs + 60 s Route 53 propagation.
    expect(mail.params.source).to.equal("outputs");
    expect(mail.downtimeSeconds).to.equal(120);
    expect(decideExit(plan).code).to.equal(0);
  });

  it("an eip failover (EipAssociation replaced for instanceId) is a brief interruption of pbx", () => {
    const plan = planOf("preview-pbx-failover.json");
    expect(classes(plan)).to.deep.equal({ pbx: "brief" });
    const step = plan.steps.find((s) => s.type === "aws:ec2/eipAssociation:EipAssociation")!;
    expect(step.op).to.equal("replace");
    expect(step.replaceReasons).to.deep.equal(["instanceId"]);
    expect(step.downtimeSeconds).to.equal(30);
    expect(decideExit(plan).code).to.equal(0);
  });

  it("moving the serving mail server to another AZ: data risk on its volume, outage on the server", () => {
    const plan = planOf("preview-mail-move-az.json");
    const by = Object.fromEntries(plan.steps.map((s) => [s.name, s.class]));
    expect(by).to.include({
      "mail-pair-primary-data": "data-risk",
      "mail-pair-primary": "outage",
      "mail-pair-primary-data-attach": "outage",
    });
    expect(classes(plan)).to.deep.equal({ mail: "data-risk" });
    // The server alone would be capped at the designed RTO (Route 53 fails over: 90 s) ...
    expect(plan.steps.find((s) => s.name === "mail-pair-primary")!.downtimeSeconds).to.equal(90);
    // ... but the serving side's data volume starts empty: open-ended, never a number (issue 14).
    expect(plan.services[0].downtimeSeconds).to.equal(null);
    expect(plan.services[0].until).to.equal("until restored from backup");
    expect(plan.notes.join("\n")).to.match(/mail-pair-primary is protected/);
    expect(decideExit(plan).code).to.equal(3);
  });

  it("no changes: only the root stack step, exit 0", () => {
    const plan = planOf("preview-no-changes.json");
    expect(plan.services).to.deep.equal([]);
    expect(plan.worst).to.equal("none");
    expect(decideExit(plan).code).to.equal(0);
  });

  it("--show-replacement-steps output (create-replacement, replace, delete-replaced) counts as one replace", () => {
    const doc = JSON.parse(fixture("preview-pbx-failover.json").text);
    const replace = doc.steps[1];
    doc.steps.splice(1, 1, { ...replace, op: "create-replacement", oldState: undefined }, replace, {
      ...replace,
      op: "delete-replaced",
      newState: undefined,
      replaceReasons: undefined,
    });
    const plan = buildImpactPlan(parseInputs([{ path: "p.json", text: JSON.stringify(doc) }]));
    const assoc = plan.steps.filter((s) => s.type === "aws:ec2/eipAssociation:EipAssociation");
    expect(assoc.map((s) => [s.op, s.class, s.replaceReasons])).to.deep.equal([
      ["replace", "brief", ["instanceId"]],
    ]);
  });

  it("--json prints the classified plan and the verdict", () => {
    const r = runCli([path.join(FIXTURES, "preview-pbx-failover.json"), "--json"]);
    expect(r.code).to.equal(0);
    const doc = JSON.parse(r.stdout);
    expect(doc.verdict.code).to.equal(0);
    expect(
      doc.plan.services.map((s: { service: string; class: string }) => [s.service, s.class]),
    ).to.deep.equal([["pbx", "brief"]]);
  });

  it("reads service parameters from the preview's config when the stack has no outputs yet", () => {
    const doc = JSON.parse(fixture("preview-mail-failover.json").text);
    doc.steps = doc.steps.filter((s: { urn: string }) => !s.urn.includes("pulumi:pulumi:Stack"));
    const input = parseInputs([{ path: "p.json", text: JSON.stringify(doc) }]);
    const p = serviceParams(input, "mail");
    expect(p.source).to.equal("config");
    expect(p.bootSeconds).to.equal(240);
    expect(p.activeAfter).to.equal("standby");
  });
});

describe("impact: engine event logs", () => {
  it("merges create-replacement/replace/delete-replaced of one URN into one replace", () => {
    const plan = planOf("events-mysql-volume-kms.jsonl");
    expect(plan.kind).to.equal("event-log");
    const vol = plan.steps.filter((s) => s.name === "mysql-pair-standby-data");
    expect(vol).to.have.length(1);
    expect(vol[0].op).to.equal("replace");
    expect(vol[0].replaceReasons).to.deep.equal(["kmsKeyId"]);
    expect(vol[0].class).to.equal("data-risk");
    // The standby's volume: nobody is cut off, but its data (the replica) is at risk.
    expect(vol[0].downtimeSeconds).to.equal(0);
  });

  it("an instanceType change stops and starts the serving PBX: brief, stop + boot time", () => {
    const plan = planOf("events-mysql-volume-kms.jsonl");
    const pbx = plan.steps.find((s) => s.name === "pbx-pair-primary")!;
    expect(pbx.class).to.equal("brief");
    expect(pbx.downtimeSeconds).to.equal(60 + 300);
    expect(classes(plan)).to.deep.equal({ pbx: "brief", mysql: "data-risk" });
    expect(decideExit(plan).code).to.equal(3);
  });

  it("the same failover as preview JSON and as an event log gives the same plan", () => {
    const a = planOf("preview-mail-failover.json");
    const b = planOf("events-mail-failover.jsonl");
    const view = (p: ImpactPlan) =>
      p.steps.map((s) => [s.urn, s.op, s.class, s.downtimeSeconds]).sort();
    expect(view(b)).to.deep.equal(view(a));
  });

  const ops: [string[], string][] = [
    [["same"], "same"],
    [["update"], "update"],
    [["create-replacement", "replace", "delete-replaced"], "replace"],
    [["delete-replaced", "replace", "create-replacement"], "replace"],
    [["same", "refresh"], "refresh"],
  ];
  for (const [input, want] of ops) {
    it(`logical op of [${input.join(", ")}] is ${want}`, () => {
      expect(logicalOp(input)).to.equal(want);
    });
  }
});

describe("impact: bad input is refused with a clear error", () => {
  const bad: [string, string[], RegExp][] = [
    [
      "an unknown step op",
      [JSON.stringify({ steps: [{ op: "teleport", urn: "urn:pulumi:p::h::aws:ec2/eip:Eip::x" }] })],
      /unknown step op "teleport"/,
    ],
    ["a step without a URN", [JSON.stringify({ steps: [{ op: "update" }] })], /steps\[0\]\.urn/],
    [
      "a bad URN",
      [JSON.stringify({ steps: [{ op: "update", urn: "eip-x" }] })],
      /not a Pulumi URN/,
    ],
    ["unrelated JSON", [JSON.stringify({ hello: "world" })], /not a recognised input/],
    [
      "a broken event log line",
      ['{"sequence":0,"timestamp":1,"cancelEvent":{}}\nnot json'],
      /:2: not JSON/,
    ],
    [
      "an event log without resource or summary events",
      ['{"sequence":0,"timestamp":1,"cancelEvent":{}}'],
      /without any resource or summary event/,
    ],
    ["JSON lines that are not engine events", ['{"a":1}\n{"b":2}'], /not an engine event/],
    ["one synth file", [JSON.stringify({ version: 3, deployment: { resources: [] } })], /give two/],
    ["two files that are not synth files", ["{}", "{}"], /both must be synth deployments/],
    ["an empty file", [""], /empty file/],
  ];
  for (const [what, texts, re] of bad) {
    it(what, () => {
      expect(() => parseInputs(texts.map((text, i) => ({ path: `in${i}.json`, text })))).to.throw(
        ImpactInputError,
        re,
      );
    });
  }
});

/** A hand-made step for table-driven classification. */
function step(o: Partial<PlanStep> & Pick<PlanStep, "op" | "type" | "name">): PlanStep {
  return {
    urn: `urn:pulumi:prod::hastack::hastack:mail:MailPair$hastack:server:ServerPair$${o.type}::${o.name}`,
    ancestorTypes: ["hastack:server:ServerPair", "hastack:mail:MailPair"],
    service: "mail",
    replaceReasons: [],
    diffReasons: [],
    protect: false,
    retainOnDelete: false,
    side: sideOf(o.name),
    ...o,
  };
}

describe("impact: classification table", () => {
  const input = parseInputs([fixture("preview-no-changes.json")]);
  const mail = serviceParams(input, "mail"); // active primary, dns, ttl 60, boot 240, rto 90
  const rows: [string, PlanStep, PlanStep[], string, number | null][] = [
    [
      "a new resource",
      step({ op: "create", type: "aws:ssm/parameter:Parameter", name: "mail-p" }),
      [],
      "none",
      0,
    ],
    [
      "a record update (switch) on a 300 s record",
      step({
        op: "update",
        type: "aws:route53/record:Record",
        name: "mail-mx",
        oldInputs: { ttl: 300 },
        newInputs: { ttl: 300 },
      }),
      [],
      "brief",
      360,
    ],
    [
      "a record whose TTL alone changes (60 → 30): no switch",
      step({
        op: "update",
        type: "aws:route53/record:Record",
        name: "mail-mx",
        oldInputs: { ttl: 60, records: ["10 mx1.kantor-contoh.co.id"] },
        newInputs: { ttl: 30, records: ["10 mx1.kantor-contoh.co.id"] },
        diffReasons: ["ttl"],
      }),
      [],
      "none",
      0,
    ],
    [
      "a record whose TTL and answers change: a switch",
      step({
        op: "update",
        type: "aws:route53/record:Record",
        name: "mail-mx",
        oldInputs: { ttl: 300, records: ["10 mx1.kantor-contoh.co.id"] },
        newInputs: { ttl: 60, records: ["10 mx2.kantor-contoh.co.id"] },
        diffReasons: ["records[0]", "ttl"],
      }),
      [],
      "brief",
      360,
    ],
    [
      "the service record deleted",
      step({
        op: "delete",
        type: "aws:route53/record:Record",
        name: "mail-a",
        oldInputs: { name: "mail.kantor-contoh.co.id", type: "A" },
      }),
      [],
      "outage",
      null,
    ],
    [
      "an unreferenced record deleted (old server's A record after its MX went)",
      step({
        op: "delete",
        type: "aws:route53/record:Record",
        name: "mail-mx-old",
        oldInputs: { name: "mx-old.kantor-contoh.co.id", type: "A" },
      }),
      [],
      "none",
      0,
    ],
    [
      "a record deleted that an MX still points at",
      step({
        op: "delete",
        type: "aws:route53/record:Record",
        name: "mail-mx-old",
        oldInputs: { name: "mx-old.kantor-contoh.co.id", type: "A" },
      }),
      [
        step({
          op: "update",
          type: "aws:route53/record:Record",
          name: "mail-mx",
          newInputs: {
            name: "kantor-contoh.co.id",
            type: "MX",
            records: ["0 mx1.kantor-contoh.co.id", "10 mx-old.kantor-contoh.co.id"],
          },
        }),
      ],
      "outage",
      null,
    ],
    [
      "a standby instance type change",
      step({
        op: "update",
        type: "aws:ec2/instance:Instance",
        name: "mail-pair-standby",
        diffReasons: ["instanceType"],
      }),
      [],
      "none",
      0,
    ],
    [
      "a tag change on the serving instance",
      step({
        op: "update",
        type: "aws:ec2/instance:Instance",
        name: "mail-pair-primary",
        diffReasons: ["tags"],
      }),
      [],
      "none",
      0,
    ],
    [
      "the standby server replaced (data volume attached)",
      step({
        op: "replace",
        type: "aws:ec2/instance:Instance",
        name: "mail-pair-standby",
        id: "i-2",
      }),
      [
        step({
          op: "replace",
          type: "aws:ec2/volumeAttachment:VolumeAttachment",
          name: "mail-pair-standby-data-attach",
          oldInputs: { instanceId: "i-2" },
        }),
      ],
      "none",
      0,
    ],
    [
      "a server with its data on inline EBS devices replaced",
      step({
        op: "replace",
        type: "aws:ec2/instance:Instance",
        name: "mail-pair-primary",
        oldInputs: { ebsBlockDevices: [{ deviceName: "/dev/sdf" }] },
      }),
      [],
      "data-risk",
      null, // its data is gone with it: until restored from backup
    ],
    [
      "a retained data volume leaving the stack",
      step({
        op: "delete",
        type: "aws:ebs/volume:Volume",
        name: "mail-pair-standby-data",
        retainOnDelete: true,
      }),
      [],
      "none",
      0,
    ],
    [
      "a backup vault deleted",
      step({ op: "delete", type: "aws:backup/vault:Vault", name: "nas-vault" }),
      [],
      "data-risk",
      null, // nothing takes its place: open-ended (issue 14)
    ],
    [
      "a password replaced",
      step({
        op: "replace",
        type: "random:index/randomPassword:RandomPassword",
        name: "mail-dsync-password",
        replaceReasons: ["length"],
      }),
      [],
      "outage",
      330,
    ],
    [
      "a health check replaced",
      step({
        op: "replace",
        type: "aws:route53/healthCheck:HealthCheck",
        name: "mail-pair-primary-hc",
      }),
      [],
      "none",
      0,
    ],
    [
      "a remote command run (role change)",
      step({ op: "create", type: "command:remote:Command", name: "mail-promote" }),
      [],
      "brief",
      0,
    ],
    [
      "a read",
      step({ op: "read", type: "aws:route53/zone:Zone", name: "dns-zone" }),
      [],
      "none",
      0,
    ],
  ];
  for (const [what, s, others, cls, down] of rows) {
    it(`${what}: ${cls}`, () => {
      const c: ClassifiedStep = classifyStep(s, mail, [s, ...others]);
      expect(c.class, c.reason).to.equal(cls);
      expect(c.downtimeSeconds).to.equal(down);
    });
  }
});

describe("impact: replace-forcing table (synth estimates)", () => {
  const rows: [string, Record<string, unknown>, Record<string, unknown>, string[]][] = [
    ["aws:ec2/instance:Instance", { instanceType: "t3.small" }, { instanceType: "t3.large" }, []],
    ["aws:ec2/instance:Instance", { subnetId: "subnet-1" }, { subnetId: "subnet-2" }, ["subnetId"]],
    ["aws:ec2/instance:Instance", { userData: "a" }, { userData: "b" }, []],
    [
      "aws:ec2/instance:Instance",
      { userData: "a" },
      { userData: "b", userDataReplaceOnChange: true },
      ["userData"],
    ],
    [
      "aws:ec2/instance:Instance",
      { rootBlockDevice: { volumeSize: 20, encrypted: true } },
      { rootBlockDevice: { volumeSize: 40, encrypted: true } },
      [],
    ],
    [
      "aws:ec2/instance:Instance",
      { rootBlockDevice: { encrypted: false } },
      { rootBlockDevice: { encrypted: true } },
      ["rootBlockDevice.encrypted"],
    ],
    ["aws:ebs/volume:Volume", { size: 50 }, { size: 100 }, []],
    [
      "aws:ebs/volume:Volume",
      { availabilityZone: "a" },
      { availabilityZone: "b" },
      ["availabilityZone"],
    ],
    [
      "aws:ec2/eipAssociation:EipAssociation",
      { instanceId: "i-1" },
      { instanceId: "i-2" },
      ["instanceId"],
    ],
    ["aws:route53/record:Record", { records: ["1.1.1.1"] }, { records: ["2.2.2.2"] }, []],
    [
      "aws:route53/record:Record",
      { setIdentifier: "a" },
      { setIdentifier: "b" },
      ["setIdentifier"],
    ],
    ["aws:route53/healthCheck:HealthCheck", { type: "TCP" }, { type: "HTTP" }, ["type"]],
    [
      "aws:ec2/securityGroup:SecurityGroup",
      { description: "x" },
      { description: "y" },
      ["description"],
    ],
    ["random:index/randomPassword:RandomPassword", { length: 24 }, { length: 32 }, ["length"]],
    ["aws:unknown/thing:Thing", { a: 1 }, { a: 2 }, []],
  ];
  for (const [type, a, b, want] of rows) {
    it(`${type} ${JSON.stringify(a)} → ${JSON.stringify(b)}: ${want.length ? `replace (${want})` : "in place"}`, () => {
      expect(replaceReasonsFor(type, a, b)).to.deep.equal(want);
    });
  }
  it("ignoreChanges keeps the old value, so an ignored AMI change is no change at all", () => {
    const eff = applyIgnoreChanges(
      { ami: "ami-1", tags: { a: "1" } },
      { ami: "ami-2", tags: { a: "2" } },
      ["ami", "tags.a"],
    );
    expect(eff).to.deep.equal({ ami: "ami-1", tags: { a: "1" } });
  });
});

describe("impact: exit policy (--window, --allow)", () => {
  const w = parseWindow(WINDOW);
  const plan = planOf("preview-mail-move-az.json");
  const volume = plan.steps.find((s) => s.name === "mail-pair-primary-data")!.urn;

  it("parses an ISO 8601 interval with its offset", () => {
    expect(w.start.toISOString()).to.equal("2025-07-05T15:00:00.000Z");
    expect(w.end.toISOString()).to.equal("2025-07-05T18:00:00.000Z");
    expect(w.offsetMinutes).to.equal(420);
  });
  for (const bad of [
    "2025-07-05T22:00/2025-07-06T01:00",
    "2025-07-06T01:00Z/2025-07-05T22:00Z",
    "tomorrow",
    "2025-07-05T22:00Z",
  ]) {
    it(`refuses --window ${bad}`, () => {
      expect(() => parseWindow(bad)).to.throw(ImpactInputError, /--window/);
    });
  }
  it("without a window an outage blocks (3)", () => {
    expect(decideExit(planOf("preview-mail-move-az.json")).code).to.equal(3);
  });
  it("a window plans the outages, but the data risk still blocks", () => {
    const v = decideExit(plan, { window: w });
    expect(v.code).to.equal(3);
    expect(v.planned).to.have.length(2);
    expect(v.blocking).to.have.length(1);
    expect(v.blocking[0]).to.match(/data risk: .*mail-pair-primary-data/);
  });
  it("a window and --allow for the volume: exit 0", () => {
    const v = decideExit(plan, { window: w, allow: [volume] });
    expect(v.code).to.equal(0);
    expect(v.allowed).to.deep.equal([volume]);
  });
  it("--allow without a window does not plan anything", () => {
    expect(decideExit(plan, { allow: [volume] }).code).to.equal(3);
  });
  it("a window shorter than the estimated downtime blocks", () => {
    const short = parseWindow("2025-07-05T22:00+07:00/2025-07-05T22:01+07:00");
    const v = decideExit(plan, { window: short, allow: [volume] });
    expect(v.code).to.equal(3);
    expect(v.blocking.join("\n")).to.match(/does not fit the 60 s window/);
  });
  it("reports --allow URNs that match no data-risk step", () => {
    const v = decideExit(plan, {
      window: w,
      allow: [volume, "urn:pulumi:prod::hastack::aws:ec2/eip:Eip::typo"],
    });
    expect(v.unusedAllows).to.deep.equal(["urn:pulumi:prod::hastack::aws:ec2/eip:Eip::typo"]);
  });
});

describe("impact: the CLI (npm run impact)", () => {
  it("exit 0 and a per-service table for a failover preview", () => {
    const r = runCli([path.join(FIXTURES, "preview-mail-failover.json")]);
    expect(r.code, r.stderr).to.equal(0);
    expect(r.stdout).to.match(/^SERVICE\s+IMPACT\s+DOWNTIME/m);
    expect(r.stdout).to.match(/^mail\s+brief interruption\s+2 min/m);
  });
  it("exit 3 for an event log with a data risk", () => {
    const r = runCli([path.join(FIXTURES, "events-mysql-volume-kms.jsonl")]);
    expect(r.code).to.equal(3);
    expect(r.stdout).to.match(/BLOCKED \(exit 3\)/);
  });
  it("exit 0 with --window and --allow naming the data-risk resource", () => {
    const urn =
      "urn:pulumi:prod::hastack::hastack:mail:MailPair$hastack:server:ServerPair$aws:ebs/volume:Volume::mail-pair-primary-data";
    const r = runCli([
      path.join(FIXTURES, "preview-mail-move-az.json"),
      "--window",
      WINDOW,
      "--allow",
      urn,
    ]);
    expect(r.code, r.stdout).to.equal(0);
  });
  const bad: [string, string[], RegExp][] = [
    [
      "a missing file",
      ["/nonexistent/preview.json"],
      /\/nonexistent\/preview\.json: cannot read \(ENOENT\)/,
    ],
    ["an unknown flag", ["x.json", "--frobnicate"], /unknown option --frobnicate/],
    ["a bad --lang", ["x.json", "--lang", "fr"], /--lang must be "en" or "id"/],
    [
      "--allow without a URN",
      ["x.json", "--allow", "mail-pair-primary"],
      /--allow needs a resource URN/,
    ],
    [
      "a malformed preview",
      [path.join(FIXTURES, "..", "..", "..", "package.json")],
      /not a recognised input/,
    ],
  ];
  for (const [what, args, re] of bad) {
    it(`exit 2 and a clear message for ${what}, no stack trace`, () => {
      const r = runCli(args);
      expect(r.code).to.equal(2);
      expect(r.stderr).to.match(re);
      expect(r.stderr).not.to.match(/^\s+at /m);
    });
  }
  it("writes the announcement with contacts from --stack-file", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "hastack-impact-"));
    try {
      const out = path.join(dir, "announcement.md");
      const r = runCli([
        path.join(FIXTURES, "preview-pbx-failover.json"),
        "--announce",
        out,
        "--lang",
        "id",
        "--window",
        WINDOW,
        "--stack-file",
        path.join(ROOT, "Pulumi.prod.yaml"),
      ]);
      expect(r.code, r.stderr).to.equal(0);
      const md = fs.readFileSync(out, "utf8");
      expect(md).to.match(/^# Pemberitahuan Pemeliharaan Terjadwal: Telepon kantor$/m);
      expect(md).to.include("Sari Wulandari");
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
