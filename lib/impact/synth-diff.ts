// Two synth files (or `pulumi stack export`s) to a PlanInput: the steps between them, replacement
// decided by the replace-forcing table, cascaded through ids that replaced resources change.
import type { Deployment, SynthResource } from "../synth/offline-synth";
import type { ParseOptions } from "./parse";
import {
  ImpactInputError,
  PlanInput,
  PlanStep,
  StackOutputs,
  asOutputs,
  isRecord,
  makeStep,
  parseUrn,
  stringOrUndefined,
  unique,
} from "./model";
import {
  REPLACE_FORCING,
  applyIgnoreChanges,
  changedKeys,
  replaceReasonsFor,
} from "./replace-forcing";

// One deployment type for synth files and stack exports: offline-synth's. A `pulumi stack export`
// leaves out what is false or empty (custom, protect, ignoreChanges, name), so files are read
// loosely (isDeployment) and normalised into that type (normalizeDeployment) before diffing.
export type { Deployment, SynthResource } from "../synth/offline-synth";

/** The loose shape shared by synth files and `pulumi stack export`: `{version, deployment: {resources}}`. */
export function isDeployment(doc: unknown): doc is Deployment {
  return (
    isRecord(doc) &&
    typeof doc.version === "number" &&
    isRecord(doc.deployment) &&
    Array.isArray((doc.deployment as Record<string, unknown>).resources)
  );
}

/** A synth file or stack export as the one Deployment type, every optional field filled. */
export function normalizeDeployment(d: Deployment, path = "deployment"): Deployment {
  const resources = d.deployment.resources.map((r: unknown, i: number): SynthResource => {
    if (!isRecord(r) || typeof r.urn !== "string" || typeof r.type !== "string") {
      throw new ImpactInputError(`${path}: deployment.resources[${i}] needs "urn" and "type"`);
    }
    const x = r as Partial<SynthResource> & { urn: string; type: string };
    return {
      ...x,
      name: typeof x.name === "string" ? x.name : parseUrn(x.urn).name,
      custom: x.custom === true,
      protect: x.protect === true,
      retainOnDelete: x.retainOnDelete === true,
      ignoreChanges: Array.isArray(x.ignoreChanges) ? x.ignoreChanges : [],
      inputs: isRecord(x.inputs) ? x.inputs : {},
    };
  });
  const manifest = isRecord(d.deployment.manifest)
    ? d.deployment.manifest
    : { time: "", magic: "", version: "" };
  return { version: 3, deployment: { manifest, resources } };
}

/** The stack a deployment belongs to, from its URNs (undefined when it holds none). */
export function stackOfDeployment(d: Deployment): string | undefined {
  const r =
    d.deployment.resources.find((x) => x.type === "pulumi:pulumi:Stack") ??
    d.deployment.resources[0];
  return r ? parseUrn(r.urn).stack : undefined;
}

/** `after` with its URNs (and the root stack's name) moved to stack `to`. */
function renameStack(d: Deployment, from: string, to: string): Deployment {
  let text = JSON.stringify(d).split(`urn:pulumi:${from}::`).join(`urn:pulumi:${to}::`);
  // The root stack resource is named <project>-<stack>.
  for (const r of d.deployment.resources.filter((x) => x.type === "pulumi:pulumi:Stack")) {
    const name = parseUrn(r.urn).name;
    if (name.endsWith(`-${from}`)) {
      const renamed = `${name.slice(0, -from.length)}${to}`;
      text = text.split(`pulumi:pulumi:Stack::${name}"`).join(`pulumi:pulumi:Stack::${renamed}"`);
    }
  }
  return JSON.parse(text) as Deployment;
}

export function deploymentOutputs(d: Deployment): StackOutputs | undefined {
  const stack = d.deployment.resources.find((r) => r.type === "pulumi:pulumi:Stack");
  return asOutputs(stack?.outputs);
}

/**
 * The steps between two synth deployments, replacement decided by REPLACE_FORCING. Two different
 * stacks are refused (every URN differs, so everything would show as deleted and created) unless
 * `acrossStacks` asks to compare them resource by resource.
 */
export function planInputFromSynth(
  beforeDoc: Deployment,
  afterDoc: Deployment,
  beforePath = "before",
  afterPath = "after",
  opts: ParseOptions = {},
): PlanInput {
  const before = normalizeDeployment(beforeDoc, beforePath);
  let after = normalizeDeployment(afterDoc, afterPath);
  const sb = stackOfDeployment(before);
  const sa = stackOfDeployment(after);
  const notes: string[] = [];
  if (sb !== undefined && sa !== undefined && sb !== sa) {
    if (!opts.acrossStacks) {
      throw new ImpactInputError(
        `${beforePath} is stack "${sb}" but ${afterPath} is stack "${sa}": two different stacks share no URN, ` +
          "so every resource would show as deleted and created. To compare two versions of one stack, " +
          `synthesize both under its name: npm run synth -- --stack ${sb} --stack-file FILE --out after.json ` +
          "(FILE holds the changed config). To compare the two stacks resource by resource anyway, add --across-stacks.",
      );
    }
    after = renameStack(after, sa, sb);
    notes.push(
      `--across-stacks: ${afterPath} (stack "${sa}") compared with ${beforePath} (stack "${sb}") resource by resource`,
    );
  }
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
        project: opts.project,
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
    notes,
    context,
    incomplete: [],
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
