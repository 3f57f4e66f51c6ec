// What a stack update will do to the services, before anyone runs `pulumi up`: each step of a
// preview (or of an offline synth diff) is mapped to the service it belongs to and classified
// as no impact, a brief interruption, an outage or a data risk, with a downtime estimate per
// service from what the stack itself declares (TTL, health-check timing, boot time). The
// exit-code policy lives here too, so the CLI (scripts/impact.ts) is only flags and printing.
// Formats read: `pulumi preview --json` (display.PreviewDigest), engine event logs (JSON lines
// of apitype.EngineEvent, as written by `--event-log` or collected from the Automation API) and
// two offline synth deployments (lib/synth/offline-synth.ts). See docs/operations-impact.md.

export type ImpactClass = "none" | "brief" | "outage" | "data-risk";

/** Severity order: a service's class is the worst of its steps. */
export const CLASS_RANK: Record<ImpactClass, number> = {
  none: 0,
  brief: 1,
  outage: 2,
  "data-risk": 3,
};

export type InputKind = "preview-json" | "event-log" | "synth-pair";

/** Bad or unrecognised input: the CLI prints the message and exits 2. */
export class ImpactInputError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ImpactInputError";
  }
}

export type Side = "primary" | "standby";

/** Our component types and the service each one stands for (brief: "Component types"). */
export const SERVICE_COMPONENTS: Record<string, string> = {
  "hastack:mail:MailPair": "mail",
  "hastack:pbx:PbxPair": "pbx",
  "hastack:mysql:MysqlPair": "mysql",
  "hastack:nas:NasBackups": "nas",
};
/** Shared components: steps under them belong to no single service. */
export const SHARED_COMPONENTS: Record<string, string> = {
  "hastack:dns:Dns": "dns",
  "hastack:monitoring:Alarms": "monitoring",
};
export const SERVICES = ["mail", "pbx", "mysql", "nas"] as const;

/** Every step op the engine emits (apitype.OpType); anything else is refused as unknown input. */
export const KNOWN_OPS = new Set([
  "same",
  "create",
  "update",
  "delete",
  "replace",
  "create-replacement",
  "delete-replaced",
  "read",
  "read-replacement",
  "refresh",
  "discard",
  "discard-replaced",
  "remove-pending-replace",
  "import",
  "import-replacement",
]);
const REPLACEMENT_OPS = new Set(["replace", "create-replacement", "delete-replaced"]);
/** Ops that change nothing in the cloud (reads, refreshes, imports, bookkeeping). */
const PASSIVE_OPS = new Set([
  "same",
  "read",
  "read-replacement",
  "refresh",
  "discard",
  "discard-replaced",
  "remove-pending-replace",
  "import",
  "import-replacement",
]);

/** One resource's logical step, whatever the input format. */
export interface PlanStep {
  /** Logical op: create-replacement/replace/delete-replaced of one URN are merged to "replace". */
  op: string;
  urn: string;
  type: string;
  name: string;
  /** Types of the ancestors, nearest first (from the URN's qualified type or the parent field). */
  ancestorTypes: string[];
  /** mail, pbx, mysql, nas, dns, monitoring or stack. */
  service: string;
  /** The server side the resource belongs to, when it belongs to one. */
  side?: Side;
  id?: string;
  oldInputs?: Record<string, unknown>;
  newInputs?: Record<string, unknown>;
  /** Properties forcing the replacement (preview: replaceReasons/keys; synth: the table). */
  replaceReasons: string[];
  /** Properties that differ. */
  diffReasons: string[];
  protect: boolean;
  retainOnDelete: boolean;
  /** The engine reported this step failing (event logs of an update). */
  failed?: boolean;
}

/** Stack outputs as far as impact planning reads them (docs/outputs.md). */
export interface StackOutputs {
  services?: Record<string, Partial<ServiceOutputs> | undefined>;
  nas?: {
    backupPlanId?: string;
    jobs?: {
      service?: string;
      name?: string;
      schedule?: string;
      intervalHours?: number;
      retentionDays?: number;
      target?: string;
    }[];
  };
  contacts?: Contact[];
  [key: string]: unknown;
}

export interface ServiceOutputs {
  activeSide: Side;
  switchover: "dns" | "eip";
  dnsName: string;
  ttl: number;
  healthCheck: { intervalSeconds?: number; failureThreshold?: number };
  bootSeconds: number;
  rtoSeconds: number;
  rpoSeconds: number;
  migrationPhase: number;
}

export interface Contact {
  name: string;
  role: string;
  phone?: string;
  email?: string;
}

export interface PlanInput {
  kind: InputKind;
  steps: PlanStep[];
  /** Stack config from the preview's prelude (`hastack:mail` etc., JSON strings). */
  config: Record<string, string>;
  outputsBefore?: StackOutputs;
  outputsAfter?: StackOutputs;
  /** Things the parser wants the operator to know (e.g. preview diagnostics at error level). */
  notes: string[];
  /** Unchanged resources known besides the steps (synth: all), e.g. to find data-volume attachments. */
  context?: PlanStep[];
}

// ---------------------------------------------------------------------------------------------
// URNs and services

export interface ParsedUrn {
  stack: string;
  project: string;
  type: string;
  /** Ancestor types from the URN's qualified type `a$b$type`, nearest first. */
  parentTypes: string[];
  name: string;
}

/**
 * `urn:pulumi:<stack>::<project>::<parent types joined by $>$<type>::<name>`. The engine leaves
 * the root stack out of the qualified type, so a top-level resource has no parent types.
 */
export function parseUrn(urn: string): ParsedUrn {
  const parts = typeof urn === "string" ? urn.split("::") : [];
  if (parts.length < 4 || !parts[0].startsWith("urn:pulumi:") || parts[2] === "") {
    throw new ImpactInputError(
      `not a Pulumi URN: ${JSON.stringify(urn)} (expected urn:pulumi:<stack>::<project>::<type>::<name>)`,
    );
  }
  const qualified = parts[2].split("$");
  return {
    stack: parts[0].slice("urn:pulumi:".length),
    project: parts[1],
    type: qualified[qualified.length - 1],
    parentTypes: qualified.slice(0, -1).reverse(),
    name: parts.slice(3).join("::"),
  };
}

/**
 * The nearest service component among the resource itself and its ancestors. A resource outside
 * any service component (a ServerPair declared directly by the program) falls back to its
 * `hastack:service` tag, then to its name's first segment (`mail-primary-data` → mail), since
 * every child name derives from the component's name.
 */
