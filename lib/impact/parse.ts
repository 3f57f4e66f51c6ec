// Reading what the engine prints: `pulumi preview --json` (display.PreviewDigest), engine event
// logs (apitype.EngineEvent as JSON lines, a {"events": [...]} batch, or the bare JSON array of
// `pulumi stack history events --output json`) and two synth files (synth-diff.ts), into one
// PlanInput. See docs/operations-impact.md.
import {
  ImpactInputError,
  KNOWN_OPS,
  PlanInput,
  PlanStep,
  REPLACEMENT_OPS,
  StackOutputs,
  asOutputs,
  isRecord,
  makeStep,
  parseUrn,
  recordOrUndefined,
  stringOrUndefined,
  stripColor,
  unique,
} from "./model";
import { jsonEqual } from "./replace-forcing";
import { isDeployment, planInputFromSynth } from "./synth-diff";

// Input detection and parsing

export interface ParseOptions {
  /**
   * Compare two synth files of differently named stacks resource by resource (the stack part of
   * each URN is ignored). Defaults to false: two stacks are refused with a hint.
   */
  acrossStacks?: boolean;
  /** The project whose URNs map to services. Defaults to HASTACK_PROJECT. */
  project?: string;
}

/** Reads one or two input texts (already loaded) and returns the plan input. */
export function parseInputs(
  inputs: { path: string; text: string }[],
  opts: ParseOptions = {},
): PlanInput {
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
    return planInputFromSynth(before, after, inputs[0].path, inputs[1].path, opts);
  }
  const { path, text } = inputs[0];
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    return parseEventLog(text, path, opts);
  }
  // `pulumi stack history events --output json` prints a bare array of events.
  if (Array.isArray(doc)) {
    if (doc.length === 0) {
      throw new ImpactInputError(`${path}: an empty list of events`);
    }
    return eventsToPlanInput(doc, path, (i) => `${path}: [${i}]`, opts);
  }
  if (isRecord(doc) && Array.isArray(doc.events)) {
    return eventsToPlanInput(doc.events, path, (i) => `${path}: events[${i}]`, opts);
  }
  if (isRecord(doc) && isEngineEvent(doc)) {
    return eventsToPlanInput([doc], path, () => path, opts);
  }
  if (isDeployment(doc)) {
    throw new ImpactInputError(
      `${path}: a synth deployment alone says nothing about a change; give two (before after)`,
    );
  }
  if (isRecord(doc) && ("steps" in doc || "changeSummary" in doc)) {
    return parsePreviewDigest(doc, path, opts);
  }
  throw new ImpactInputError(
    `${path}: not a recognised input: expected \`pulumi preview --json\` output (an object with "steps"), ` +
      "an engine event log (JSON lines with resourcePreEvent …, or the JSON array of " +
      "`pulumi stack history events --output json`), or two synth deployments",
  );
}

function parseJsonDocument(i: { path: string; text: string }): unknown {
  try {
    return JSON.parse(i.text);
  } catch (e) {
    throw new ImpactInputError(`${i.path}: not valid JSON (${(e as Error).message})`);
  }
}

/** Property paths whose detailed diff kind ends in -replace (add-replace, update-replace, …). */
function replaceKeysOf(detailed: unknown): string[] {
  return isRecord(detailed)
    ? Object.entries(detailed)
        .filter(([, d]) => isRecord(d) && /-replace$/.test(String(d.kind ?? d.diffKind ?? "")))
        .map(([k]) => k)
    : [];
}

/** Counts per op as the engine reports them (`changeSummary`, `resourceChanges`). */
function countsOf(v: unknown, where: string): Record<string, number> | undefined {
  if (v === undefined || v === null) {
    return undefined;
  }
  if (!isRecord(v) || !Object.values(v).every((n) => Number.isInteger(n))) {
    throw new ImpactInputError(`${where}: must map step ops to counts`);
  }
  return v as Record<string, number>;
}

/**
 * `pulumi preview --json`: a PreviewDigest (pkg/display/json.go). The CLI builds it from the
 * resourcePreEvents, so a refresh step holds no finding here (event logs do), and the digest
 * gets its changeSummary only from the engine's summary event: without one the preview did not
 * finish.
 */
