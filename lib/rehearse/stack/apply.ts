// `rehearse stack --apply BEFORE AFTER` (issue 12), the planning half: what `pulumi up` would do
// to go from one synth of the stack to another, restricted to the changes a switch makes and the
// rehearsal can make the way AWS would — Route 53 record sets, the service EIP's association, the
// SSM parameters the servers read (the active side), and `command:remote:Command` runs. Any other
// difference (an instance, a volume, a security group…) is refused with its URN: that needs a
// real `pulumi up`. Pure: reads two deployments, starts nothing; apply-run.ts executes the plan.
//
// The diff itself is lib/impact's (planInputFromSynth: the same steps and replace decisions
// `npm run impact` shows); this file only orders the steps as the engine does and says what each
// one runs.
import {
  ImpactPlan,
  PlanStep,
  Verdict,
  buildImpactPlan,
  decideExit,
  planInputFromSynth,
  renderPlan,
} from "../../impact/impact-plan";
import { Deployment, SynthResource } from "../../synth/offline-synth";
import { DnsRecord, NatMapping, StackModel, buildModel } from "./model";

export const RECORD = "aws:route53/record:Record";
export const EIP_ASSOCIATION = "aws:ec2/eipAssociation:EipAssociation";
export const PARAMETER = "aws:ssm/parameter:Parameter";
export const REMOTE_COMMAND = "command:remote:Command";

/** A Route 53 record set change: Route 53 names a set by zone, name, type and set identifier. */
export interface RecordStep {
  kind: "record";
  op: "create" | "update" | "delete";
  urn: string;
  zone: string;
  before?: DnsRecord;
  after?: DnsRecord;
}

/** The service EIP re-associated to another server's address (AllowReassociation moves it). */
export interface EipStep {
  kind: "eip";
  urn: string;
  publicIp: string;
  from: NatMapping;
  to: NatMapping;
}

/** An SSM parameter the servers read (e.g. /hastack/mysql/active-side) gets a new value. */
export interface ParameterStep {
  kind: "parameter";
  op: "create" | "update" | "delete";
  urn: string;
  name: string;
  type: string;
  /** The new value (undefined for a delete). */
  value?: string;
}

/**
 * One run of a remote command, as @pulumi/command does it: a create runs `create`; an update
 * (inputs changed) runs `update`, or `create` again when there is none; a replacement (its
 * `triggers` changed) runs the new `create` in place and the old resource's `delete` at the end,
 * with the deletes; a delete runs `delete`. No command text: the provider runs nothing.
 */
export interface CommandStep {
  kind: "command";
  op: "create" | "update" | "replace" | "delete" | "delete-replaced";
  urn: string;
  /** Logical name, e.g. "mysql-failover". */
  name: string;
  /** Which of the resource's commands runs. */
  runs: "create" | "update" | "delete";
  /** The command line, or undefined when the resource has none for this step. */
  command?: string;
  /** The resource as the synth holds it (connection and environment are the runner's to fill). */
  resource: SynthResource;
}

export type ApplyStep = RecordStep | EipStep | ParameterStep | CommandStep;

export interface Refusal {
  urn: string;
  op: string;
  message: string;
}

export interface ApplyPlan {
  /** In the engine's order: creates, updates and replacements in dependency order, then deletes. */
  steps: ApplyStep[];
  refused: Refusal[];
  /** What `npm run impact` says about the same pair of files. */
  impact: { plan: ImpactPlan; verdict: Verdict; text: string };
}

/** A plan that refuses something: the message lists every refusal (one per line). */
export class ApplyRefusedError extends Error {
  constructor(public readonly refused: Refusal[]) {
    super(
      `${refused.length} change(s) cannot be applied to the rehearsal:\n  ${refused
        .map((r) => r.message)
        .join("\n  ")}`,
    );
    this.name = "ApplyRefusedError";
  }
}

const SECRET = "[secret]";

/** Types whose changes exist only in the state file (no cloud call): nothing to apply. */
function isBookkeeping(step: PlanStep, res: SynthResource | undefined): boolean {
  return res !== undefined && !res.custom && !step.type.startsWith("pulumi:providers:");
}

function recordKey(r: DnsRecord): string {
  return `${r.name}|${r.type}|${r.setIdentifier ?? ""}`;
}

