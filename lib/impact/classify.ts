// Classifying one step (no impact, brief, outage, data risk) with the downtime it causes, from
// the service's parameters: the stack's outputs or config, else the pair defaults that the
// components use too (components/pair-defaults.ts).
import {
  CLASS_RANK,
  ImpactClass,
  PASSIVE_OPS,
  PlanInput,
  PlanStep,
  Side,
  StackOutputs,
  isRecord,
  unique,
} from "./model";
import { STOP_START_PROPERTIES } from "./replace-forcing";
import {
  DEFAULT_BOOT_SECONDS,
  DEFAULT_FAILURE_THRESHOLD,
  DEFAULT_SWITCHOVER as PAIR_DEFAULT_SWITCHOVER,
  DEFAULT_TTL_SECONDS,
  EIP_REASSOCIATION_SECONDS,
  HEALTH_CHECK_INTERVAL_SECONDS,
  estimateRtoSeconds,
} from "../../components/pair-defaults";

// Classification and downtime

/**
 * Documented estimates (docs/operations-impact.md) used where the stack says nothing. The pair
 * defaults are the components' own (components/pair-defaults.ts), never restated here.
 */
export const DEFAULTS = {
  ttl: DEFAULT_TTL_SECONDS,
  healthCheckIntervalSeconds: HEALTH_CHECK_INTERVAL_SECONDS,
  failureThreshold: DEFAULT_FAILURE_THRESHOLD,
  bootSeconds: DEFAULT_BOOT_SECONDS,
  /** Route 53 changes reach all its authoritative servers within about a minute. */
  route53PropagationSeconds: 60,
  /** Disassociating and associating an Elastic IP. */
  eipReassociationSeconds: EIP_REASSOCIATION_SECONDS,
  /** A clean instance stop before a start (or a detach). */
  stopSeconds: 60,
  /** EC2 launching a replacement instance until it starts booting. */
  provisionSeconds: 90,
} as const;

/** Per service: what the downtime estimate is made of, and where each number came from. */
export interface ServiceParams {
  service: string;
  switchover: "dns" | "eip";
  ttl: number;
  intervalSeconds: number;
  failureThreshold: number;
  bootSeconds: number;
  rtoSeconds: number;
  /** Sides that serve before or after the change; empty = unknown (every side counts as serving). */
  activeSides: Side[];
  activeBefore?: Side;
  activeAfter?: Side;
  /** The name clients use (services.<svc>.dnsName); deleting its record is an outage. */
  dnsName?: string;
  source: "outputs" | "config" | "defaults";
}

/** Service parameters from stack outputs (synth, preview root stack) or preview config, else defaults. */
export function serviceParams(input: PlanInput, service: string): ServiceParams {
  const fromOut = (o?: StackOutputs) => o?.services?.[service];
  const after = fromOut(input.outputsAfter);
  const before = fromOut(input.outputsBefore);
  const out = after ?? before;
  let cfg: Record<string, unknown> | undefined;
  const raw = input.config[`hastack:${service}`];
  if (raw !== undefined) {
    try {
      const v = JSON.parse(raw);
      cfg = isRecord(v) ? v : undefined;
    } catch {
      cfg = undefined;
    }
  }
  const num = (...xs: unknown[]): number | undefined =>
    xs.find((x): x is number => typeof x === "number" && Number.isFinite(x));
  const side = (x: unknown): Side | undefined =>
    x === "primary" || x === "standby" ? x : undefined;
  const switchover =
    (out?.switchover as "dns" | "eip" | undefined) ??
    (cfg?.switchover as "dns" | "eip" | undefined) ??
    PAIR_DEFAULT_SWITCHOVER[service] ??
    "dns";
  const ttl = num(out?.ttl, cfg?.ttl) ?? DEFAULTS.ttl;
  const hcCfg = isRecord(cfg?.healthCheck) ? cfg!.healthCheck : {};
  const intervalSeconds =
    num(out?.healthCheck?.intervalSeconds) ?? DEFAULTS.healthCheckIntervalSeconds;
  const failureThreshold =
    num(out?.healthCheck?.failureThreshold, (hcCfg as Record<string, unknown>).failureThreshold) ??
    DEFAULTS.failureThreshold;
  const bootSeconds = num(out?.bootSeconds, cfg?.bootSeconds) ?? DEFAULTS.bootSeconds;
  // The same arithmetic as the components' designed RTO (eip includes the operator's response).
  const rtoSeconds =
    num(out?.rtoSeconds) ?? estimateRtoSeconds({ switchover, ttl, failureThreshold });
  const activeBefore = side(before?.activeSide);
  const activeAfter = side(after?.activeSide) ?? side(cfg?.active);
  const activeSides = unique([activeBefore, activeAfter].filter((s): s is Side => s !== undefined));
  return {
    service,
    switchover,
    ttl,
    intervalSeconds,
    failureThreshold,
    bootSeconds,
    rtoSeconds,
    activeSides,
    activeBefore,
    activeAfter,
    dnsName:
      typeof out?.dnsName === "string" ? out.dnsName.toLowerCase().replace(/\.$/, "") : undefined,
    source: out ? "outputs" : cfg ? "config" : "defaults",
  };
}

