// The impact tool's vocabulary: classes, step ops, one resource's logical step, the stack outputs
// it reads, and how a URN maps to a service and a side. Every other lib/impact module builds on it.

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
/**
 * Ops that belong to one replacement of a URN (the engine's `--show-replacement-steps` view):
 * together they are one logical replace, or an import-replacement when the new side is imported.
 */
export const REPLACEMENT_OPS = new Set([
  "replace",
  "create-replacement",
  "delete-replaced",
  "discard-replaced",
  "import-replacement",
]);
/** Ops the engine's summary counts as changes (resourceChanges/changeSummary keys compared). */
export const COUNTED_CHANGE_OPS = ["create", "update", "delete", "replace", "import"] as const;
/** The Pulumi project this tool maps to services (Pulumi.yaml `name`). */
export const HASTACK_PROJECT = "hastack";
/** Service of a step whose URN names another project: never mapped to a hastack service. */
export const FOREIGN_SERVICE = "foreign";
/** Ops that change nothing in the cloud (reads, refreshes, imports, bookkeeping). */
export const PASSIVE_OPS = new Set([
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
  /**
   * Effective op: what the URN's last non-`refresh` step does; the steps of one replacement
   * (create-replacement, replace, delete-replaced/discard-replaced) are one "replace", or
   * "import-replacement" when the new side is imported. Only refreshes (or refresh + same):
   * "refresh".
   */
  op: string;
  /** Every op the input holds for this URN, in order (refreshes included). */
  engineOps?: string[];
  /** What a refresh of this URN found in the cloud: deleted outside Pulumi, or changed. */
  refreshFound?: "deleted" | "changed";
  /** The Pulumi project named by the URN; not hastack's → service "foreign". */
  project?: string;
  /** The stack named by the URN. */
  stack?: string;
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
  /**
   * Why the step list cannot be trusted to be complete: a failed, cancelled or corrupt run, a
   * log with no summary. Empty or absent: complete. A plan with any is never OK (exit 4).
   */
  incomplete?: string[];
  /** The engine's own counts per op (summaryEvent.resourceChanges, changeSummary), when given. */
  engineCounts?: Record<string, number>;
  /** Step entries/events read from the input (before merging per URN). */
  rawSteps?: number;
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

export function makeStep(o: {
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
  /** The project whose URNs map to services. Defaults to HASTACK_PROJECT. */
  project?: string;
}): PlanStep {
  const ancestorTypes = o.ancestorTypes ?? o.parsed.parentTypes;
  const foreign = o.parsed.project !== (o.project ?? HASTACK_PROJECT);
  return {
    op: o.op,
    urn: o.urn,
    type: o.parsed.type,
    name: o.parsed.name,
    project: o.parsed.project,
    stack: o.parsed.stack,
    ancestorTypes,
    // Another project's `mysql-www` is not hastack's mysql: URNs of other projects map to no service.
    service: foreign
      ? FOREIGN_SERVICE
      : serviceOf(o.parsed.type, ancestorTypes, o.parsed.name, o.newInputs ?? o.oldInputs),
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

// ---------------------------------------------------------------------------------------------
// JSON helpers

export function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

export function recordOrUndefined(v: unknown): Record<string, unknown> | undefined {
  return isRecord(v) ? v : undefined;
}

export function stringOrUndefined(v: unknown): string | undefined {
  return typeof v === "string" && v !== "" ? v : undefined;
}

export function asOutputs(v: unknown): StackOutputs | undefined {
  return isRecord(v) && Object.keys(v).length > 0 ? (v as StackOutputs) : undefined;
}

/** Drops the engine's colour directives (`<{%reset%}>`, `<{%fg 1%}>`) from a message. */
export function stripColor(s: string): string {
  return s.replace(/<\{%[^%]*%\}>/g, "");
}

export function unique<T>(xs: T[]): T[] {
  return [...new Set(xs)];
}