export function serviceOf(
  type: string,
  ancestorTypes: string[],
  name = "",
  inputs?: Record<string, unknown>,
): string {
  for (const t of [type, ...ancestorTypes]) {
    if (SERVICE_COMPONENTS[t]) {
      return SERVICE_COMPONENTS[t];
    }
  }
  const tags = inputs?.tags as Record<string, unknown> | undefined;
  const tagged = tags?.["hastack:service"];
  if (typeof tagged === "string" && (SERVICES as readonly string[]).includes(tagged)) {
    return tagged;
  }
  const prefix = name.split("-")[0];
  if ((SERVICES as readonly string[]).includes(prefix)) {
    return prefix;
  }
  for (const t of [type, ...ancestorTypes]) {
    if (SHARED_COMPONENTS[t]) {
      return SHARED_COMPONENTS[t];
    }
  }
  return "stack";
}

/** `mail-pair-primary-data` → primary; the tag `hastack:role` wins when present. */
export function sideOf(name: string, inputs?: Record<string, unknown>): Side | undefined {
  const tags = inputs?.tags as Record<string, unknown> | undefined;
  const tagged = tags?.["hastack:role"];
  if (tagged === "primary" || tagged === "standby") {
    return tagged;
  }
  const m = /(?:^|-)(primary|standby)(?:-|$)/.exec(name);
  return m ? (m[1] as Side) : undefined;
}

// ---------------------------------------------------------------------------------------------
// Input detection and parsing

/** Reads one or two input texts (already loaded) and returns the plan input. */
export function parseInputs(inputs: { path: string; text: string }[]): PlanInput {
  if (inputs.length === 0) {
    throw new ImpactInputError(
      "no input: give a `pulumi preview --json` file, an engine event log, or two synth files (before after)",
    );
  }
  if (inputs.length > 2) {
    throw new ImpactInputError(
      `too many inputs (${inputs.length}): give one preview/event-log file, or two synth files (before after)`,
    );
  }
  if (inputs.length === 2) {
    const [before, after] = inputs.map((i) => {
      const doc = parseJsonDocument(i);
      if (!isDeployment(doc)) {
        throw new ImpactInputError(
          `${i.path}: with two inputs both must be synth deployments ({"version": 3, "deployment": {"resources": [...]}})`,
        );
      }
      return doc;
    });
    return planInputFromSynth(before, after, inputs[0].path, inputs[1].path);
  }
  const { path, text } = inputs[0];
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    return parseEventLog(text, path);
  }
  if (isRecord(doc) && Array.isArray(doc.events)) {
    return eventsToPlanInput(doc.events, path, (i) => `${path}: events[${i}]`);
  }
  if (isRecord(doc) && isEngineEvent(doc)) {
    return eventsToPlanInput([doc], path, () => path);
  }
  if (isDeployment(doc)) {
    throw new ImpactInputError(
      `${path}: a synth deployment alone says nothing about a change; give two (before after)`,
    );
  }
  if (isRecord(doc) && ("steps" in doc || "changeSummary" in doc)) {
    return parsePreviewDigest(doc, path);
  }
  throw new ImpactInputError(
    `${path}: not a recognised input: expected \`pulumi preview --json\` output (an object with "steps"), ` +
      "an engine event log (JSON lines with resourcePreEvent …), or two synth deployments",
  );
}

