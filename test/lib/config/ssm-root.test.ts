// SSM paths carry the stack name (issue 10): a new stack's parameters live under
// /hastack/<stack>/<service>, so two stacks in one account share none; an existing stack keeps
// /hastack/<service> (hastack:ssmRoot) and its root never moves by itself — a move would replace
// every parameter while its running servers read the old paths.
import { expect } from "chai";
import * as fs from "fs";
import * as path from "path";
import { resolveSsmRoot } from "../../../lib/config/ssm-root";
import { ConfigError, parseStackConfig } from "../../../lib/config/stack-config";
import { buildImpactPlan, planInputFromSynth } from "../../../lib/impact/impact-plan";
import { Deployment, synthesize } from "../../../lib/synth/offline-synth";
import { ofType, userDataOf } from "../../support/deployment-queries";
import {
  PROJECT_DIR,
  StackConfigDoc,
  prodConfigRaw,
  synthProd,
  writeStackFile,
} from "../../support/stack-files";

const PARAMETER = "aws:ssm/parameter:Parameter";
const ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy";
const SERVICES = ["mail", "mysql", "pbx", "nas"];

function problemsOf(f: () => unknown): string[] {
  try {
    f();
  } catch (e) {
    expect(e).to.be.instanceOf(ConfigError);
    return (e as ConfigError).problems.map((p) => `${p.key} ${p.message}`);
  }
  return [];
}

function parameterNames(d: Deployment): string[] {
  return ofType(d, PARAMETER).map((r) => String(r.inputs.name));
}

/** Every path-like string a server or a policy is given: user-data, command scripts, policies. */
function textsNamingPaths(d: Deployment): string[] {
  return d.deployment.resources.flatMap((r) => {
    if (r.type === "aws:ec2/instance:Instance") {
      return [userDataOf(r)];
    }
    if (r.type === "command:remote:Command") {
      return [String(r.inputs.create ?? ""), String(r.inputs.stdin ?? "")];
    }
    if (r.type === ROLE_POLICY) {
      return [String(r.inputs.policy)];
    }
    return [];
  });
}

/** prod's config with `edit`, synthesized as stack `stack`. */
async function synthAs(stack: string, edit: (c: StackConfigDoc) => void): Promise<Deployment> {
  const file = writeStackFile(edit);
  try {
    return await synthesize({ projectDir: PROJECT_DIR, stack, stackFile: file });
  } finally {
    fs.rmSync(path.dirname(file), { recursive: true, force: true });
  }
}

describe("hastack:ssmRoot: which SSM root an update uses", () => {
  const cases: {
    name: string;
    configured?: string;
    previous?: { exists: boolean; ssmRoot?: string };
    expected: string | RegExp;
  }[] = [
    { name: "a new stack: /hastack/<stack>", expected: "/hastack/staging" },
    { name: "a new stack may choose its root", configured: "/hastack/a", expected: "/hastack/a" },
    {
      name: "a stack made before issue 10 that says /hastack keeps it",
      configured: "/hastack",
      previous: { exists: true },
      expected: "/hastack",
    },
    {
      name: "a stack made before issue 10 without the key is refused (would move)",
      previous: { exists: true },
      expected:
        /hastack:ssmRoot is unset.*made before per-stack SSM paths.*Set hastack:ssmRoot to "\/hastack"/,
    },
    {
      name: "a stack keeps the root its last update recorded",
      previous: { exists: true, ssmRoot: "/hastack/staging" },
      expected: "/hastack/staging",
    },
    {
      name: "a changed root on an existing stack is refused",
      configured: "/hastack/other",
      previous: { exists: true, ssmRoot: "/hastack/staging" },
      expected:
        /hastack:ssmRoot is "\/hastack\/other".*Set hastack:ssmRoot to "\/hastack\/staging"/,
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const run = () =>
        resolveSsmRoot({ configured: c.configured, stack: "staging", previous: c.previous });
      if (typeof c.expected === "string") {
        expect(run()).to.equal(c.expected);
      } else {
        const problems = problemsOf(run);
        expect(problems).to.have.length(1);
        expect(problems[0]).to.match(c.expected);
      }
    });
  }

  it("the schema refuses a root outside /hastack, a deeper one and SSM-illegal characters", () => {
    for (const bad of ["/other", "/hastack/a/b", "/hastack/with space", "hastack", "/hastack/"]) {
      const problems = problemsOf(() => parseStackConfig({ ...prodConfigRaw(), ssmRoot: bad }));
      expect(problems, bad).to.have.length(1);
      expect(problems[0], bad).to.match(/^hastack:ssmRoot .*"\/hastack"/);
    }
    for (const good of ["/hastack", "/hastack/prod", "/hastack/office-2.b_c"]) {
      expect(parseStackConfig({ ...prodConfigRaw(), ssmRoot: good }).ssmRoot).to.equal(good);
    }
  });
});