export interface ClassifiedStep extends PlanStep {
  class: ImpactClass;
  /** Why, in one line. */
  reason: string;
  /** Seconds users may not reach the service because of this step; null = open-ended. */
  downtimeSeconds: number | null;
  /** For open-ended downtime, until when: "until restored from backup" or "until undone". */
  until?: string;
}

/** The end of an open-ended interruption that lost data, and of one that only needs undoing. */
export const UNTIL_RESTORED = "until restored from backup";
export const UNTIL_UNDONE = "until undone";

/** Types holding data that outlives a server: replacing or deleting one loses or strands it. */
export const DATA_TYPES = new Set([
  "aws:ebs/volume:Volume",
  "aws:ebs/snapshot:Snapshot",
  "aws:backup/vault:Vault",
  "aws:rds/instance:Instance",
  "aws:rds/cluster:Cluster",
  "aws:efs/fileSystem:FileSystem",
  "aws:s3/bucket:Bucket",
  "aws:s3/bucketV2:BucketV2",
  "aws:dynamodb/table:Table",
]);

/**
 * Keys whose deletion (scheduled by the provider on delete or replace) makes everything
 * encrypted with them unreadable once the waiting period ends.
 */
export const KEY_TYPES = new Set([
  "aws:kms/key:Key",
  "aws:kms/replicaKey:ReplicaKey",
  "aws:kms/externalKey:ExternalKey",
  "aws:kms/replicaExternalKey:ReplicaExternalKey",
]);

/** Types on the path of user traffic: replacing or deleting one interrupts the service. */
export const SERVING_TYPES = new Set([
  "aws:ec2/instance:Instance",
  "aws:ec2/eip:Eip",
  "aws:ec2/volumeAttachment:VolumeAttachment",
  "aws:ec2/networkInterface:NetworkInterface",
  "aws:route53/zone:Zone",
]);

const RECORD = "aws:route53/record:Record";
const SSM_PARAMETER = "aws:ssm/parameter:Parameter";
const EIP_ASSOC = "aws:ec2/eipAssociation:EipAssociation";
const INSTANCE = "aws:ec2/instance:Instance";
const VOLUME_ATTACHMENT = "aws:ec2/volumeAttachment:VolumeAttachment";

/** Whether a record's values name `target` (MX `10 mx1.example.co.id`, CNAME, SRV targets). */
function pointsAt(
  inputs: Record<string, unknown> | undefined,
  target: string | undefined,
): boolean {
  if (!target || !Array.isArray(inputs?.records)) {
    return false;
  }
  return inputs.records.some(
    (v) =>
      typeof v === "string" &&
      v
        .toLowerCase()
        .split(/\s+/)
        .some((w) => w.replace(/\.$/, "") === target),
  );
}

function recordKey(inputs?: Record<string, unknown>): string | undefined {
  if (!inputs || typeof inputs.name !== "string" || typeof inputs.type !== "string") {
    return undefined;
  }
  return `${inputs.name.toLowerCase().replace(/\.$/, "")} ${inputs.type}`;
}

/**
 * Whether the server keeps data on itself rather than on an attached data volume: inline EBS
 * devices that die with it, or no VolumeAttachment pointing at it among the known resources.
 */
