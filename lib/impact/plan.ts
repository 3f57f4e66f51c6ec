// The plan (every step classified, the worst class and longest interruption per service) and the
// exit-code policy over it (--window, --allow).
import {
  CLASS_RANK,
  COUNTED_CHANGE_OPS,
  FOREIGN_SERVICE,
  HASTACK_PROJECT,
  ImpactClass,
  ImpactInputError,
  InputKind,
  PlanInput,
  SERVICES,
  StackOutputs,
  unique,
} from "./model";
import {
  ClassifiedStep,
  ServiceParams,
  UNTIL_RESTORED,
  UNTIL_UNDONE,
  classifyStep,
  serviceParams,
} from "./classify";
import { fmtDuration } from "./render";

// The plan

export interface ServiceImpact {
  service: string;
  class: ImpactClass;
  /** Longest single interruption (steps of one update run in parallel); null = open-ended. */
  downtimeSeconds: number | null;
  /** For open-ended downtime: "until restored from backup" when data is lost, else "until undone". */
  until?: string;
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
  /** Why the input's step list is not complete (failed, cancelled, corrupt, cut off, counts). */
  incomplete: string[];
  counts: PlanCounts;
}

/** The plan's change counts beside the engine's own (summaryEvent.resourceChanges / changeSummary). */
export interface PlanCounts {
  /** Resources per effective change op, counted the way the engine counts logical steps. */
  plan: Record<string, number>;
  /** The engine's counts for the same ops, when the input has them. */
  engine?: Record<string, number>;
  /** Engine step entries read, and resources they merge into. */
  rawSteps?: number;
  resources: number;
  /** True when plan and engine agree on every change op; null when there is nothing to compare. */
  matches: boolean | null;
  /** Why they cannot be compared, or how they differ. */
  explanation?: string;
}

/** Counts change ops as the engine does: one per logical step (an import-replacement is a replace). */
function countPlan(steps: { op: string; refreshFound?: string }[], refreshResults: boolean) {
  const counts: Record<string, number> = {};
  for (const s of steps) {
    let op = s.op === "import-replacement" ? "replace" : s.op;
    if (refreshResults && s.op === "refresh" && s.refreshFound) {
      op = s.refreshFound === "deleted" ? "delete" : "update";
    }
    if ((COUNTED_CHANGE_OPS as readonly string[]).includes(op)) {
      counts[op] = (counts[op] ?? 0) + 1;
    }
  }
  return counts;
}

function sameCounts(a: Record<string, number>, b: Record<string, number>): boolean {
  return COUNTED_CHANGE_OPS.every((op) => (a[op] ?? 0) === (b[op] ?? 0));
}

function fmtCounts(c: Record<string, number>): string {
  const parts = COUNTED_CHANGE_OPS.filter((op) => (c[op] ?? 0) > 0).map((op) => `${c[op]} ${op}`);
  return parts.length > 0 ? parts.join(", ") : "no changes";
}