/** The record set `res` declares, and its zone, from the rehearsal model of the same synth. */
function recordOf(model: StackModel, res: SynthResource): { zone: string; record: DnsRecord } {
  const key = recordKey({
    name: String(res.inputs.name).replace(/\.$/, ""),
    type: String(res.inputs.type),
    ttl: 0,
    values: [],
    setIdentifier: typeof res.inputs.setIdentifier === "string" ? res.inputs.setIdentifier : "",
  });
  for (const z of model.zones) {
    const record = z.records.find((r) => recordKey(r) === key);
    if (record) {
      return { zone: z.name, record };
    }
  }
  throw new Error(`${res.urn}: record set ${key} is in no zone of the rehearsal model`);
}

function natOf(model: StackModel, res: SynthResource): NatMapping | undefined {
  const target = String(res.inputs.privateIpAddress ?? "");
  return model.nat.find((n) => n.privateIp === target);
}

function commandText(
  res: SynthResource,
  which: "create" | "update" | "delete",
): string | undefined {
  const v = res.inputs[which];
  return typeof v === "string" && v.length > 0 ? v : undefined;
}

/**
 * Creates and updates in dependency order (explicit dependsOn; the synth's registration order
 * already follows data dependencies, as the SDK registers a resource once its inputs resolve),
 * keeping registration order among independent ones. The engine runs independent steps in
 * parallel; this is one order it may take.
 */
function dependencyOrder(after: SynthResource[]): Map<string, number> {
  const index = new Map(after.map((r, i) => [r.urn, i]));
  const placed = new Map<string, number>();
  const visiting = new Set<string>();
  const visit = (r: SynthResource): void => {
    if (placed.has(r.urn)) {
      return;
    }
    if (visiting.has(r.urn)) {
      throw new Error(`${r.urn}: dependency cycle`);
    }
    visiting.add(r.urn);
    for (const d of r.dependsOn ?? []) {
      const dep = after[index.get(d) ?? -1];
      if (dep) {
        visit(dep);
      }
    }
    visiting.delete(r.urn);
    placed.set(r.urn, placed.size);
  };
  after.forEach(visit);
  return placed;
}

/**
 * What `pulumi up` would do from `before` to `after`, as steps the rehearsal can apply, or the
 * refusals. `region`/`adminCidrs` only feed the rehearsal model (addresses, zones).
 */
