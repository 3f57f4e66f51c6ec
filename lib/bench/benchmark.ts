// What the components cost and how the program scales, measured under the same mock runtime the
// offline synth uses. Each case runs in a fresh Node process (scripts/bench-worker.ts) so peak
// memory is per case and one case's warm JIT never flatters another.
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import { Dns } from "../../components/dns";
import { Role, ServerPair } from "../../components/server-pair";
import {
  Deployment,
  diffDeployments,
  synthesizeEdited,
  StackConfigDoc,
} from "../synth/offline-synth";
import { PACKAGE_ROOT } from "../package-root";

/** One measured run of a case. */
export interface Sample {
  /** Seconds spent in the synth itself (modules already loaded). */
  seconds: number;
  /** Seconds from process start to the end of the synth. */
  processSeconds: number;
  /** Peak resident memory of the process, MiB. */
  peakMB: number;
  resources: number;
}

/** The median of a non-empty list. */
export function median(values: number[]): number {
  if (values.length === 0) {
    throw new Error("median of no values");
  }
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/**
 * The flat baseline: the very resources a synth declared (same classes, same inputs), created
 * directly at top level — no components. Inputs that held another resource's id are wired to
 * that resource's `id` output again, so the baseline waits on the same dependencies a
 * hand-written flat program would.
 */
export function flatBaselineProgram(d: Deployment): () => void {
  const custom = d.deployment.resources.filter((r) => r.custom);
  return () => {
    const byId = new Map<string, pulumi.CustomResource>();
    const rewire = (v: unknown): unknown => {
      if (typeof v === "string") {
        const target = byId.get(v);
        return target ? target.id : v;
      }
      if (Array.isArray(v)) {
        return v.map(rewire);
      }
      if (v !== null && typeof v === "object") {
        return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, rewire(x)]));
      }
      return v;
    };
    for (const r of custom) {
      const Ctor = resourceClass(r.type);
      const res = new Ctor(r.name, rewire(r.inputs) as Record<string, unknown>);
      if (r.id) {
        byId.set(r.id, res);
      }
    }
  };
}

type ResourceCtor = new (name: string, args: Record<string, unknown>) => pulumi.CustomResource;

/** `aws:ec2/instance:Instance` → the `aws.ec2.Instance` class of the installed SDK. */
export function resourceClass(token: string): ResourceCtor {
  const [pkg, mod, cls] = token.split(":");
  if (pkg === "pulumi") {
    return class extends pulumi.CustomResource {
      constructor(name: string, args: Record<string, unknown>) {
        super(token, name, args);
      }
    };
  }
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const sdk = require(`@pulumi/${pkg}`) as Record<string, unknown>;
  const moduleName = mod.split("/")[0];
  const ns = (moduleName === "index" ? sdk : (sdk[moduleName] as Record<string, unknown>)) ?? {};
  const ctor = ns[cls] as ResourceCtor | undefined;
  if (!ctor) {
    throw new Error(`no resource class for ${token} in @pulumi/${pkg}`);
  }
  return ctor;
}

/** A generated stack with `n` service pairs (dns switchover, like mail), sharing one zone. */
export function generatedPairsProgram(n: number): () => Record<string, unknown> {
  return () => {
    const dns = new Dns("dns", { domain: "bench.example", zoneName: "bench.example" });
    const summaries: Record<string, unknown> = {};
    for (let i = 0; i < n; i++) {
      const service = `svc${i}`;
      const parts = { hostname: service, fqdn: `${service}.bench.example` };
      const pair = new ServerPair(service, {
        service,
        active: i % 2 === 0 ? Role.Primary : Role.Standby,
        switchover: "dns",
        vpcId: "vpc-0123456789abcdef0",
        subnets: {
          primary: { id: "subnet-aaaaaaaa", az: "ap-southeast-3a" },
          standby: { id: "subnet-bbbbbbbb", az: "ap-southeast-3b" },
        },
        ami: "ami-0123456789abcdef0",
        instanceType: "t3.small",
        dataVolumeGb: 50,
        cloudConfig: { primary: parts, standby: parts },
        servicePorts: [{ protocol: "tcp", fromPort: 25, description: "SMTP" }],
        adminCidrs: ["203.0.113.10/32"],
        healthCheck: { type: "TCP", port: 25, failureThreshold: 3 },
        dns,
        serviceName: `${service}.bench.example`,
        serverNames: {
          primary: `${service}-1.bench.example`,
          standby: `${service}-2.bench.example`,
        },
      });
      summaries[service] = pair.summary;
    }
    return { services: summaries };
  };
}

/** How many resources one reviewed step changes, and which kinds. */
export interface BlastRadius {
  step: string;
  changed: number;
  types: string[];
}

/**
 * Every switch the stack offers, against the stack file as it is: flipping each service's
 * `active`, and each mail migration step 1→2 … 8→9 (each from the state the step before left).
 */