export function compareCounts(input: PlanInput): PlanCounts {
  const plan = countPlan(input.steps, false);
  const base = { plan, rawSteps: input.rawSteps, resources: input.steps.length };
  if (input.kind === "synth-pair") {
    return { ...base, matches: null, explanation: "a synth diff has no engine summary to compare" };
  }
  if (!input.engineCounts) {
    return {
      ...base,
      matches: null,
      explanation: "the input has no engine summary (changeSummary/resourceChanges) to compare",
    };
  }
  const engine = Object.fromEntries(
    COUNTED_CHANGE_OPS.filter((op) => input.engineCounts![op] !== undefined).map((op) => [
      op,
      input.engineCounts![op],
    ]),
  );
  if (sameCounts(plan, engine)) {
    return { ...base, engine, matches: true };
  }
  // `pulumi refresh` counts what each refresh found (delete, update) instead of the refresh.
  const refreshed = countPlan(input.steps, true);
  if (sameCounts(refreshed, engine)) {
    return {
      ...base,
      plan: refreshed,
      engine,
      matches: true,
      explanation: "a refresh: the engine counts what each refresh found",
    };
  }
  return {
    ...base,
    engine,
    matches: false,
    explanation: `the engine counts ${fmtCounts(engine)} but the input's steps give ${fmtCounts(plan)}: steps are missing from the input (filtered or cut off)`,
  };
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
  const incomplete = [...(input.incomplete ?? [])];
  const counts = compareCounts(input);
  if (counts.matches === false) {
    incomplete.push(`counts differ: ${counts.explanation}`);
  }
  const foreign = unique(steps.filter((s) => s.service === FOREIGN_SERVICE).map((s) => s.project));
  if (foreign.length > 0) {
    notes.push(
      `${steps.filter((s) => s.service === FOREIGN_SERVICE).length} step(s) belong to project(s) ${foreign.join(", ")}, not ${HASTACK_PROJECT}: classified, but mapped to no ${HASTACK_PROJECT} service ("${FOREIGN_SERVICE}")`,
    );
  }
  const stacks = unique(steps.map((s) => s.stack).filter((x): x is string => Boolean(x)));
  if (stacks.length > 1) {
    notes.push(`the input holds steps of ${stacks.length} stacks: ${stacks.join(", ")}`);
  }
  for (const s of steps) {
    if (s.refreshFound === "deleted") {
      notes.push(`${s.urn}: a refresh found it deleted in the cloud, outside Pulumi`);
    } else if (s.refreshFound === "changed") {
      notes.push(`${s.urn}: a refresh found it changed in the cloud (drift)`);
    }
  }
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
  const order = [...SERVICES, "dns", "monitoring", "stack", FOREIGN_SERVICE];
  const seen = unique(steps.map((s) => s.service)).sort(
    (a, b) => order.indexOf(a) - order.indexOf(b),
  );
  // A refresh that found nothing changes nothing: it is counted, not listed per service.
  const changes = (s: ClassifiedStep) =>
    s.op !== "same" && (s.op !== "refresh" || s.refreshFound !== undefined);
  for (const svc of seen) {
    const own = steps.filter((s) => s.service === svc && changes(s));
    if (own.length === 0) {
      continue;
    }
    const cls = worstOf(own.map((s) => s.class));
    const downs = own.map((s) => s.downtimeSeconds);
    const open = own.filter((s) => s.downtimeSeconds === null && s.class !== "none");
    services.push({
      service: svc,
      class: cls,
      downtimeSeconds: downs.includes(null) ? null : Math.max(0, ...(downs as number[])),
      until:
        open.length === 0
          ? undefined
          : open.some((s) => s.until === UNTIL_RESTORED)
            ? UNTIL_RESTORED
            : UNTIL_UNDONE,
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
    incomplete,
    counts,
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
  for (const p of parts) {
    // Date() rolls 30 February over to 2 March: check the calendar (and the clock) first.
    const [y, mo, d, h, mi] = p.split(/[-T:]/).map(Number);
    const daysInMonth = new Date(Date.UTC(y, mo, 0)).getUTCDate();
    if (mo < 1 || mo > 12 || d < 1 || d > daysInMonth || h > 23 || mi > 59) {
      throw new ImpactInputError(
        `--window: ${p} is not a calendar date and time${mo >= 1 && mo <= 12 && d > daysInMonth ? ` (month ${mo} of ${y} has ${daysInMonth} days)` : ""}`,
      );
    }
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
  /**
   * 0 nothing worse than a brief interruption (or all planned and allowed); 3 blocked by an
   * outage or data risk; 4 the plan is incomplete (failed, cancelled or corrupt run, a log with no
   * summary, counts that differ from the engine's) — never OK, whatever --window/--allow say.
   */
  code: 0 | 3 | 4;
  /** Why it blocks, one line each; empty when code is 0. */
  blocking: string[];
  /** Why the plan is incomplete (code 4); empty otherwise. */
  incomplete: string[];
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
 * --allow (its downtime is open-ended: until restored from backup, so no window fits it and
 * only --allow accepts it). An outage with no end (a delete nothing replaces) never fits a
 * window. 4 overrides both: a plan read from an incomplete run cannot be judged at all.
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
    // The longest finite interruption per service must fit; open-ended ones were judged above
    // (an outage with no end blocks, a data risk needs --allow).
    for (const svc of plan.services) {
      const finite = plan.steps
        .filter((s) => s.service === svc.service && CLASS_RANK[s.class] >= CLASS_RANK.outage)
        .map((s) => s.downtimeSeconds)
        .filter((d): d is number => d !== null);
      const longest = Math.max(0, ...finite);
      if (longest > windowSeconds) {
        blocking.push(
          `${svc.service}: estimated downtime ${fmtDuration(longest)} does not fit the ${fmtDuration(windowSeconds)} window`,
        );
      }
    }
  }
  const riskUrns = new Set(plan.steps.filter((s) => s.class === "data-risk").map((s) => s.urn));
  const incomplete = plan.incomplete ?? [];
  return {
    code: incomplete.length > 0 ? 4 : blocking.length > 0 ? 3 : 0,
    blocking,
    incomplete,
    planned,
    allowed,
    unusedAllows: [...allow].filter((u) => !riskUrns.has(u)),
  };
}

// ---------------------------------------------------------------------------------------------