export function parsePreviewDigest(
  doc: Record<string, unknown>,
  path: string,
  opts: ParseOptions = {},
): PlanInput {
  const steps = doc.steps ?? [];
  if (!Array.isArray(steps)) {
    throw new ImpactInputError(`${path}: "steps" must be an array of preview steps`);
  }
  const config = stringMap(doc.config, `${path}: "config"`);
  const notes: string[] = [];
  const incomplete: string[] = [];
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
    out.push(
      makeStep({
        op,
        urn,
        parsed,
        project: opts.project,
        ...stateFields(oldState, newState),
        replaceReasons: unique([
          ...stringList(raw.replaceReasons, `${where}.replaceReasons`),
          ...replaceKeysOf(raw.detailedDiff),
        ]),
        diffReasons: unique([...stringList(raw.diffReasons, `${where}.diffReasons`), ...detailed]),
      }),
    );
  });
  const diagnostics = Array.isArray(doc.diagnostics) ? doc.diagnostics : [];
  for (const d of diagnostics) {
    if (isRecord(d) && d.severity === "error") {
      const msg = stripColor(String(d.message ?? "")).trim();
      notes.push(`preview reported an error: ${msg}`);
      incomplete.push(`the preview reported an error: ${msg}`);
    }
  }
  if (doc.maybeCorrupt === true) {
    incomplete.push("the engine marked the run maybeCorrupt: resources may be in an unknown state");
  }
  const engineCounts = countsOf(doc.changeSummary, `${path}: "changeSummary"`);
  if (engineCounts === undefined) {
    incomplete.push(
      'no "changeSummary": the preview did not reach its summary (cancelled or failed), so its step list is incomplete',
    );
  }
  return {
    kind: "preview-json",
    steps: mergeByUrn(out),
    config,
    outputsBefore,
    outputsAfter,
    notes,
    incomplete,
    engineCounts,
    rawSteps: steps.length,
  };
}

/**
 * One step per URN: `--show-replacement-steps` lists create-replacement, replace and
 * delete-replaced of one resource separately; `--refresh` lists a refresh before the real step.
 * The effective op follows effectiveOp; the details (inputs, diffs) come from the step that
 * decides it, never from a refresh.
 */
function mergeByUrn(steps: PlanStep[]): PlanStep[] {
  const byUrn = new Map<string, PlanStep[]>();
  for (const s of steps) {
    byUrn.set(s.urn, [...(byUrn.get(s.urn) ?? []), s]);
  }
  return [...byUrn.values()].map((group) => {
    const ops = group.map((s) => s.op);
    const op = effectiveOp(ops);
    const real = group.filter((s) => s.op !== "refresh");
    const source = real.length > 0 ? real : group;
    const main = mainStepOf(source, op);
    return {
      ...main,
      op,
      engineOps: ops,
      oldInputs: main.oldInputs ?? source.find((s) => s.oldInputs)?.oldInputs,
      newInputs: main.newInputs ?? source.find((s) => s.newInputs)?.newInputs,
      replaceReasons: unique(source.flatMap((s) => s.replaceReasons)),
      diffReasons: unique(source.flatMap((s) => s.diffReasons)),
      protect: group.some((s) => s.protect),
      retainOnDelete: group.some((s) => s.retainOnDelete),
    };
  });
}