function instanceHoldsData(step: PlanStep, all: PlanStep[], context: PlanStep[]): boolean {
  const inputs = step.oldInputs ?? step.newInputs ?? {};
  const inline = inputs.ebsBlockDevices;
  if (Array.isArray(inline) && inline.some((d) => isRecord(d) && d.deleteOnTermination !== false)) {
    return true;
  }
  const parentTypes = step.ancestorTypes.join("$");
  const attachments = [
    ...all.filter((s) => s.type === VOLUME_ATTACHMENT),
    ...context.filter((s) => s.type === VOLUME_ATTACHMENT),
  ];
  return !attachments.some((s) => {
    const ins = [s.oldInputs?.instanceId, s.newInputs?.instanceId];
    if (step.id && ins.includes(step.id)) {
      return true;
    }
    // Same parent and named after the instance (`<instance>-data-attach`): the ServerPair pattern.
    return s.ancestorTypes.join("$") === parentTypes && s.name.startsWith(`${step.name}-`);
  });
}

/**
 * Classifies one step. `all` is the whole plan (a record delete paired with a create is a switch).
 * A refresh that found the resource deleted in the cloud is classified as that deletion too (the
 * loss has happened already, whatever the update then does), and the worse of the two wins.
 */
export function classifyStep(
  step: PlanStep,
  params: ServiceParams,
  all: PlanStep[],
  context: PlanStep[] = [],
): ClassifiedStep {
  const planned = classifyOp(step, params, all, context);
  if (step.refreshFound !== "deleted") {
    return planned;
  }
  const gone = classifyOp({ ...step, op: "delete", retainOnDelete: false }, params, all, context);
  if (CLASS_RANK[gone.class] < CLASS_RANK[planned.class]) {
    return planned;
  }
  return {
    ...gone,
    op: step.op,
    reason: `a refresh found it already deleted in the cloud (then ${step.op}): ${gone.reason}`,
  };
}