export function planApply(
  before: Deployment,
  after: Deployment,
  opts: { beforePath?: string; afterPath?: string; region?: string } = {},
): ApplyPlan {
  const input = planInputFromSynth(before, after, opts.beforePath, opts.afterPath);
  const impactPlan = buildImpactPlan(input);
  const verdict = decideExit(impactPlan);
  const impact = { plan: impactPlan, verdict, text: renderPlan(impactPlan, verdict) };

  const region = opts.region ?? "us-east-1";
  const mBefore = buildModel(before, [], region);
  const mAfter = buildModel(after, [], region);
  const bRes = new Map(before.deployment.resources.map((r) => [r.urn, r]));
  const aRes = new Map(after.deployment.resources.map((r) => [r.urn, r]));
  const order = dependencyOrder(after.deployment.resources);
  const beforeIndex = new Map(before.deployment.resources.map((r, i) => [r.urn, i]));

  const forward: { at: number; step: ApplyStep }[] = [];
  const deletes: { at: number; step: ApplyStep }[] = [];
  const refused: Refusal[] = [];
  const refuse = (s: PlanStep, why: string): void => {
    refused.push({
      urn: s.urn,
      op: s.op,
      message: `${s.urn}: ${s.op}${s.diffReasons.length ? ` (${s.diffReasons.join(", ")})` : ""} ${why}needs a real \`pulumi up\``,
    });
  };

  for (const s of input.steps) {
    const old = bRes.get(s.urn);
    const neu = aRes.get(s.urn);
    if (s.op === "same" || isBookkeeping(s, neu ?? old)) {
      continue;
    }
    const at = order.get(s.urn) ?? 0;
    const delAt = -(beforeIndex.get(s.urn) ?? 0);
    if (s.type === RECORD) {
      // A replacement (name or type changed) is a new record set and the old one's deletion.
      if (s.op === "create" || s.op === "replace") {
        const { zone, record } = recordOf(mAfter, neu!);
        forward.push({
          at,
          step: { kind: "record", op: "create", urn: s.urn, zone, after: record },
        });
      }
      if (s.op === "update") {
        const b = recordOf(mBefore, old!);
        const a = recordOf(mAfter, neu!);
        forward.push({
          at,
          step: {
            kind: "record",
            op: "update",
            urn: s.urn,
            zone: a.zone,
            before: b.record,
            after: a.record,
          },
        });
      }
      if (s.op === "delete" || s.op === "replace") {
        const { zone, record } = recordOf(mBefore, old!);
        deletes.push({
          at: delAt,
          step: { kind: "record", op: "delete", urn: s.urn, zone, before: record },
        });
      }
      continue;
    }
    if (s.type === EIP_ASSOCIATION) {
      const from = old && natOf(mBefore, old);
      const to = neu && natOf(mAfter, neu);
      if (
        (s.op === "update" || s.op === "replace") &&
        from &&
        to &&
        from.publicIp === to.publicIp
      ) {
        // Re-association moves the address; deleting the replaced association afterwards finds
        // it gone (AWS ignores a stale association id), so the move is the whole effect.
        forward.push({
          at,
          step: { kind: "eip", urn: s.urn, publicIp: to.publicIp, from, to },
        });
      } else {
        refuse(s, "is not an EIP moving between the stack's servers: ");
      }
      continue;
    }
    if (s.type === PARAMETER) {
      const res = (neu ?? old)!;
      const value = neu
        ? [neu.inputs.value, neu.inputs.insecureValue].find((v) => v !== undefined)
        : undefined;
      const renamed = old && neu && old.inputs.name !== neu.inputs.name;
      if (value === SECRET) {
        refuse(s, "sets a secret the synth does not show: ");
      } else if (renamed || (s.op !== "create" && s.op !== "update" && s.op !== "delete")) {
        refuse(s, "is not a change of a parameter's value: ");
      } else {
        const step: ParameterStep = {
          kind: "parameter",
          op: s.op,
          urn: s.urn,
          name: String(res.inputs.name),
          type: String(res.inputs.type ?? "String"),
          value: value === undefined ? undefined : String(value),
        };
        (s.op === "delete" ? deletes : forward).push({ at: s.op === "delete" ? delAt : at, step });
      }
      continue;
    }
    if (s.type === REMOTE_COMMAND) {
      const name = (neu ?? old)!.name;
      if (s.op === "create" || s.op === "replace") {
        forward.push({
          at,
          step: {
            kind: "command",
            op: s.op,
            urn: s.urn,
            name,
            runs: "create",
            command: commandText(neu!, "create"),
            resource: neu!,
          },
        });
      } else if (s.op === "update") {
        const update = commandText(neu!, "update");
        forward.push({
          at,
          step: {
            kind: "command",
            op: "update",
            urn: s.urn,
            name,
            runs: update ? "update" : "create",
            command: update ?? commandText(neu!, "create"),
            resource: neu!,
          },
        });
      }
      if (s.op === "delete" || s.op === "replace") {
        deletes.push({
          at: delAt,
          step: {
            kind: "command",
            op: s.op === "delete" ? "delete" : "delete-replaced",
            urn: s.urn,
            name,
            runs: "delete",
            command: commandText(old!, "delete"),
            resource: old!,
          },
        });
      }
      continue;
    }
    refuse(s, "");
  }
  forward.sort((x, y) => x.at - y.at);
  // Deletes after every create and update, dependents first (reverse order of the old state).
  deletes.sort((x, y) => x.at - y.at);
  return { steps: [...forward, ...deletes].map((x) => x.step), refused, impact };
}

/** One line per step, as the apply prints them before running anything. */
export function describeStep(s: ApplyStep): string {
  switch (s.kind) {
    case "record": {
      const r = (s.after ?? s.before)!;
      const set = `${r.name} ${r.type}${r.setIdentifier ? ` [${r.setIdentifier}]` : ""}`;
      const vals = (x?: DnsRecord): string => (x ? x.values.join(" ") : "");
      return s.op === "update"
        ? `record ${set}: ${vals(s.before)} → ${vals(s.after)} (TTL ${s.after!.ttl})`
        : `record ${set}: ${s.op} ${vals(r)}`;
    }
    case "eip":
      return `eip ${s.publicIp}: ${s.from.server} (${s.from.privateIp}) → ${s.to.server} (${s.to.privateIp})`;
    case "parameter":
      return `parameter ${s.name}: ${s.op}${s.value !== undefined && s.type !== "SecureString" ? ` = ${s.value}` : ""}`;
    case "command":
      return `command ${s.name}: ${s.op}, runs ${s.command ? `\`${s.runs}\`` : `nothing (no \`${s.runs}\`)`}`;
  }
}