/** The step whose details describe the effective op: the logical replace, else the last one. */
function mainStepOf<T extends { op: string }>(steps: T[], op: string): T {
  if (op === "replace" || op === "import-replacement") {
    return (
      steps.find((s) => s.op === "replace") ??
      steps.find((s) => s.op === "create-replacement" || s.op === "import-replacement") ??
      steps[steps.length - 1]
    );
  }
  return steps[steps.length - 1];
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

/**
 * An apitype.EngineEvent: a sequence or timestamp and one event field. `pulumi stack history
 * events` omits `sequence` (the service does not expose it), so either is enough.
 */
function isEngineEvent(v: Record<string, unknown>): boolean {
  return (
    (typeof v.sequence === "number" || typeof v.timestamp === "number") &&
    EVENT_KEYS.some((k) => k in v)
  );
}

/** JSON lines of apitype.EngineEvent (`pulumi up|preview --event-log FILE`). */
export function parseEventLog(text: string, path: string, opts: ParseOptions = {}): PlanInput {
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
  return eventsToPlanInput(events, path, (i) => `${path}:${lineNumbers[i]}`, opts);
}

/** One engine step of a URN as the events tell it: the pre event, then outputs or a failure. */
interface EngineStep {
  op: string;
  pre?: Record<string, unknown>;
  outputs?: Record<string, unknown>;
  failed: boolean;
  /** For a refresh: what it found (resOutputsEvent with `new: null` or result op delete). */
  found?: "deleted" | "changed";
}

function eventsToPlanInput(
  events: unknown[],
  path: string,
  where: (i: number) => string,
  opts: ParseOptions,
): PlanInput {
  const byUrn = new Map<string, EngineStep[]>();
  let config: Record<string, string> = {};
  const notes: string[] = [];
  const errors: string[] = [];
  let summary: Record<string, unknown> | undefined;
  let rawSteps = 0;
  let sawResourceEvent = false;
  events.forEach((ev, i) => {
    if (!isRecord(ev) || !isEngineEvent(ev)) {
      throw new ImpactInputError(
        `${where(i)}: not an engine event (expected {"sequence" or "timestamp", and one of resourcePreEvent, preludeEvent, summaryEvent, …})`,
      );
    }
    if (isRecord(ev.preludeEvent)) {
      config = stringMap(ev.preludeEvent.config, `${where(i)}: preludeEvent.config`);
    }
    if (isRecord(ev.summaryEvent)) {
      summary = ev.summaryEvent;
    }
    const diag = ev.diagnosticEvent;
    if (isRecord(diag) && diag.severity === "error" && diag.ephemeral !== true) {
      const msg = stripColor(`${String(diag.prefix ?? "")}${String(diag.message ?? "")}`).trim();
      errors.push(diag.urn ? `${String(diag.urn)}: ${msg}` : msg);
    }
    if (isRecord(ev.errorEvent)) {
      errors.push(`engine error: ${stripColor(String(ev.errorEvent.error ?? "")).trim()}`);
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
      const list = byUrn.get(urn) ?? [];
      byUrn.set(urn, list);
      // The step this event closes: the URN's latest step still open.
      const open = [...list].reverse().find((s) => !s.outputs && !s.failed);
      if (key === "resourcePreEvent") {
        rawSteps++;
        list.push({ op, pre: meta, failed: false });
      } else if (key === "resOutputsEvent") {
        if (open && (open.op === op || open.op === "refresh")) {
          open.outputs = meta;
          if (open.op === "refresh") {
            // `pulumi refresh` reports the refresh's result op (delete/update/same); a refresh
            // inside preview/up keeps op "refresh" and says "gone" with `new: null`.
            if (op === "delete" || meta.new === null || meta.new === undefined) {
              open.found = "deleted";
            } else if (
              op === "update" ||
              !jsonEqual(recordOrUndefined(meta.old)?.outputs, recordOrUndefined(meta.new)?.outputs)
            ) {
              open.found = "changed";
            }
          }
        } else {
          // A log that starts mid-run: the outputs are all we know of this step.
          rawSteps++;
          list.push({ op, outputs: meta, failed: false });
        }
      } else if (open && open.op === op) {
        open.failed = true;
      } else {
        rawSteps++;
        list.push({ op, pre: meta, failed: true });
      }
    }
  });
  if (!sawResourceEvent && !summary) {
    throw new ImpactInputError(
      `${path}: an engine event log without any resource or summary event — not a preview or update log`,
    );
  }
  const incomplete: string[] = [];
  for (const e of errors) {
    notes.push(`engine error: ${e}`);
  }
  if (errors.length > 0) {
    incomplete.push(`the engine reported ${errors.length} error(s): the run failed`);
  }
  const failedSteps = [...byUrn.values()].flat().filter((s) => s.failed).length;
  if (failedSteps > 0) {
    incomplete.push(`${failedSteps} step(s) failed (resOpFailedEvent)`);
  }
  let engineCounts: Record<string, number> | undefined;
  if (!summary) {
    incomplete.push(
      "no summary event: the log is cut off or the run was cancelled, so its step list is incomplete",
    );
  } else {
    const result = summary.result;
    if (typeof result === "string" && result !== "" && result !== "succeeded") {
      incomplete.push(`the engine's summary says result "${result}"`);
    }
    if (summary.maybeCorrupt === true) {
      incomplete.push(
        "the engine marked the run maybeCorrupt: resources may be in an unknown state",
      );
    }
    engineCounts = countsOf(summary.resourceChanges, `${path}: summaryEvent.resourceChanges`);
  }
  const steps: PlanStep[] = [];
  let outputsBefore: StackOutputs | undefined;
  let outputsAfter: StackOutputs | undefined;
  for (const [urn, list] of byUrn) {
    const ops = list.map((s) => s.op);
    const op = effectiveOp(ops);
    const real = list.filter((s) => s.op !== "refresh");
    const source = real.length > 0 ? real : list;
    const main = mainStepOf(source, op);
    const m = main.pre ?? main.outputs ?? {};
    const oldState =
      recordOrUndefined(m.old) ?? source.map((s) => recordOrUndefined(s.pre?.old)).find(Boolean);
    // What the step leads to: its outputs event when it finished, else what it intended.
    const newState = recordOrUndefined(main.outputs?.new) ?? recordOrUndefined(m.new);
    const parsed = parseUrn(urn);
    if (parsed.type === "pulumi:pulumi:Stack") {
      outputsBefore = asOutputs(oldState?.outputs) ?? outputsBefore;
      outputsAfter = asOutputs(newState?.outputs) ?? outputsAfter;
    }
    const metas = source.map((s) => s.pre ?? s.outputs ?? {});
    const found = list.some((s) => s.found === "deleted")
      ? "deleted"
      : list.some((s) => s.found === "changed")
        ? "changed"
        : undefined;
    steps.push({
      ...makeStep({
        op,
        urn,
        parsed,
        project: opts.project,
        ...stateFields(oldState, newState),
        replaceReasons: unique(
          metas.flatMap((x) => [
            ...stringList(x.keys, `${urn} keys`),
            ...replaceKeysOf(x.detailedDiff),
          ]),
        ),
        diffReasons: unique(
          metas.flatMap((x) => [
            ...stringList(x.diffs, `${urn} diffs`),
            ...Object.keys(recordOrUndefined(x.detailedDiff) ?? {}),
          ]),
        ),
        parentUrn: stringOrUndefined(oldState?.parent) ?? stringOrUndefined(newState?.parent),
      }),
      engineOps: ops,
      refreshFound: found,
      failed: list.some((s) => s.failed) || undefined,
    });
  }
  return {
    kind: "event-log",
    steps,
    config,
    outputsBefore,
    outputsAfter,
    notes,
    incomplete,
    engineCounts,
    rawSteps,
  };
}

/**
 * The effective op of one URN from the ops of its steps, in order, following the engine's step
 * semantics: refreshes only read the cloud, so what counts is the last other step. The steps
 * of one replacement (create-replacement, replace, delete-replaced) are one "replace"; with
 * import-replacement (and discard-replaced: the old resource leaves the state, not the cloud)
 * they are an "import-replacement". A URN that was only refreshed (or refreshed and left the
 * same) is "refresh".
 */
export function effectiveOp(ops: string[]): string {
  const real = ops.filter((o) => o !== "refresh");
  if (real.some((o) => REPLACEMENT_OPS.has(o))) {
    return real.includes("import-replacement") ? "import-replacement" : "replace";
  }
  const last = real[real.length - 1];
  if ((last === undefined || last === "same") && ops.includes("refresh")) {
    return "refresh";
  }
  return last ?? "same";
}

/** Former name of effectiveOp, kept for callers of the public API. */
export const logicalOp = effectiveOp;

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

/** What a step's old and new resource states say about it (either may be missing). */
function stateFields(
  oldState: Record<string, unknown> | undefined,
  newState: Record<string, unknown> | undefined,
): Pick<PlanStep, "id" | "oldInputs" | "newInputs" | "protect" | "retainOnDelete"> {
  return {
    id: stringOrUndefined(oldState?.id) ?? stringOrUndefined(newState?.id),
    oldInputs: recordOrUndefined(oldState?.inputs),
    newInputs: recordOrUndefined(newState?.inputs),
    protect: Boolean(oldState?.protect ?? newState?.protect),
    retainOnDelete: Boolean(oldState?.retainOnDelete ?? newState?.retainOnDelete),
  };
}