function parseJsonDocument(i: { path: string; text: string }): unknown {
  try {
    return JSON.parse(i.text);
  } catch (e) {
    throw new ImpactInputError(`${i.path}: not valid JSON (${(e as Error).message})`);
  }
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

export interface SynthResource {
  urn: string;
  type: string;
  name?: string;
  parent?: string;
  custom?: boolean;
  protect?: boolean;
  retainOnDelete?: boolean;
  ignoreChanges?: string[];
  inputs?: Record<string, unknown>;
  outputs?: Record<string, unknown>;
  id?: string;
}

export interface Deployment {
  version: number;
  deployment: { resources: SynthResource[] };
}

export function isDeployment(doc: unknown): doc is Deployment {
  return (
    isRecord(doc) &&
    typeof doc.version === "number" &&
    isRecord(doc.deployment) &&
    Array.isArray((doc.deployment as Record<string, unknown>).resources)
  );
}

/** `pulumi preview --json`: a PreviewDigest (pkg/display/json.go). */
export function parsePreviewDigest(doc: Record<string, unknown>, path: string): PlanInput {
  const steps = doc.steps ?? [];
  if (!Array.isArray(steps)) {
    throw new ImpactInputError(`${path}: "steps" must be an array of preview steps`);
  }
  const config = stringMap(doc.config, `${path}: "config"`);
  const notes: string[] = [];
  const out: PlanStep[] = [];
  let outputsBefore: StackOutputs | undefined;
  let outputsAfter: StackOutputs | undefined;
  steps.forEach((raw, i) => {
    const where = `${path}: steps[${i}]`;
    if (!isRecord(raw)) {
      throw new ImpactInputError(`${where}: must be an object with "op" and "urn"`);
    }
    const op = requireOp(raw.op, where);
    const urn = requireString(raw.urn, `${where}.urn`);
    const oldState = optionalRecord(raw.oldState, `${where}.oldState`);
    const newState = optionalRecord(raw.newState, `${where}.newState`);
    const parsed = parseUrn(urn);
    if (parsed.type === "pulumi:pulumi:Stack") {
      outputsBefore = asOutputs(oldState?.outputs) ?? outputsBefore;
      outputsAfter = asOutputs(newState?.outputs) ?? outputsAfter;
    }
    const detailed = isRecord(raw.detailedDiff) ? Object.keys(raw.detailedDiff) : [];
    const replaceFromDetail = isRecord(raw.detailedDiff)
      ? Object.entries(raw.detailedDiff)
          .filter(([, d]) => isRecord(d) && /-replace$/.test(String(d.kind ?? d.diffKind ?? "")))
          .map(([k]) => k)
      : [];
    out.push(
      makeStep({
        op,
        urn,
        parsed,
        id: stringOrUndefined(oldState?.id) ?? stringOrUndefined(newState?.id),
        oldInputs: recordOrUndefined(oldState?.inputs),
        newInputs: recordOrUndefined(newState?.inputs),
        replaceReasons: unique([
          ...stringList(raw.replaceReasons, `${where}.replaceReasons`),
          ...replaceFromDetail,
        ]),
        diffReasons: unique([...stringList(raw.diffReasons, `${where}.diffReasons`), ...detailed]),
        protect: Boolean(oldState?.protect ?? newState?.protect),
        retainOnDelete: Boolean(oldState?.retainOnDelete ?? newState?.retainOnDelete),
      }),
    );
  });
  const diagnostics = Array.isArray(doc.diagnostics) ? doc.diagnostics : [];
  for (const d of diagnostics) {
    if (isRecord(d) && d.severity === "error") {
      notes.push(`preview reported an error: ${String(d.message ?? "").trim()}`);
    }
  }
  return {
    kind: "preview-json",
    steps: mergeByUrn(out),
    config,
    outputsBefore,
    outputsAfter,
    notes,
  };
}

/**
 * One step per URN: `--show-replacement-steps` lists create-replacement, replace and
 * delete-replaced of one resource separately; they are one replacement.
 */
function mergeByUrn(steps: PlanStep[]): PlanStep[] {
  const byUrn = new Map<string, PlanStep[]>();
  for (const s of steps) {
    byUrn.set(s.urn, [...(byUrn.get(s.urn) ?? []), s]);
  }
  return [...byUrn.values()].map((group) => {
    if (group.length === 1) {
      return group[0];
    }
    const op = logicalOp(group.map((s) => s.op));
    const main = group.find((s) => s.op === op) ?? group[0];
    return {
      ...main,
      op,
      oldInputs: main.oldInputs ?? group.find((s) => s.oldInputs)?.oldInputs,
      newInputs: main.newInputs ?? group.find((s) => s.newInputs)?.newInputs,
      replaceReasons: unique(group.flatMap((s) => s.replaceReasons)),
      diffReasons: unique(group.flatMap((s) => s.diffReasons)),
      protect: group.some((s) => s.protect),
      retainOnDelete: group.some((s) => s.retainOnDelete),
    };
  });
}

const EVENT_KEYS = [
  "cancelEvent",
  "stdoutEvent",
  "diagnosticEvent",
  "preludeEvent",
  "summaryEvent",
  "resourcePreEvent",
  "resOutputsEvent",
  "resOpFailedEvent",
  "policyEvent",
  "policyRemediationEvent",
  "policyLoadEvent",
  "policyAnalyzeSummaryEvent",
  "policyRemediateSummaryEvent",
  "policyAnalyzeStackSummaryEvent",
  "startDebuggingEvent",
  "progressEvent",
  "errorEvent",
];

function isEngineEvent(v: Record<string, unknown>): boolean {
  return (
    (typeof v.sequence === "number" || typeof v.timestamp === "number") &&
    EVENT_KEYS.some((k) => k in v)
  );
}

/** JSON lines of apitype.EngineEvent (`pulumi preview --event-log FILE`). */
export function parseEventLog(text: string, path: string): PlanInput {
  const events: unknown[] = [];
  const lineNumbers: number[] = [];
  text.split(/\r?\n/).forEach((line, i) => {
    if (line.trim() === "") {
      return;
    }
    let v: unknown;
    try {
      v = JSON.parse(line);
    } catch {
      throw new ImpactInputError(
        `${path}:${i + 1}: not JSON — expected \`pulumi preview --json\` output or an engine event log (one JSON event per line)`,
      );
    }
    events.push(v);
    lineNumbers.push(i + 1);
  });
  if (events.length === 0) {
    throw new ImpactInputError(`${path}: empty file`);
  }
  return eventsToPlanInput(events, path, (i) => `${path}:${lineNumbers[i]}`);
}

function eventsToPlanInput(
  events: unknown[],
  path: string,
  where: (i: number) => string,
): PlanInput {
  interface Acc {
    ops: string[];
    meta: Record<string, unknown>;
    failed: boolean;
  }
  const byUrn = new Map<string, Acc>();
  let config: Record<string, string> = {};
  const notes: string[] = [];
  let sawResourceEvent = false;
  let sawSummary = false;
  events.forEach((ev, i) => {
    if (!isRecord(ev) || !isEngineEvent(ev)) {
      throw new ImpactInputError(
        `${where(i)}: not an engine event (expected {"sequence", "timestamp", and one of resourcePreEvent, preludeEvent, summaryEvent, …})`,
      );
    }
    if (isRecord(ev.preludeEvent)) {
      config = stringMap(ev.preludeEvent.config, `${where(i)}: preludeEvent.config`);
    }
    if (isRecord(ev.summaryEvent)) {
      sawSummary = true;
    }
    if (isRecord(ev.diagnosticEvent) && ev.diagnosticEvent.severity === "error") {
      notes.push(`engine error: ${String(ev.diagnosticEvent.message ?? "").trim()}`);
    }
    for (const key of ["resourcePreEvent", "resOutputsEvent", "resOpFailedEvent"] as const) {
      const e = ev[key];
      if (!isRecord(e)) {
        continue;
      }
      sawResourceEvent = true;
      const meta = e.metadata;
      if (!isRecord(meta)) {
        throw new ImpactInputError(
          `${where(i)}: ${key}.metadata must be a StepEventMetadata object`,
        );
      }
      const op = requireOp(meta.op, `${where(i)}: ${key}.metadata`);
      const urn = requireString(meta.urn, `${where(i)}: ${key}.metadata.urn`);
      parseUrn(urn);
      const acc = byUrn.get(urn) ?? { ops: [], meta, failed: false };
      if (!acc.ops.includes(op)) {
        acc.ops.push(op);
      }
      // Keep the richest metadata: the logical "replace" step carries the replace keys.
      if (key === "resourcePreEvent" && (op === "replace" || acc.ops.length === 1)) {
        acc.meta = meta;
      }
      if (key === "resOpFailedEvent") {
        acc.failed = true;
      }
      byUrn.set(urn, acc);
    }
  });
  if (!sawResourceEvent && !sawSummary) {
    throw new ImpactInputError(
      `${path}: an engine event log without any resource or summary event — not a preview or update log`,
    );
  }
  const steps: PlanStep[] = [];
  let outputsBefore: StackOutputs | undefined;
  let outputsAfter: StackOutputs | undefined;
  for (const [urn, acc] of byUrn) {
    const m = acc.meta;
    const oldState = recordOrUndefined(m.old);
    const newState = recordOrUndefined(m.new);
    const parsed = parseUrn(urn);
    if (parsed.type === "pulumi:pulumi:Stack") {
      outputsBefore = asOutputs(oldState?.outputs) ?? outputsBefore;
      outputsAfter = asOutputs(newState?.outputs) ?? outputsAfter;
    }
    const detailed = recordOrUndefined(m.detailedDiff) ?? {};
    const replaceFromDetail = Object.entries(detailed)
      .filter(([, d]) => isRecord(d) && /-replace$/.test(String(d.diffKind ?? d.kind ?? "")))
      .map(([k]) => k);
    steps.push({
      ...makeStep({
        op: logicalOp(acc.ops),
        urn,
        parsed,
        id: stringOrUndefined(oldState?.id) ?? stringOrUndefined(newState?.id),
        oldInputs: recordOrUndefined(oldState?.inputs),
        newInputs: recordOrUndefined(newState?.inputs),
        replaceReasons: unique([...stringList(m.keys, `${urn} keys`), ...replaceFromDetail]),
        diffReasons: unique([...stringList(m.diffs, `${urn} diffs`), ...Object.keys(detailed)]),
        protect: Boolean(oldState?.protect ?? newState?.protect),
        retainOnDelete: Boolean(oldState?.retainOnDelete ?? newState?.retainOnDelete),
        parentUrn: stringOrUndefined(oldState?.parent) ?? stringOrUndefined(newState?.parent),
      }),
      failed: acc.failed || undefined,
    });
  }
  return { kind: "event-log", steps, config, outputsBefore, outputsAfter, notes };
}

/** One URN's ops merged: any replacement op makes it a replace; otherwise the first change. */
export function logicalOp(ops: string[]): string {
  if (ops.some((o) => REPLACEMENT_OPS.has(o))) {
    return "replace";
  }
  return ops.find((o) => o !== "same") ?? "same";
}

function makeStep(o: {
  op: string;
  urn: string;
  parsed: ParsedUrn;
  id?: string;
  oldInputs?: Record<string, unknown>;
  newInputs?: Record<string, unknown>;
  replaceReasons: string[];
  diffReasons: string[];
  protect: boolean;
  retainOnDelete: boolean;
  parentUrn?: string;
  ancestorTypes?: string[];
}): PlanStep {
  const ancestorTypes = o.ancestorTypes ?? o.parsed.parentTypes;
  return {
    op: o.op,
    urn: o.urn,
    type: o.parsed.type,
    name: o.parsed.name,
    ancestorTypes,
    service: serviceOf(o.parsed.type, ancestorTypes, o.parsed.name, o.newInputs ?? o.oldInputs),
    side: sideOf(o.parsed.name, o.newInputs ?? o.oldInputs),
    id: o.id,
    oldInputs: o.oldInputs,
    newInputs: o.newInputs,
    replaceReasons: o.replaceReasons,
    diffReasons: o.diffReasons,
    protect: o.protect,
    retainOnDelete: o.retainOnDelete,
  };
}

function requireOp(v: unknown, where: string): string {
  if (typeof v !== "string" || v === "") {
    throw new ImpactInputError(`${where}: "op" must be a step op string such as "update"`);
  }
  if (!KNOWN_OPS.has(v)) {
    throw new ImpactInputError(
      `${where}: unknown step op ${JSON.stringify(v)} (known: ${[...KNOWN_OPS].join(", ")}) — refusing to guess its impact`,
    );
  }
  return v;
}

function requireString(v: unknown, where: string): string {
  if (typeof v !== "string" || v === "") {
    throw new ImpactInputError(`${where}: must be a non-empty string`);
  }
  return v;
}

function optionalRecord(v: unknown, where: string): Record<string, unknown> | undefined {
  if (v === undefined || v === null) {
    return undefined;
  }
  if (!isRecord(v)) {
    throw new ImpactInputError(`${where}: must be an object`);
  }
  return v;
}

function recordOrUndefined(v: unknown): Record<string, unknown> | undefined {
  return isRecord(v) ? v : undefined;
}

function stringOrUndefined(v: unknown): string | undefined {
  return typeof v === "string" && v !== "" ? v : undefined;
}

function stringList(v: unknown, where: string): string[] {
  if (v === undefined || v === null) {
    return [];
  }
  if (!Array.isArray(v) || !v.every((x) => typeof x === "string")) {
    throw new ImpactInputError(`${where}: must be a list of property names`);
  }
  return v as string[];
}

function stringMap(v: unknown, where: string): Record<string, string> {
  if (v === undefined || v === null) {
    return {};
  }
  if (!isRecord(v)) {
    throw new ImpactInputError(`${where}: must be an object of config keys to values`);
  }
  const out: Record<string, string> = {};
  for (const [k, x] of Object.entries(v)) {
    out[k] = typeof x === "string" ? x : JSON.stringify(x);
  }
  return out;
}

function asOutputs(v: unknown): StackOutputs | undefined {
  return isRecord(v) && Object.keys(v).length > 0 ? (v as StackOutputs) : undefined;
}

function unique<T>(xs: T[]): T[] {
  return [...new Set(xs)];
}

// ---------------------------------------------------------------------------------------------
// Synth pairs: the diff and the replacement table

/**
 * Properties whose change makes the AWS (or random/command) provider replace the resource, for
 * the types this stack uses (ForceNew in the provider schemas). "*" means every input. A path
 * `a.b` compares that nested value only. This is an ESTIMATE: `pulumi preview --json` asks the
 * provider and is authoritative. Types not listed are assumed to update in place.
 */
export const REPLACE_FORCING: Record<string, string[]> = {
  "aws:ec2/instance:Instance": [
    "ami",
    "availabilityZone",
    "subnetId",
    "privateIp",
    "keyName",
    "tenancy",
    "placementGroup",
    "hostId",
    "ebsBlockDevices",
    "ephemeralBlockDevices",
    "networkInterfaces",
    "primaryNetworkInterface",
    "associatePublicIpAddress",
    "launchTemplate",
    "rootBlockDevice.encrypted",
    "rootBlockDevice.kmsKeyId",
    // userData only when userDataReplaceOnChange is set (see replaceReasonsFor); else stop/start.
  ],
  "aws:ebs/volume:Volume": [
    "availabilityZone",
    "encrypted",
    "snapshotId",
    "kmsKeyId",
    "outpostArn",
  ],
  "aws:ec2/volumeAttachment:VolumeAttachment": ["deviceName", "instanceId", "volumeId"],
  // The server's primary interface (ServerPair): a new subnet means a new interface, and with
  // it a new server (primaryNetworkInterface above).
  "aws:ec2/networkInterface:NetworkInterface": [
    "subnetId",
    "interfaceType",
    "privateIpListEnabled",
  ],
  "aws:ec2/eipDomainName:EipDomainName": ["allocationId"],
  "aws:ec2/eip:Eip": [
    "domain",
    "address",
    "publicIpv4Pool",
    "networkBorderGroup",
    "customerOwnedIpv4Pool",
  ],
  "aws:ec2/eipAssociation:EipAssociation": [
    "allocationId",
    "instanceId",
    "networkInterfaceId",
    "privateIpAddress",
    "publicIp",
    "allowReassociation",
  ],
  "aws:ec2/securityGroup:SecurityGroup": ["name", "namePrefix", "vpcId", "description"],
  "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule": ["securityGroupId"],
  "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule": ["securityGroupId"],
  "aws:route53/record:Record": ["name", "type", "setIdentifier", "zoneId"],
  "aws:route53/healthCheck:HealthCheck": [
    "type",
    "requestInterval",
    "measureLatency",
    "referenceName",
    "routingControlArn",
  ],
  "aws:route53/zone:Zone": ["name", "delegationSetId"],
  "aws:iam/role:Role": ["name", "namePrefix", "path"],
  "aws:iam/instanceProfile:InstanceProfile": ["name", "namePrefix", "path"],
  "aws:iam/rolePolicy:RolePolicy": ["name", "namePrefix", "role"],
  "aws:iam/rolePolicyAttachment:RolePolicyAttachment": ["role", "policyArn"],
  "aws:ssm/parameter:Parameter": ["name"],
  "aws:backup/vault:Vault": ["name", "kmsKeyArn"],
  "aws:backup/plan:Plan": ["name"],
  "aws:backup/selection:Selection": [
    "name",
    "planId",
    "iamRoleArn",
    "resources",
    "notResources",
    "selectionTags",
    "conditions",
  ],
  "aws:sns/topic:Topic": ["name", "namePrefix", "fifoTopic"],
  "aws:sns/topicSubscription:TopicSubscription": ["topic", "protocol", "endpoint"],
  "aws:cloudwatch/metricAlarm:MetricAlarm": ["name"],
  "aws:kms/key:Key": ["customerMasterKeySpec", "keySpec", "multiRegion"],
  "aws:kms/alias:Alias": ["name", "namePrefix"],
  "aws:ec2/vpc:Vpc": ["cidrBlock"],
  "aws:ec2/subnet:Subnet": ["vpcId", "cidrBlock", "availabilityZone", "availabilityZoneId"],
  "aws:ec2/routeTable:RouteTable": ["vpcId"],
  "aws:ec2/route:Route": ["routeTableId", "destinationCidrBlock"],
  "aws:ec2/routeTableAssociation:RouteTableAssociation": ["subnetId", "gatewayId"],
  "aws:ec2/keyPair:KeyPair": ["keyName", "keyNamePrefix", "publicKey"],
  "random:index/randomPassword:RandomPassword": ["*"],
  "random:index/randomString:RandomString": ["*"],
  "command:remote:Command": ["triggers"],
  "command:local:Command": ["triggers"],
};

/** Instance properties whose in-place change makes the provider stop and start the server. */
export const STOP_START_PROPERTIES = ["instanceType", "userData", "userDataBase64", "ebsOptimized"];

/** Reads `a.b[0].c` from a value. */
export function getPath(v: unknown, path: string): unknown {
  let cur: unknown = v;
  for (const part of path.replace(/\[(\d+)\]/g, ".$1").split(".")) {
    if (!isRecord(cur) && !Array.isArray(cur)) {
      return undefined;
    }
    cur = (cur as Record<string, unknown>)[part];
  }
  return cur;
}

function setPath(target: Record<string, unknown>, path: string, value: unknown): void {
  const parts = path.replace(/\[(\d+)\]/g, ".$1").split(".");
  let cur: Record<string, unknown> = target;
  for (const part of parts.slice(0, -1)) {
    if (!isRecord(cur[part]) && !Array.isArray(cur[part])) {
      cur[part] = {};
    }
    cur = cur[part] as Record<string, unknown>;
  }
  const last = parts[parts.length - 1];
  if (value === undefined) {
    delete cur[last];
  } else {
    cur[last] = value;
  }
}

/** Deep equality for JSON values, ignoring key order. */
export function jsonEqual(a: unknown, b: unknown): boolean {
  if (a === b) {
    return true;
  }
  if (Array.isArray(a) && Array.isArray(b)) {
    return a.length === b.length && a.every((x, i) => jsonEqual(x, b[i]));
  }
  if (isRecord(a) && isRecord(b)) {
    const ka = Object.keys(a).filter((k) => a[k] !== undefined);
    const kb = Object.keys(b).filter((k) => b[k] !== undefined);
    return ka.length === kb.length && ka.every((k) => jsonEqual(a[k], b[k]));
  }
  return false;
}

/**
 * New inputs with every ignoreChanges path reset to its old value, which is what the engine does
 * before diffing: an ignored property never causes an update or a replacement.
 */
export function applyIgnoreChanges(
  oldInputs: Record<string, unknown>,
  newInputs: Record<string, unknown>,
  ignoreChanges: string[],
): Record<string, unknown> {
  const out = JSON.parse(JSON.stringify(newInputs)) as Record<string, unknown>;
  for (const path of ignoreChanges) {
    setPath(out, path, getPath(oldInputs, path));
  }
  return out;
}

/** Top-level input keys that differ. */
export function changedKeys(a: Record<string, unknown>, b: Record<string, unknown>): string[] {
  const keys = unique([...Object.keys(a), ...Object.keys(b)]).sort();
  return keys.filter((k) => !jsonEqual(a[k], b[k]));
}

/** Which of the changed properties force a replacement, per REPLACE_FORCING. */
export function replaceReasonsFor(
  type: string,
  oldInputs: Record<string, unknown>,
  newInputs: Record<string, unknown>,
): string[] {
  const forcing = [...(REPLACE_FORCING[type] ?? [])];
  if (type === "aws:ec2/instance:Instance" && newInputs.userDataReplaceOnChange === true) {
    forcing.push("userData", "userDataBase64");
  }
  if (forcing.includes("*")) {
    return changedKeys(oldInputs, newInputs);
  }
  return forcing.filter((p) => !jsonEqual(getPath(oldInputs, p), getPath(newInputs, p)));
}

/** Stack outputs of a synth deployment: the root stack resource's outputs. */
export function deploymentOutputs(d: Deployment): StackOutputs | undefined {
  const stack = d.deployment.resources.find((r) => r.type === "pulumi:pulumi:Stack");
  return asOutputs(stack?.outputs);
}

/** The steps between two synth deployments, replacement decided by REPLACE_FORCING. */
export function planInputFromSynth(
  before: Deployment,
  after: Deployment,
  beforePath = "before",
  afterPath = "after",
): PlanInput {
  const index = (d: Deployment, path: string): Map<string, SynthResource> => {
    const m = new Map<string, SynthResource>();
    d.deployment.resources.forEach((r, i) => {
      if (!isRecord(r) || typeof r.urn !== "string" || typeof r.type !== "string") {
        throw new ImpactInputError(`${path}: deployment.resources[${i}] needs "urn" and "type"`);
      }
      parseUrn(r.urn);
      m.set(r.urn, r);
    });
    return m;
  };
  const b = index(before, beforePath);
  const a = index(after, afterPath);
  const ancestry = (
    urn: string,
    primary: Map<string, SynthResource>,
    other: Map<string, SynthResource>,
  ) => {
    const types: string[] = [];
    const seen = new Set<string>();
    let cur = primary.get(urn) ?? other.get(urn);
    while (cur?.parent && !seen.has(cur.parent)) {
      seen.add(cur.parent);
      const p = primary.get(cur.parent) ?? other.get(cur.parent);
      if (!p) {
        // Parent not recorded: the rest of the chain is in the parent's URN.
        const pu = parseUrn(cur.parent);
        types.push(...[pu.type, ...pu.parentTypes].filter((t) => t !== "pulumi:pulumi:Stack"));
        break;
      }
      if (p.type !== "pulumi:pulumi:Stack") {
        types.push(p.type);
      }
      cur = p;
    }
    return types;
  };
  interface Pending {
    urn: string;
    op: string;
    diffReasons: string[];
    replaceReasons: string[];
  }
  const pending: Pending[] = [];
  for (const urn of unique([...a.keys(), ...b.keys()])) {
    const old = b.get(urn);
    const neu = a.get(urn);
    const res = (neu ?? old)!;
    const oldInputs = old?.inputs ?? {};
    let op: string;
    let diffReasons: string[] = [];
    let replaceReasons: string[] = [];
    if (!old) {
      op = "create";
    } else if (!neu) {
      op = "delete";
    } else {
      const effective = applyIgnoreChanges(oldInputs, neu.inputs ?? {}, neu.ignoreChanges ?? []);
      diffReasons = changedKeys(oldInputs, effective);
      if (diffReasons.length === 0 || !res.custom) {
        op = diffReasons.length === 0 ? "same" : "update";
      } else {
        replaceReasons = replaceReasonsFor(res.type, oldInputs, effective);
        op = replaceReasons.length > 0 ? "replace" : "update";
      }
    }
    pending.push({ urn, op, diffReasons, replaceReasons });
  }
  cascadeReplacements(pending, a);

  const steps: PlanStep[] = [];
  const context: PlanStep[] = [];
  for (const { urn, op, diffReasons, replaceReasons } of pending) {
    const old = b.get(urn);
    const neu = a.get(urn);
    const target = op === "same" ? context : steps;
    target.push(
      makeStep({
        op,
        urn,
        parsed: parseUrn(urn),
        id: stringOrUndefined(old?.id) ?? stringOrUndefined(old?.outputs?.id),
        oldInputs: old?.inputs,
        newInputs: neu?.inputs,
        replaceReasons,
        diffReasons,
        protect: Boolean(old?.protect ?? neu?.protect),
        retainOnDelete: Boolean(old?.retainOnDelete ?? neu?.retainOnDelete),
        ancestorTypes: ancestry(urn, neu ? a : b, neu ? b : a),
      }),
    );
  }
  return {
    kind: "synth-pair",
    steps,
    config: {},
    outputsBefore: deploymentOutputs(before),
    outputsAfter: deploymentOutputs(after),
    notes: [],
    context,
  };
}

/**
 * A replaced resource gets a new id, which synth files cannot show (mock ids derive from names).
 * So every input that holds a replaced resource's id changes too; where that input forces
 * replacement (REPLACE_FORCING), the dependent is replaced as well — e.g. a server whose primary
 * network interface moves to another subnet. Repeats until nothing more is replaced.
 */
function cascadeReplacements(
  pending: { urn: string; op: string; diffReasons: string[]; replaceReasons: string[] }[],
  after: Map<string, SynthResource>,
): void {
  const byUrn = new Map(pending.map((p) => [p.urn, p]));
  const replacedIds = new Map<string, string>();
  let grew = true;
  while (grew) {
    grew = false;
    for (const p of pending) {
      const id = stringOrUndefined(after.get(p.urn)?.id);
      if (p.op === "replace" && id && !replacedIds.has(id)) {
        replacedIds.set(id, parseUrn(p.urn).name);
        grew = true;
      }
    }
    if (!grew) {
      break;
    }
    for (const r of after.values()) {
      const p = byUrn.get(r.urn);
      if (!p || !r.custom || (p.op !== "same" && p.op !== "update")) {
        continue;
      }
      const ignored = new Set(r.ignoreChanges ?? []);
      const touched = Object.entries(r.inputs ?? {})
        .filter(
          ([k, v]) =>
            !ignored.has(k) &&
            [...replacedIds.keys()].some((id) => JSON.stringify(v).includes(JSON.stringify(id))),
        )
        .map(([k]) => k);
      if (touched.length === 0) {
        continue;
      }
      p.diffReasons = unique([...p.diffReasons, ...touched]).sort();
      const forcing = REPLACE_FORCING[r.type] ?? [];
      const forced = touched.filter((k) => forcing.some((f) => f === k || f.startsWith(`${k}.`)));
      p.op = forced.length > 0 ? "replace" : "update";
      p.replaceReasons = unique([...p.replaceReasons, ...forced]).sort();
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Classification and downtime

/** Documented estimates (docs/operations-impact.md) used where the stack says nothing. */
export const DEFAULTS = {
  ttl: 60,
  healthCheckIntervalSeconds: 10,
  failureThreshold: 3,
  bootSeconds: 180,
  /** Route 53 changes reach all its authoritative servers within about a minute. */
  route53PropagationSeconds: 60,
  /** Disassociating and associating an Elastic IP. */
  eipReassociationSeconds: 30,
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

const DEFAULT_SWITCHOVER: Record<string, "dns" | "eip"> = {
  mail: "dns",
  mysql: "dns",
  pbx: "eip",
  nas: "dns",
};

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
    DEFAULT_SWITCHOVER[service] ??
    "dns";
  const ttl = num(out?.ttl, cfg?.ttl) ?? DEFAULTS.ttl;
  const hcCfg = isRecord(cfg?.healthCheck) ? cfg!.healthCheck : {};
  const intervalSeconds =
    num(out?.healthCheck?.intervalSeconds) ?? DEFAULTS.healthCheckIntervalSeconds;
  const failureThreshold =
    num(out?.healthCheck?.failureThreshold, (hcCfg as Record<string, unknown>).failureThreshold) ??
    DEFAULTS.failureThreshold;
  const bootSeconds = num(out?.bootSeconds, cfg?.bootSeconds) ?? DEFAULTS.bootSeconds;
  const detection = intervalSeconds * failureThreshold;
  const rtoSeconds =
    num(out?.rtoSeconds) ??
    (switchover === "dns" ? detection + ttl : detection + DEFAULTS.eipReassociationSeconds);
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
  /** Seconds users may not reach the service because of this step; null = until undone. */
  downtimeSeconds: number | null;
}

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

/** Types on the path of user traffic: replacing or deleting one interrupts the service. */
export const SERVING_TYPES = new Set([
  "aws:ec2/instance:Instance",
  "aws:ec2/eip:Eip",
  "aws:ec2/volumeAttachment:VolumeAttachment",
  "aws:ec2/networkInterface:NetworkInterface",
  "aws:route53/zone:Zone",
]);

const RECORD = "aws:route53/record:Record";
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

/** Classifies one step. `all` is the whole plan (a record delete paired with a create is a switch). */
export function classifyStep(
  step: PlanStep,
  params: ServiceParams,
  all: PlanStep[],
  context: PlanStep[] = [],
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
  });
  const where = serving ? "serving" : `${step.side} (not serving)`;
  const op = step.op;
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
      const dt =
        serving && step.type === "aws:ebs/volume:Volume"
          ? autoFailoverCapped(params, step, all, replaceDowntime)
          : 0;
      return res(
        "data-risk",
        `${what} of a resource holding data${replace ? ` (forced by ${fmtKeys(step.replaceReasons)})` : ""}: the new one starts empty`,
        dt,
      );
    }
    if (step.type === INSTANCE) {
      const down = serving ? autoFailoverCapped(params, step, all, replaceDowntime) : 0;
      if (instanceHoldsData(step, all, context)) {
        return res("data-risk", `${what} of a server holding data on itself (${where})`, down);
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
// The plan

export interface ServiceImpact {
  service: string;
  class: ImpactClass;
  /** Longest single interruption (steps of one update run in parallel); null = until undone. */
  downtimeSeconds: number | null;
  steps: number;
  params: ServiceParams;
  /** One line per impactful step. */
  reasons: string[];
}

export interface ImpactPlan {
  kind: InputKind;
  /** True for synth pairs: replacement was estimated from REPLACE_FORCING. */
  estimate: boolean;
  steps: ClassifiedStep[];
  services: ServiceImpact[];
  worst: ImpactClass;
  notes: string[];
  outputsBefore?: StackOutputs;
  outputsAfter?: StackOutputs;
  config: Record<string, string>;
}

export function buildImpactPlan(input: PlanInput): ImpactPlan {
  const paramsBySvc = new Map<string, ServiceParams>();
  const params = (svc: string) => {
    if (!paramsBySvc.has(svc)) {
      paramsBySvc.set(svc, serviceParams(input, svc));
    }
    return paramsBySvc.get(svc)!;
  };
  const steps = input.steps.map((s) =>
    classifyStep(s, params(s.service), input.steps, input.context ?? []),
  );
  const notes = [...input.notes];
  for (const s of steps) {
    if ((s.op === "replace" || s.op === "delete") && s.protect) {
      notes.push(
        `${s.urn} is protected: \`pulumi up\` refuses to ${s.op} it until it is unprotected`,
      );
    }
    if (s.failed) {
      notes.push(`${s.urn}: the engine reported this step failing`);
    }
  }
  const services: ServiceImpact[] = [];
  const order = [...SERVICES, "dns", "monitoring", "stack"];
  const seen = unique(steps.map((s) => s.service)).sort(
    (a, b) => order.indexOf(a) - order.indexOf(b),
  );
  for (const svc of seen) {
    const own = steps.filter((s) => s.service === svc && s.op !== "same");
    if (own.length === 0) {
      continue;
    }
    const cls = worstOf(own.map((s) => s.class));
    const downs = own.map((s) => s.downtimeSeconds);
    services.push({
      service: svc,
      class: cls,
      downtimeSeconds: downs.includes(null) ? null : Math.max(0, ...(downs as number[])),
      steps: own.length,
      params: params(svc),
      reasons: own
        .filter((s) => s.class !== "none")
        .map((s) => `${s.class}: ${s.name} (${s.op}) — ${s.reason}`),
    });
  }
  return {
    kind: input.kind,
    estimate: input.kind === "synth-pair",
    steps,
    services,
    worst: worstOf(services.map((s) => s.class)),
    notes,
    outputsBefore: input.outputsBefore,
    outputsAfter: input.outputsAfter,
    config: input.config,
  };
}

export function worstOf(classes: ImpactClass[]): ImpactClass {
  return classes.reduce<ImpactClass>((w, c) => (CLASS_RANK[c] > CLASS_RANK[w] ? c : w), "none");
}

// ---------------------------------------------------------------------------------------------
// Exit-code policy

export interface MaintenanceWindow {
  start: Date;
  end: Date;
  /** UTC offset the operator wrote START in (minutes), to announce times as people read them. */
  offsetMinutes: number;
}

/** The UTC offset written in an ISO 8601 time (`+07:00` → 420, `Z` → 0). */
export function offsetOf(iso: string): number {
  const m = /(Z|([+-])(\d{2}):?(\d{2}))$/.exec(iso);
  if (!m || m[1] === "Z") {
    return 0;
  }
  const v = Number(m[3]) * 60 + Number(m[4]);
  return m[2] === "-" ? -v : v;
}

/** `2025-07-05T22:00+07:00/2025-07-06T01:00+07:00` (ISO 8601 interval, both ends explicit). */
export function parseWindow(text: string): MaintenanceWindow {
  const parts = text.split("/");
  const iso = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})$/;
  if (parts.length !== 2 || !parts.every((p) => iso.test(p))) {
    throw new ImpactInputError(
      `--window must be START/END in ISO 8601 with a time zone, e.g. 2025-07-05T22:00+07:00/2025-07-06T01:00+07:00, got ${JSON.stringify(text)}`,
    );
  }
  const [start, end] = parts.map((p) => new Date(p));
  if (Number.isNaN(start.getTime()) || Number.isNaN(end.getTime())) {
    throw new ImpactInputError(`--window: not a valid date in ${JSON.stringify(text)}`);
  }
  if (end.getTime() <= start.getTime()) {
    throw new ImpactInputError(`--window: END must be after START, got ${JSON.stringify(text)}`);
  }
  return { start, end, offsetMinutes: offsetOf(parts[0]) };
}

export interface Verdict {
  /** 0 nothing worse than a brief interruption (or all planned and allowed); 3 blocked. */
  code: 0 | 3;
  /** Why it blocks, one line each; empty when code is 0. */
  blocking: string[];
  /** Outages accepted because a window is given. */
  planned: string[];
  /** Data-risk steps accepted by --allow. */
  allowed: string[];
  /** --allow URNs that match no data-risk step (typos, stale lists). */
  unusedAllows: string[];
}

/**
 * 0: nothing worse than a brief interruption. 3: an outage or a data risk. With a window,
 * outages that fit in it are planned (0); a data risk still blocks unless its URN is named by
 * --allow. An outage with no end (a delete nothing replaces) never fits a window.
 */
export function decideExit(
  plan: ImpactPlan,
  opts: { window?: MaintenanceWindow; allow?: string[] } = {},
): Verdict {
  const allow = new Set(opts.allow ?? []);
  const blocking: string[] = [];
  const planned: string[] = [];
  const allowed: string[] = [];
  const windowSeconds = opts.window
    ? (opts.window.end.getTime() - opts.window.start.getTime()) / 1000
    : 0;
  for (const s of plan.steps) {
    if (s.class === "data-risk") {
      if (opts.window && allow.has(s.urn)) {
        allowed.push(s.urn);
      } else {
        blocking.push(
          `data risk: ${s.urn} — ${s.reason}${opts.window ? " (name it with --allow to accept)" : " (needs --window and --allow)"}`,
        );
      }
    } else if (s.class === "outage") {
      if (!opts.window) {
        blocking.push(`outage: ${s.urn} — ${s.reason} (give --window START/END to plan it)`);
      } else if (s.downtimeSeconds === null) {
        blocking.push(`outage with no end: ${s.urn} — ${s.reason}`);
      } else {
        planned.push(s.urn);
      }
    }
  }
  if (opts.window) {
    for (const svc of plan.services) {
      if (
        svc.downtimeSeconds !== null &&
        svc.downtimeSeconds > windowSeconds &&
        CLASS_RANK[svc.class] >= CLASS_RANK.outage
      ) {
        blocking.push(
          `${svc.service}: estimated downtime ${fmtDuration(svc.downtimeSeconds)} does not fit the ${fmtDuration(windowSeconds)} window`,
        );
      }
    }
  }
  const riskUrns = new Set(plan.steps.filter((s) => s.class === "data-risk").map((s) => s.urn));
  return {
    code: blocking.length > 0 ? 3 : 0,
    blocking,
    planned,
    allowed,
    unusedAllows: [...allow].filter((u) => !riskUrns.has(u)),
  };
}

// ---------------------------------------------------------------------------------------------
// Rendering

export function fmtDuration(seconds: number | null, lang: "en" | "id" = "en"): string {
  const [sec, min, open] =
    lang === "id" ? ["detik", "menit", "sampai dikembalikan"] : ["s", "min", "until undone"];
  if (seconds === null) {
    return open;
  }
  if (seconds < 120) {
    return `${Math.round(seconds)} ${sec}`;
  }
  const m = Math.floor(seconds / 60);
  const s = Math.round(seconds % 60);
  return s === 0 ? `${m} ${min}` : `${m} ${min} ${s} ${sec}`;
}

export const CLASS_LABEL: Record<ImpactClass, string> = {
  none: "no impact",
  brief: "brief interruption",
  outage: "OUTAGE",
  "data-risk": "DATA RISK",
};

function table(rows: string[][]): string {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  return rows
    .map((r) =>
      r
        .map((cell, c) => cell.padEnd(widths[c]))
        .join("  ")
        .trimEnd(),
    )
    .join("\n");
}

/** The operator's view: per-service table, the impactful steps, notes and the verdict. */
export function renderPlan(plan: ImpactPlan, verdict: Verdict): string {
  const lines: string[] = [];
  const source: Record<InputKind, string> = {
    "preview-json": "pulumi preview --json",
    "event-log": "engine event log",
    "synth-pair": "offline synth diff",
  };
  lines.push(`Impact plan (from ${source[plan.kind]})`);
  if (plan.estimate) {
    lines.push(
      "ESTIMATE: replacements are decided by the documented table of replace-forcing properties " +
        "(docs/operations-impact.md); `pulumi preview --json` asks the providers and is authoritative.",
    );
  }
  lines.push("");
  if (plan.services.length === 0) {
    lines.push("No changes.");
  } else {
    const rows = [["SERVICE", "IMPACT", "DOWNTIME", "STEPS", "FROM"]];
    for (const s of plan.services) {
      rows.push([
        s.service,
        CLASS_LABEL[s.class],
        fmtDuration(s.downtimeSeconds),
        String(s.steps),
        s.params.source,
      ]);
    }
    lines.push(table(rows));
    const impactful = plan.steps.filter((s) => s.class !== "none");
    if (impactful.length > 0) {
      lines.push("", "Steps with impact:");
      const rows2 = [["CLASS", "OP", "SERVICE", "TYPE", "NAME", "DOWNTIME", "WHY"]];
      for (const s of impactful.sort((a, b) => CLASS_RANK[b.class] - CLASS_RANK[a.class])) {
        rows2.push([
          CLASS_LABEL[s.class],
          s.op,
          s.service,
          s.type,
          s.name,
          fmtDuration(s.downtimeSeconds),
          s.reason,
        ]);
      }
      lines.push(table(rows2));
    }
  }
  if (plan.notes.length > 0) {
    lines.push("", "Notes:", ...plan.notes.map((n) => `  - ${n}`));
  }
  lines.push("");
  if (verdict.code === 0) {
    const extra = [
      verdict.planned.length > 0
        ? `${verdict.planned.length} outage step(s) planned in the window`
        : "",
      verdict.allowed.length > 0 ? `${verdict.allowed.length} data-risk step(s) allowed` : "",
    ].filter(Boolean);
    lines.push(`Verdict: OK (exit 0)${extra.length ? ` — ${extra.join("; ")}` : ""}`);
  } else {
    lines.push("Verdict: BLOCKED (exit 3)", ...verdict.blocking.map((b) => `  - ${b}`));
  }
  for (const u of verdict.unusedAllows) {
    lines.push(`  warning: --allow ${u} matches no data-risk step`);
  }
  return lines.join("\n") + "\n";
}
