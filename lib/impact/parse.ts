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
  unique,
} from "./model";
import { isDeployment, planInputFromSynth } from "./synth-diff";

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