describe("SSM paths of the synthesized stack", function () {
  this.timeout(300_000);
  let prod: Deployment;
  let staging: Deployment;
  let office2: Deployment;
  before(async () => {
    prod = await synthProd();
    // Two new stacks in one account: prod's config without the legacy key, two stack names.
    staging = await synthAs("staging", (c) => delete c["hastack:ssmRoot"]);
    office2 = await synthAs("office2", (c) => delete c["hastack:ssmRoot"]);
  });

  it("a new stack's parameters, policies and server scripts all use /hastack/<stack>/<service>", () => {
    const names = parameterNames(staging);
    expect(names.length).to.be.greaterThan(20);
    for (const n of names) {
      expect(n).to.match(/^\/hastack\/staging\/(mail|mysql|pbx|nas)\//);
    }
    // No server script, command or policy names a path outside the stack's root.
    for (const text of textsNamingPaths(staging)) {
      // (/etc/hastack/<service>/ is a directory on the server, not an SSM path.)
      expect(text).not.to.match(/(?<![\w.-])\/hastack\/(mail|mysql|pbx|nas)\//);
    }
    const policies = ofType(staging, ROLE_POLICY).map((r) => String(r.inputs.policy));
    for (const svc of SERVICES) {
      const own = `parameter/hastack/staging/${svc}/*`;
      expect(
        policies.filter((p) => p.includes(own)),
        `${svc}: read and decrypt (PARAMETER_ARN) its own prefix`,
      ).to.have.length(1);
      expect(policies.find((p) => p.includes(own))!.split(own)).to.have.length(3);
    }
  });

  it("two stacks in one account share no parameter name", () => {
    const a = new Set(parameterNames(staging));
    const shared = parameterNames(office2).filter((n) => a.has(n));
    expect(shared).to.deep.equal([]);
    expect(parameterNames(office2).every((n) => n.startsWith("/hastack/office2/"))).to.equal(true);
  });

  it("prod (made before issue 10) keeps every parameter at /hastack/<service>", () => {
    for (const n of parameterNames(prod)) {
      expect(n).to.match(/^\/hastack\/(mail|mysql|pbx|nas)\//);
    }
    expect((prod.deployment.resources[0].outputs as Record<string, unknown>).ssmRoot).to.equal(
      "/hastack",
    );
  });

  it("the impact engine: an existing stack updated with this code changes no parameter", async () => {
    // The last update's state, as a stack made before issue 10 left it: no ssmRoot output.
    const legacy = JSON.parse(JSON.stringify(prod)) as Deployment;
    delete (legacy.deployment.resources[0].outputs as Record<string, unknown>).ssmRoot;
    const next = await synthProd(() => {}, legacy);
    const steps = buildImpactPlan(planInputFromSynth(legacy, next)).steps;
    expect(steps.filter((s) => s.type === PARAMETER)).to.deep.equal([]);
  });

  it("an existing stack without hastack:ssmRoot is refused before any parameter is replaced", async () => {
    const legacy = JSON.parse(JSON.stringify(prod)) as Deployment;
    delete (legacy.deployment.resources[0].outputs as Record<string, unknown>).ssmRoot;
    let error: Error | undefined;
    try {
      await synthProd((c) => delete c["hastack:ssmRoot"], legacy);
    } catch (e) {
      error = e as Error;
    }
    expect(error, "the update must fail").to.not.equal(undefined);
    expect(error!.message).to.match(/hastack:ssmRoot is unset/);
    expect(error!.message).not.to.match(/\n\s+at /, "no stack trace");
    // What it protects against: the same move without the check replaces every parameter.
    const moved = await synthProd((c) => delete c["hastack:ssmRoot"]);
    const steps = buildImpactPlan(planInputFromSynth(prod, moved)).steps.filter(
      (s) => s.type === PARAMETER,
    );
    expect(steps.length).to.equal(parameterNames(prod).length);
    expect(steps.every((s) => s.op === "replace" && s.class === "outage")).to.equal(
      true,
      steps.map((s) => `${s.op}/${s.class} ${s.name}`).join(", "),
    );
  });
});