export async function measureBlastRadius(
  projectDir: string,
  stack = "prod",
): Promise<BlastRadius[]> {
  const synth = (edit: (c: StackConfigDoc) => void, previous?: Deployment): Promise<Deployment> =>
    synthesizeEdited({ projectDir, stack, edit, previous });
  const base = await synth(() => undefined);
  const services = Object.keys(
    ((base.deployment.resources[0].outputs ?? {}) as { services?: Record<string, unknown> })
      .services ?? {},
  );
  const rows: BlastRadius[] = [];
  const row = (step: string, before: Deployment, after: Deployment): void => {
    const changes = diffDeployments(before, after);
    rows.push({
      step,
      changed: changes.length,
      types: [...new Set(changes.map((c) => `${c.op} ${c.type.split(":").pop()}`))].sort(),
    });
  };
  for (const service of [...services, "nas"].filter((s, i, all) => all.indexOf(s) === i)) {
    const key = `hastack:${service}`;
    const flipped = await synth((c) => {
      if (c[key]) {
        c[key].active = c[key].active === "primary" ? "standby" : "primary";
      }
    });
    row(`${service}: flip active`, base, flipped);
  }
  // The move starts at phase 1: phase 0 with an old server is refused (issue 18).
  let previous = await synth((c) => setMailPhase(c, 1));
  for (let phase = 2; phase <= 9; phase++) {
    const next = await synth((c) => setMailPhase(c, phase), previous);
    row(`mail: migration phase ${phase - 1} → ${phase}`, previous, next);
    previous = next;
  }
  return rows;
}

function setMailPhase(c: StackConfigDoc, phase: number): void {
  c["hastack:mail"].migration = { ...(c["hastack:mail"].migration ?? {}), phase };
}

/** The summary line `npm run bench` ends with. */
export interface BenchSummary {
  prodSeconds: number;
  baselineRatio: number;
  /** Spread of the per-round ratios prod / baseline (interleaved runs), when measured so. */
  baselineRatioSpread?: Spread;
  pairs: Record<string, number>;
  peakMB: number;
}

/** Minimum, median and maximum of a non-empty list. */
export interface Spread {
  min: number;
  median: number;
  max: number;
}

export function spread(values: number[], digits = 3): Spread {
  const r = (x: number): number => Number(x.toFixed(digits));
  return { min: r(Math.min(...values)), median: r(median(values)), max: r(Math.max(...values)) };
}

/**
 * The order of the cases in round `round` (0-based): every case once per round, the start
 * rotated each round. Interleaving puts both sides of a comparison under the same load: on a
 * shared machine, measuring all of one side and then all of the other turned 1.63× into 1.02×.
 */
export function roundOrder<T>(cases: readonly T[], round: number): T[] {
  const k = round % cases.length;
  return [...cases.slice(k), ...cases.slice(0, k)];
}

/** Per-round ratios a[i] / b[i] of samples taken in the same rounds. */
export function pairedRatios(a: number[], b: number[]): number[] {
  if (a.length !== b.length || a.length === 0) {
    throw new Error("paired ratios need the same, non-zero number of samples on both sides");
  }
  return a.map((x, i) => x / b[i]);
}

/**
 * Pure: the figures a run prints, from the medians per case. With `ratios` (prod / baseline per
 * interleaved round) the verdict uses their median, and their spread is reported.
 */
export function summarize(
  medians: Record<string, { seconds: number; peakMB: number }>,
  ratios?: number[],
): {
  summary: BenchSummary;
  perPairSeconds: number;
  linearRatio: number;
  checks: { name: string; ok: boolean; detail: string }[];
} {
  const pick = (k: string): { seconds: number; peakMB: number } => {
    const m = medians[k];
    if (!m) {
      throw new Error(`no measurements for ${k}`);
    }
    return m;
  };
  const prod = pick("prod");
  const baseline = pick("baseline");
  const p1 = pick("pairs:1");
  const p10 = pick("pairs:10");
  const p50 = pick("pairs:50");
  const round = (x: number, d = 3): number => Number(x.toFixed(d));
  const baselineRatio = ratios ? median(ratios) : prod.seconds / baseline.seconds;
  const linearRatio = p50.seconds / p1.seconds;
  const perPairSeconds = (p50.seconds - p1.seconds) / 49;
  return {
    summary: {
      prodSeconds: round(prod.seconds),
      baselineRatio: round(baselineRatio, 2),
      ...(ratios ? { baselineRatioSpread: spread(ratios, 2) } : {}),
      pairs: { "1": round(p1.seconds), "10": round(p10.seconds), "50": round(p50.seconds) },
      peakMB: Math.round(Math.max(...Object.values(medians).map((m) => m.peakMB))),
    },
    perPairSeconds: round(perPairSeconds, 4),
    linearRatio: round(linearRatio, 1),
    checks: [
      {
        name: "components cost at most 1.3× the flat baseline",
        ok: baselineRatio <= 1.3,
        detail: ratios
          ? `${round(baselineRatio, 2)}× median of ${ratios.length} interleaved rounds (min ${round(Math.min(...ratios), 2)}×, max ${round(Math.max(...ratios), 2)}×)`
          : `${round(baselineRatio, 2)}×`,
      },
      {
        name: "50 pairs within 55× one pair (linear growth)",
        ok: linearRatio <= 55,
        detail: `${round(linearRatio, 1)}×`,
      },
      {
        name: "synth of prod well under 5 s",
        ok: prod.seconds < 5,
        detail: `${round(prod.seconds, 2)} s`,
      },
    ],
  };
}

/** Where the compiled worker lives (next to this module). */
export const WORKER = path.join(PACKAGE_ROOT, "dist", "scripts", "bench-worker.js");