function classifyOp(
  step: PlanStep,
  params: ServiceParams,
  all: PlanStep[],
  context: PlanStep[],
): ClassifiedStep {
  const serving =
    step.side === undefined ||
    params.activeSides.length === 0 ||
    params.activeSides.includes(step.side);
  // Resolvers cache the OLD answer for the old TTL: that bounds how long clients lag a switch.
  const recordTtl = Math.max(
    ...[step.oldInputs?.ttl, step.newInputs?.ttl].filter((t): t is number => typeof t === "number"),
    0,
  );
  const ttl = recordTtl > 0 ? recordTtl : params.ttl;
  const dnsSwitch = DEFAULTS.route53PropagationSeconds + ttl;
  const replaceDowntime = params.bootSeconds + DEFAULTS.provisionSeconds;
  const res = (
    cls: ImpactClass,
    reason: string,
    downtimeSeconds: number | null = 0,
  ): ClassifiedStep => ({
    ...step,
    class: cls,
    reason,
    downtimeSeconds: cls === "none" ? 0 : downtimeSeconds,
    ...(cls !== "none" && downtimeSeconds === null
      ? { until: cls === "data-risk" ? UNTIL_RESTORED : UNTIL_UNDONE }
      : {}),
  });
  const where = serving ? "serving" : `${step.side} (not serving)`;
  const op = step.op;
  if (op === "import-replacement") {
    return res(
      "none",
      "import-replacement: the stack now tracks another existing resource; the replaced one leaves the state, not the cloud",
    );
  }
  if (PASSIVE_OPS.has(op)) {
    return res("none", `${op}: no change in the cloud`);
  }
  if (
    step.type.startsWith("pulumi:providers:") ||
    !step.type.includes(":") ||
    isComponent(step.type)
  ) {
    return res("none", "component or provider: its children's steps carry the impact");
  }
  if (op === "create") {
    if (step.type.startsWith("command:remote:")) {
      return res("brief", "runs a command on a server (role change or sync)", 0);
    }
    return res("none", "new resource");
  }
  const replace = op === "replace";
  const del = op === "delete";
  const what = replace ? "replace" : "delete";
  if (replace || del) {
    if (DATA_TYPES.has(step.type)) {
      if (del && step.retainOnDelete) {
        return res("none", "leaves the stack only: retainOnDelete keeps it (and its data) in AWS");
      }
      // Nothing takes the place of lost data: on the serving side (or where there are no sides,
      // RDS, S3) users are without it until it is restored from backup — never a number.
      const forced = replace ? ` (forced by ${fmtKeys(step.replaceReasons)})` : "";
      return serving
        ? res(
            "data-risk",
            `${what} of a resource holding data${forced}: ${replace ? "the new one starts empty" : "nothing takes its place"}; users are without that data until it is restored from backup`,
            null,
          )
        : res(
            "data-risk",
            `${what} of the ${step.side} side's data${forced}: not serving, but its copy is lost and must be re-seeded from the serving side`,
            0,
          );
    }
    if (KEY_TYPES.has(step.type)) {
      if (del && step.retainOnDelete) {
        return res("none", "leaves the stack only: retainOnDelete keeps the key in AWS");
      }
      return res(
        "data-risk",
        `${what} of an encryption key: AWS schedules the old key's deletion, after which everything encrypted with it is unreadable (cancel the deletion within the waiting period to undo)`,
        null,
      );
    }
    if (step.type === INSTANCE) {
      const down = serving ? autoFailoverCapped(params, step, all, replaceDowntime) : 0;
      if (instanceHoldsData(step, all, context)) {
        return res(
          "data-risk",
          `${what} of a server holding data on itself (${where})`,
          serving ? null : 0,
        );
      }
      if (!serving) {
        return res(
          "none",
          `${what} of the ${step.side} server: not serving, redundancy lost meanwhile`,
        );
      }
      return res(
        "outage",
        `${what} of the serving server${replace ? ` (forced by ${fmtKeys(step.replaceReasons)})` : ""}; its data volume is reattached`,
        del ? null : down,
      );
    }
    if (step.type === RECORD) {
      const key = recordKey(step.oldInputs ?? step.newInputs);
      const replaced =
        replace ||
        all.some(
          (s) =>
            s !== step &&
            s.type === RECORD &&
            (s.op === "create" || s.op === "update") &&
            key !== undefined &&
            recordKey(s.newInputs) === key,
        );
      if (replaced) {
        return res(
          "brief",
          `DNS record ${what}d and re-declared: clients follow within TTL ${ttl} s`,
          dnsSwitch,
        );
      }
      const name = key?.split(" ")[0];
      const isServiceName = name !== undefined && name === params.dnsName;
      const referrers = [...all, ...context].filter(
        (s) => s !== step && s.type === RECORD && s.op !== "delete" && pointsAt(s.newInputs, name),
      );
      if (isServiceName || referrers.length > 0) {
        return res(
          "outage",
          `DNS record deleted with nothing taking its name (${key})${isServiceName ? ": it is the service name" : `, yet ${referrers.map((r) => r.name).join(", ")} still point at it`}`,
          null,
        );
      }
      return res(
        "none",
        `DNS record removed${key ? ` (${key})` : ""}; nothing declared points at it`,
      );
    }
    if (step.type === EIP_ASSOC) {
      if (replace) {
        return res(
          "brief",
          "Elastic IP re-association (the eip switch)",
          DEFAULTS.eipReassociationSeconds,
        );
      }
      const recreated = all.some((s) => s !== step && s.type === EIP_ASSOC && s.op === "create");
      return recreated
        ? res("brief", "Elastic IP re-association", DEFAULTS.eipReassociationSeconds)
        : res("outage", "service Elastic IP detached with nothing re-attaching it", null);
    }
    if (step.type === SSM_PARAMETER && replace) {
      // Only a new name forces it (replace-forcing table). Servers read parameters by the name
      // their first boot wrote into their scripts, and the IAM policy follows the new prefix.
      return res(
        "outage",
        `SSM parameter renamed (forced by ${fmtKeys(step.replaceReasons)}): the servers read the old name, which the replacement deletes${step.protect ? " (protected: the update stops there)" : ""}`,
        null,
      );
    }
    if (step.type === "aws:ec2/securityGroup:SecurityGroup" && replace) {
      return res(
        "brief",
        "security group replaced: servers switch groups while rules are re-created",
        0,
      );
    }
    if (step.type === "random:index/randomPassword:RandomPassword" && replace) {
      return res(
        "outage",
        "new password: clients and replication using the old one fail until updated",
        replaceDowntime,
      );
    }
    if (step.type === "aws:backup/plan:Plan" || step.type === "aws:backup/selection:Selection") {
      return del
        ? res("outage", "scheduled backups stop for what this covered", null)
        : res(
            "none",
            "re-created at once; no backup is skipped unless the window spans a schedule",
          );
    }
    if (SERVING_TYPES.has(step.type)) {
      if (!serving) {
        return res(
          "none",
          `${what} on the ${step.side} side: not serving, redundancy lost meanwhile`,
        );
      }
      if (del && step.retainOnDelete) {
        return res("none", "leaves the stack only: retainOnDelete keeps it in AWS");
      }
      const dt =
        step.type === VOLUME_ATTACHMENT
          ? DEFAULTS.stopSeconds + DEFAULTS.eipReassociationSeconds + params.bootSeconds
          : replaceDowntime;
      return res(
        "outage",
        `${what} of a serving resource${replace ? ` (forced by ${fmtKeys(step.replaceReasons)})` : ""}`,
        del ? null : autoFailoverCapped(params, step, all, dt),
      );
    }
    if (step.type.startsWith("command:remote:") && replace) {
      return res("brief", "re-runs a command on a server (role change or sync)", 0);
    }
    return res("none", `${what} of a resource users do not reach`);
  }
  if (op === "update") {
    if (
      step.type === RECORD &&
      step.diffReasons.length > 0 &&
      step.diffReasons.every((k) => topKey(k) === "ttl")
    ) {
      // The answers stay the same; resolvers take the new TTL when their cached copy expires.
      return res("none", "TTL only: every answer stays the same");
    }
    if (step.type === RECORD) {
      return res(
        "brief",
        `DNS switch: clients follow within TTL ${ttl} s (+ Route 53 propagation)`,
        dnsSwitch,
      );
    }
    if (step.type === EIP_ASSOC) {
      return res("brief", "Elastic IP re-association", DEFAULTS.eipReassociationSeconds);
    }
    if (
      step.type === "aws:ec2/eip:Eip" &&
      step.diffReasons.some((k) =>
        ["instance", "networkInterface", "associateWithPrivateIp"].includes(k),
      )
    ) {
      return res(
        serving ? "brief" : "none",
        "Elastic IP moves to another server",
        DEFAULTS.eipReassociationSeconds,
      );
    }
    if (step.type === INSTANCE) {
      const stopStart = step.diffReasons.filter((k) => STOP_START_PROPERTIES.includes(topKey(k)));
      if (stopStart.length > 0) {
        return serving
          ? res(
              "brief",
              `stop/start of the serving server (${fmtKeys(stopStart)})`,
              DEFAULTS.stopSeconds + params.bootSeconds,
            )
          : res(
              "none",
              `stop/start of the ${step.side} server (${fmtKeys(stopStart)}): not serving`,
            );
      }
      return res("none", `in-place update (${fmtKeys(step.diffReasons)})`);
    }
    if (step.type.startsWith("command:remote:")) {
      return res("brief", "re-runs a command on a server (role change or sync)", 0);
    }
    return res("none", `in-place update (${fmtKeys(step.diffReasons)})`);
  }
  return res("none", op);
}

/**
 * In dns mode Route 53 fails over to the healthy other side after interval × threshold + TTL
 * (the designed RTO), so a serving server's outage is capped there — unless the other side is
 * being disrupted in the same update.
 */
function autoFailoverCapped(
  params: ServiceParams,
  step: PlanStep,
  all: PlanStep[],
  seconds: number,
): number {
  if (params.switchover !== "dns" || step.side === undefined) {
    return seconds;
  }
  const other: Side = step.side === "primary" ? "standby" : "primary";
  const otherDisrupted = all.some(
    (s) =>
      s.service === step.service && s.side === other && (s.op === "replace" || s.op === "delete"),
  );
  return otherDisrupted ? seconds : Math.min(seconds, params.rtoSeconds);
}

function isComponent(type: string): boolean {
  return type.startsWith("hastack:") || type === "pulumi:pulumi:Stack";
}

function topKey(path: string): string {
  return path.split(/[.[]/)[0];
}

function fmtKeys(keys: string[]): string {
  return keys.length > 0 ? keys.join(", ") : "provider decision";
}

// ---------------------------------------------------------------------------------------------
