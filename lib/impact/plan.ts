// The plan (every step classified, the worst class and longest interruption per service) and the
// exit-code policy over it (--window, --allow).
import {
  CLASS_RANK,
  ImpactClass,
  ImpactInputError,
  InputKind,
  PlanInput,
  SERVICES,
  StackOutputs,
  unique,
} from "./model";
import { ClassifiedStep, ServiceParams, classifyStep, serviceParams } from "./classify";
import { fmtDuration } from "./render";

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
