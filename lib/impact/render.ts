// The operator's view of a plan: per-service table, the impactful steps, notes and the verdict.
import { CLASS_RANK, ImpactClass, InputKind } from "./model";
import type { ImpactPlan, Verdict } from "./plan";

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

/** A step's or service's downtime as the report prints it. */
function fmtDown(x: { downtimeSeconds: number | null; until?: string }): string {
  return x.downtimeSeconds === null && x.until ? x.until : fmtDuration(x.downtimeSeconds);
}

/**
 * The operator's view: per-service table, the impactful steps, every other step (listed, or
 * counted when unchanged), the engine's counts beside the plan's, notes and the verdict.
 */
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
  if (plan.incomplete.length > 0) {
    lines.push(
      "INCOMPLETE: the run this input comes from did not finish cleanly; the steps below are only what it got to.",
    );
  }
  lines.push("");
  if (plan.services.length === 0) {
    lines.push(
      plan.incomplete.length > 0 ? "No changes read (the plan is incomplete)." : "No changes.",
    );
  } else {
    const rows = [["SERVICE", "IMPACT", "DOWNTIME", "STEPS", "FROM"]];
    for (const s of plan.services) {
      rows.push([s.service, CLASS_LABEL[s.class], fmtDown(s), String(s.steps), s.params.source]);
    }
    lines.push(table(rows));
    const impactful = plan.steps.filter((s) => s.class !== "none");
    if (impactful.length > 0) {
      lines.push("", "Steps with impact:");
      const rows2 = [["CLASS", "OP", "SERVICE", "TYPE", "NAME", "DOWNTIME", "WHY"]];
      for (const s of impactful.sort((a, b) => CLASS_RANK[b.class] - CLASS_RANK[a.class])) {
        rows2.push([CLASS_LABEL[s.class], s.op, s.service, s.type, s.name, fmtDown(s), s.reason]);
      }
      lines.push(table(rows2));
    }
  }
  // Every step of the input appears: listed when it changes something, else counted.
  const others = plan.steps.filter(
    (s) => s.class === "none" && s.op !== "same" && (s.op !== "refresh" || s.refreshFound),
  );
  if (others.length > 0) {
    lines.push("", "Other steps (no impact):");
    const rows3 = [["OP", "ENGINE STEPS", "SERVICE", "TYPE", "NAME", "WHY"]];
    for (const s of others) {
      rows3.push([s.op, (s.engineOps ?? [s.op]).join(","), s.service, s.type, s.name, s.reason]);
    }
    lines.push(table(rows3));
  }
  const unchanged =
    plan.steps.length - plan.steps.filter((s) => s.class !== "none").length - others.length;
  const raw =
    plan.counts.rawSteps !== undefined ? `${plan.counts.rawSteps} engine step(s) over ` : "";
  lines.push(
    "",
    `Steps: ${raw}${plan.steps.length} resource(s): ${plan.steps.length - unchanged} listed above, ${unchanged} unchanged or only refreshed.`,
  );
  const c = plan.counts;
  const fmt = (x: Record<string, number>) =>
    Object.entries(x)
      .filter(([, n]) => n > 0)
      .map(([op, n]) => `${n} ${op}`)
      .join(", ") || "no changes";
  if (c.matches === true) {
    lines.push(
      `Counts: ${fmt(c.plan)} — equal to the engine's summary${c.explanation ? ` (${c.explanation})` : ""}.`,
    );
  } else if (c.matches === false) {
    lines.push(`Counts DIFFER: ${c.explanation}.`);
  } else {
    lines.push(`Counts: ${fmt(c.plan)} — not compared: ${c.explanation}.`);
  }
  if (plan.notes.length > 0) {
    lines.push("", "Notes:", ...plan.notes.map((n) => `  - ${n}`));
  }
  lines.push("");
  if (verdict.code === 4) {
    lines.push(
      "Verdict: INCOMPLETE PLAN (exit 4) — the plan cannot be judged; run the preview again until it succeeds",
      ...verdict.incomplete.map((b) => `  - ${b}`),
      ...verdict.blocking.map((b) => `  - also blocking: ${b}`),
    );
  } else if (verdict.code === 0) {
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
