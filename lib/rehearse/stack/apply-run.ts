// `rehearse stack --apply BEFORE AFTER` (issue 12), the executing half: the plan of apply.ts made
// on a booted rehearsal (`rehearse stack --keep`), one step at a time in the engine's order,
// stopping at the first failure as `pulumi up` fails:
// - record sets and parameter values: written into the stand-ins' config, which re-renders the
//   zones (new serial, failover answered from the measured health) and reloads bind9 on SIGHUP;
//   the step is done when bind9 serves the new serial. Clients resolve through unbound, which
//   keeps the old answer for its TTL, as resolvers do with Route 53's;
// - EIP moves: eip.ts, on the router's nftables; then in the stand-ins' config, whose IMDS lists
//   each server's public addresses from it (SIGHUP, as above);
// - remote commands: commands.ts over real SSH, from the admin address. The synth files show the
//   connection and environment as "[secret]"; they are taken from the booted stack's own synth
//   (the same stack config's key, passwords and peers), the rest (create, update, delete, stdin,
//   triggers) from the file the step comes from.
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import { execFileSync } from "child_process";
import {
  Deployment,
  InspectedResource,
  readDeployment,
  synthesize,
} from "../../synth/offline-synth";
import { PACKAGE_ROOT } from "../../package-root";
import { Drill, DrillUsageError, runDrill } from "../drill";
import { LOCK_FILE, RUN_ROOT, readStackSettings } from "./index";
import { takeLock } from "./lock";
import {
  ApplyPlan,
  ApplyRefusedError,
  ApplyStep,
  REMOTE_COMMAND,
  describeStep,
  planApply,
} from "./apply";
import { CommandContext, remoteCommandsOf, runRemoteCommand } from "./commands";
import { DnsRecord, StackModel, buildModel, inCidr } from "./model";
import { moveEip, natRulesOf } from "./eip";
import { TABLE } from "./nft";
import { StandInConfig } from "./standins";
import { Made } from "./teardown";
import { parameterTail } from "./secrets";

/** What the executor needs of a booted rehearsal. */
export interface ApplyTarget {
  /** The router's network namespace (nftables, bind9 on its 127.0.0.1, the stand-ins). */
  router: string;
  model: StackModel;
  /** The stand-ins' config file and process (SIGHUP reloads it). */
  standInsConfig: string;
  standInsPid: number;
  /** How remote commands reach the servers (key, host keys, admin address). */
  commandContext: CommandContext;
  /** Unmasked inputs (connection, environment) of the booted stack's remote commands, by URN. */
  unmasked: UnmaskedInputs;
}

export interface StepResult {
  step: string;
  urn: string;
  seconds: number;
  outcome: "applied" | "nothing to run" | "failed" | "not run";
  error?: string;
}

export interface ApplyResult {
  ok: boolean;
  steps: StepResult[];
  seconds: number;
}

function recordKey(r: DnsRecord): string {
  return `${r.name}|${r.type}|${r.setIdentifier ?? ""}`;
}

function inRouter(router: string, argv: string[], input?: string): string {
  return execFileSync("ip", ["netns", "exec", router, ...argv], {
    encoding: "utf8",
    input,
    stdio: [input === undefined ? "ignore" : "pipe", "pipe", "pipe"],
  });
}

/** The SOA serial bind9 serves for `zone` (0 when it does not answer). */
export function servedSerial(router: string, zone: string): number {
  try {
    const out = inRouter(router, [
      "dig",
      "+short",
      "+time=2",
      "+tries=1",
      "@127.0.0.1",
      zone,
      "SOA",
    ]).trim();
    return Number(out.split(/\s+/)[2] ?? 0) || 0;
  } catch {
    return 0;
  }
}

/**
 * Applies one record, parameter or EIP change to the stand-ins' config (pure on the config
 * object). An EIP step changes only what IMDS serves; the router's NAT is eip.ts's.
 */
export function changeConfig(cfg: StandInConfig, step: ApplyStep): void {
  if (step.kind === "record") {
    const zone = cfg.dns.zones.find((z) => z.name === step.zone);
    if (!zone) {
      throw new Error(`${step.urn}: zone ${step.zone} is not served by the rehearsal`);
    }
    const key = recordKey((step.before ?? step.after)!);
    const at = zone.records.findIndex((r) => recordKey(r) === key);
    const same = (a: DnsRecord | undefined, b: DnsRecord | undefined): boolean =>
      JSON.stringify(a) === JSON.stringify(b);
    if (step.op === "create") {
      if (at >= 0) {
        throw new Error(
          `${step.urn}: record set ${key} already exists (the rehearsal is not at BEFORE)`,
        );
      }
      zone.records.push(step.after!);
    } else if (at < 0 || !same(zone.records[at], step.before)) {
      throw new Error(
        `${step.urn}: record set ${key} is ${at < 0 ? "missing" : JSON.stringify(zone.records[at].values)}, not as in BEFORE (the rehearsal is not at BEFORE)`,
      );
    } else if (step.op === "update") {
      zone.records[at] = step.after!;
    } else {
      zone.records.splice(at, 1);
    }
    return;
  }
  if (step.kind === "parameter") {
    if (step.op === "delete") {
      delete cfg.parameters[step.name];
    } else {
      cfg.parameters[step.name] = {
        ...cfg.parameters[step.name],
        type: step.type,
        value: step.value ?? "",
      };
    }
    return;
  }
  if (step.kind === "eip") {
    // IMDS's view of the move (public-ipv4s of both servers). A config from before `eips`
    // existed has nothing to move: its IMDS serves each server's own address statically.
    if (!cfg.eips) {
      return;
    }
    const at = cfg.eips.find((e) => e.publicIp === step.publicIp);
    if (at && at.privateIp !== step.from.privateIp && at.privateIp !== step.to.privateIp) {
      throw new Error(
        `${step.urn}: IMDS has EIP ${step.publicIp} on ${at.privateIp}, not on ${step.from.privateIp} (the rehearsal is not at BEFORE)`,
      );
    }
    if (at) {
      at.privateIp = step.to.privateIp;
    } else {
      cfg.eips.push({ publicIp: step.publicIp, privateIp: step.to.privateIp });
    }
    return;
  }
  throw new Error(`${step.urn}: not a stand-in change`);
}

/**
 * Makes a record, parameter or EIP step in the running stand-ins: their config file rewritten
 * (changeConfig) and reloaded (SIGHUP); resolves once bind9 serves the serial the reload gave,
 * so IMDS and the zones answer from the new config.
 */
export async function changeStandIns(
  t: Pick<ApplyTarget, "router" | "standInsConfig" | "standInsPid">,
  s: ApplyStep,
): Promise<void> {
  const cfg = JSON.parse(fs.readFileSync(t.standInsConfig, "utf8")) as StandInConfig;
  changeConfig(cfg, s);
  const tmp = `${t.standInsConfig}.tmp`;
  fs.writeFileSync(tmp, JSON.stringify(cfg), { mode: 0o600 });
  fs.renameSync(tmp, t.standInsConfig);
  await reloadStandIns(t, s.kind === "record" ? s.zone : cfg.dns.zones[0].name);
}

async function reloadStandIns(
  t: Pick<ApplyTarget, "router" | "standInsPid">,
  zone: string,
): Promise<void> {
  const before = servedSerial(t.router, zone);
  process.kill(t.standInsPid, "SIGHUP");
  const until = Date.now() + 60_000;
  while (Date.now() < until) {
    if (servedSerial(t.router, zone) > before) {
      return;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`bind9 still serves serial ${before} of ${zone} 60 s after the reload`);
}

/** Unmasked inputs (connection, environment) of a synth's remote commands, by URN. */
export type UnmaskedInputs = Map<string, Record<string, unknown>>;

/** The unmasked inputs of the command resources `synthesize({inspect})` saw. */
export function unmaskedCommands(inspected: InspectedResource[]): UnmaskedInputs {
  return new Map(inspected.filter((r) => r.type === REMOTE_COMMAND).map((r) => [r.urn, r.inputs]));
}

/**
 * Where a command step's connection and environment come from, as `pulumi up` takes them: a
 * create (or the create half of a replacement) runs the resource AFTER declares, so its spec is
 * AFTER's (`after`, the unmasked inputs of the AFTER synth) — a step that exists only from AFTER
 * on (a migration phase's one-shot command) is not in the booted stack at all. Every other step
 * takes the booted stack's (the same stack config's key and peers). Undefined: nobody unmasked
 * it. Pure.
 */
export function commandInputsOf(
  step: Extract<ApplyStep, { kind: "command" }>,
  booted: UnmaskedInputs,
  after?: UnmaskedInputs,
): { inputs: Record<string, unknown>; from: "after" | "booted" } | undefined {
  const creates = step.op === "create" || step.op === "replace";
  const fromAfter = creates ? after?.get(step.urn) : undefined;
  if (fromAfter) {
    return { inputs: fromAfter, from: "after" };
  }
  const live = booted.get(step.urn);
  return live ? { inputs: live, from: "booted" } : undefined;
}

/** The unmasked spec of a command step (commandInputsOf), the rest from the step's own file. */
function commandSpec(
  t: ApplyTarget,
  step: Extract<ApplyStep, { kind: "command" }>,
  after?: UnmaskedInputs,
) {
  const live = commandInputsOf(step, t.unmasked, after)?.inputs;
  if (!live) {
    throw new Error(
      step.op === "create" || step.op === "replace"
        ? `${step.urn}: its connection is a secret the synth file does not show, and neither AFTER's unmasked synth nor the booted stack declares this command: apply from a synth of AFTER with its unmasked inputs (a drill's synthesize({inspect}))`
        : `${step.urn}: its connection is a secret the synth file does not show, and the booted stack does not declare this command: boot the rehearsal from a stack that does`,
    );
  }
  const inputs = {
    ...step.resource.inputs,
    connection: live.connection,
    environment: live.environment,
  };
  const d: Deployment = {
    version: 3,
    deployment: { manifest: { time: "", magic: "", version: "" }, resources: [step.resource] },
  };
  const unmasked: InspectedResource = {
    type: step.resource.type,
    urn: step.urn,
    inputs,
    options: { protect: false, retainOnDelete: false },
  };
  return remoteCommandsOf(d, [unmasked])[0];
}

/**
 * Makes every step of `plan` on the rehearsal, in order; the first failure stops the apply
 * (the steps after it are "not run") and makes the result not ok. Refusals stop it before any
 * step runs. `after`: the unmasked inputs of AFTER's synth, for the commands it creates
 * (commandInputsOf); without it a create takes the booted stack's, as before.
 */
export async function executePlan(
  plan: ApplyPlan,
  t: ApplyTarget,
  log: (l: string) => void,
  after?: UnmaskedInputs,
): Promise<ApplyResult> {
  if (plan.refused.length > 0) {
    throw new ApplyRefusedError(plan.refused);
  }
  const started = Date.now();
  // Every command must be runnable before anything changes: no half-made apply for a missing key.
  for (const s of plan.steps) {
    if (s.kind === "command" && s.command !== undefined) {
      commandSpec(t, s, after);
    }
  }
  const results: StepResult[] = [];
  let failed = false;
  for (const s of plan.steps) {
    const what = describeStep(s);
    if (failed) {
      results.push({ step: what, urn: s.urn, seconds: 0, outcome: "not run" });
      continue;
    }
    const t0 = Date.now();
    log(`apply: ${what}`);
    try {
      let outcome: StepResult["outcome"] = "applied";
      if (s.kind === "record" || s.kind === "parameter" || s.kind === "eip") {
        if (s.kind === "eip") {
          moveEip(t.router, t.model, s.publicIp, s.from, s.to);
        }
        // Then IMDS follows: on AWS the association is one change, and an instance's
        // public-ipv4s lists the EIP from then on (hastack-is-active reads it).
        await changeStandIns(t, s);
      } else if (s.command === undefined) {
        outcome = "nothing to run";
      } else {
        const out = await runRemoteCommand(commandSpec(t, s, after), t.commandContext, s.runs);
        for (const line of out.stdout.trim().split("\n").filter(Boolean).slice(-5)) {
          log(`apply:   ${s.name}: ${line}`);
        }
      }
      results.push({
        step: what,
        urn: s.urn,
        seconds: (Date.now() - t0) / 1000,
        outcome,
      });
    } catch (e) {
      failed = true;
      // A command's message already ends with its last lines of stderr.
      const error = (e as Error).message;
      log(`apply: FAILED: ${error}`);
      results.push({
        step: what,
        urn: s.urn,
        seconds: (Date.now() - t0) / 1000,
        outcome: "failed",
        error,
      });
    }
  }
  return { ok: !failed, steps: results, seconds: (Date.now() - started) / 1000 };
}

/** A record set in a form that compares equal whatever order its fields or values came in. */
function canonicalRecord(r: DnsRecord): string {
  return JSON.stringify([
    r.name,
    r.type,
    r.ttl,
    [...r.values].sort(),
    r.failover ?? "",
    r.healthCheckId ?? "",
    r.setIdentifier ?? "",
  ]);
}

/**
 * Where a rehearsal's switch state — what an apply changes — differs from deployment `d`: its
 * record sets (the stand-ins' zones), its parameter values that the synth shows, and where each
 * EIP points (the router's NAT rules, `nft -a list table` output). Empty: an `--apply` from the
 * rehearsal's state to `d` has nothing to do. Pure. The known_hosts parameters are left out: the
 * rehearsal pins its generated host keys there at boot (secrets.ts), never the synth's mocks.
 * With `only`, just what that plan's steps touch (the switch a drill flips): a boot may serve
 * values the synth does not show elsewhere (a generated DKIM key's TXT, pinned host keys).
 */
export function driftFrom(
  d: Deployment,
  live: { config: StandInConfig; natListing: string },
  region: string,
  only?: ApplyPlan,
): string[] {
  const m = buildModel(d, [], region);
  const out: string[] = [];
  const touched = only && touchedBy(only);
  for (const z of m.zones) {
    const liveZone = live.config.dns.zones.find((x) => x.name === z.name);
    if (!liveZone) {
      out.push(`zone ${z.name}: not served`);
      continue;
    }
    const keep = (r: DnsRecord): boolean => !touched || touched.has(`record ${recordKey(r)}`);
    const want = new Map(z.records.filter(keep).map((r) => [recordKey(r), r]));
    const have = new Map(liveZone.records.filter(keep).map((r) => [recordKey(r), r]));
    for (const [k, r] of want) {
      const h = have.get(k);
      if (!h) {
        out.push(`record ${k} in ${z.name}: missing`);
      } else if (canonicalRecord(h) !== canonicalRecord(r)) {
        out.push(
          `record ${k} in ${z.name}: ${h.values.join(" ")}${h.failover ? ` (${h.failover})` : ""}, expected ${r.values.join(" ")}${r.failover ? ` (${r.failover})` : ""}`,
        );
      }
    }
    for (const k of have.keys()) {
      if (!want.has(k)) {
        out.push(`record ${k} in ${z.name}: not declared`);
      }
    }
  }
  for (const p of m.parameters) {
    if (
      p.value === undefined ||
      p.value === "[secret]" ||
      /\/ssh-known-hosts/.test(p.name) ||
      (touched && !touched.has(`parameter ${p.name}`))
    ) {
      continue;
    }
    const v = live.config.parameters[p.name]?.value;
    if (v !== p.value) {
      out.push(`parameter ${p.name}: ${JSON.stringify(v)}, expected ${JSON.stringify(p.value)}`);
    }
  }
  for (const n of m.nat.filter((x) => !touched || touched.has(`eip ${x.publicIp}`))) {
    const dnat = natRulesOf(live.natListing, n.publicIp).find((r) => r.chain === "nat_prerouting");
    const to = dnat && / dnat ip to (\S+)$/.exec(dnat.text)?.[1];
    if (to !== n.privateIp) {
      out.push(
        `EIP ${n.publicIp}: points to ${to ?? "nothing"}, expected ${n.privateIp} (${n.server})`,
      );
    }
  }
  return out;
}

/** What a plan's steps touch: "record <key>", "parameter <name>", "eip <address>". */
function touchedBy(plan: ApplyPlan): Set<string> {
  const out = new Set<string>();
  for (const s of plan.steps) {
    if (s.kind === "record") {
      out.add(`record ${recordKey((s.after ?? s.before)!)}`);
    } else if (s.kind === "parameter") {
      out.add(`parameter ${s.name}`);
    } else if (s.kind === "eip") {
      out.add(`eip ${s.publicIp}`);
    }
  }
  return out;
}

/**
 * The whole switch state of a rehearsal as "what → value" lines: every record set of every zone,
 * every parameter's value (a digest: some are secrets) and where each EIP points. Two snapshots
 * are equal exactly when nothing an apply can change has changed between them.
 */
export function switchSnapshot(live: {
  config: StandInConfig;
  natListing: string;
}): Map<string, string> {
  const out = new Map<string, string>();
  for (const z of live.config.dns.zones) {
    for (const r of z.records) {
      out.set(`record ${recordKey(r)} in ${z.name}`, canonicalRecord(r));
    }
  }
  for (const [name, p] of Object.entries(live.config.parameters)) {
    out.set(
      `parameter ${name}`,
      crypto.createHash("sha256").update(`${p.type}\0${p.value}`).digest("hex").slice(0, 16),
    );
  }
  for (const line of live.natListing.split("\n")) {
    const dnat = /^\s*ip daddr (\S+) dnat ip to (\S+)/.exec(line);
    if (dnat) {
      out.set(`EIP ${dnat[1]}`, dnat[2]);
    }
  }
  // Where IMDS says each EIP is (public-ipv4s): a drill must leave it where the NAT has it.
  for (const e of live.config.eips ?? []) {
    out.set(`IMDS EIP ${e.publicIp}`, e.privateIp);
  }
  return out;
}

/** How snapshot `b` differs from `a`, one line per changed, added or removed entry. */
export function snapshotDiff(a: Map<string, string>, b: Map<string, string>): string[] {
  const out: string[] = [];
  for (const [k, v] of a) {
    if (!b.has(k)) {
      out.push(`${k}: gone`);
    } else if (b.get(k) !== v) {
      out.push(`${k}: ${b.get(k)}, was ${v}`);
    }
  }
  for (const k of b.keys()) {
    if (!a.has(k)) {
      out.push(`${k}: added`);
    }
  }
  return out;
}

/** The rehearsal's live switch state: its stand-ins' config and its router's NAT listing. */
export function liveSwitchState(t: ApplyTarget): { config: StandInConfig; natListing: string } {
  return {
    config: JSON.parse(fs.readFileSync(t.standInsConfig, "utf8")) as StandInConfig,
    natListing: inRouter(t.router, ["nft", "-a", "list", "table", "inet", TABLE]),
  };
}

/** driftFrom on the rehearsal `t` as it is now (its stand-ins' config and its router's table). */
export function rehearsalDrift(t: ApplyTarget, d: Deployment, only?: ApplyPlan): string[] {
  return driftFrom(d, liveSwitchState(t), t.model.region, only);
}

/** The router namespace and stand-ins of a rehearsal left up with --keep, from its record. */
export function bootedRecord(dir: string): { router: string; standInsPid: number } {
  const file = path.join(dir, "made.json");
  if (!fs.existsSync(file)) {
    throw new Error(
      `no rehearsal is up (${file} is missing): boot one with \`npm run rehearse -- stack --keep\` first`,
    );
  }
  const made = (JSON.parse(fs.readFileSync(file, "utf8")) as { made: Made[] }).made;
  const router = made.find(
    (m): m is Extract<Made, { kind: "netns" }> => m.kind === "netns" && m.name.startsWith("hsr-"),
  );
  const standIns = made.find(
    (m): m is Extract<Made, { kind: "process" }> => m.kind === "process" && m.what === "stand-ins",
  );
  if (!router || !standIns) {
    throw new Error(`${file}: no router namespace or stand-ins recorded: the rehearsal is not up`);
  }
  try {
    process.kill(standIns.pid, 0);
  } catch {
    throw new Error(
      `${file}: the stand-ins (pid ${standIns.pid}) are gone: the rehearsal is not up`,
    );
  }
  return { router: router.name, standInsPid: standIns.pid };
}

/**
 * The command context of a booted rehearsal: the admin key its meta-data installed, each
 * server's real host key (the public half of its SSM host-key parameter), from the admin address
 * on the router.
 */
export function rehearsalCommandContext(
  dir: string,
  router: string,
  model: StackModel,
  cfg: StandInConfig,
): CommandContext {
  const privateKey = fs.readFileSync(path.join(dir, "admin-key"), "utf8");
  const services = [...new Set(model.servers.map((s) => s.service))];
  const hostKeys = new Map<string, string>();
  for (const s of model.servers) {
    const name = Object.keys(cfg.parameters).find(
      (n) => parameterTail(n, services) === `${s.service}/ssh-host-key/${s.role}`,
    );
    if (s.publicIp && name) {
      const f = path.join(dir, `apply-host-key-${s.name}`);
      fs.writeFileSync(f, cfg.parameters[name].value, { mode: 0o600 });
      try {
        hostKeys.set(
          s.publicIp,
          execFileSync("ssh-keygen", ["-y", "-f", f], { encoding: "utf8" }).trim(),
        );
      } finally {
        fs.rmSync(f, { force: true });
      }
    }
  }
  const lo = inRouter(router, ["ip", "-4", "-o", "addr", "show", "dev", "lo"]);
  const admin = [...lo.matchAll(/inet (\d+\.\d+\.\d+\.\d+)\//g)]
    .map((m) => m[1])
    .find((a) => model.adminCidrs.some((c) => inCidr(a, c)));
  if (!admin) {
    throw new Error(
      `router ${router} holds no address in the admin CIDRs ${model.adminCidrs.join(", ")}`,
    );
  }
  return {
    via: ["ip", "netns", "exec", router],
    bindAddress: admin,
    connect: (spec) => {
      const hostKey = hostKeys.get(spec.host);
      if (spec.hostKey !== undefined && hostKey === undefined) {
        throw new Error(`${spec.urn}: ${spec.host} is no server's EIP with a host key parameter`);
      }
      return { privateKey, hostKey: spec.hostKey === undefined ? undefined : hostKey };
    },
  };
}

/** The ApplyTarget of the rehearsal of `stack` that is up in `dir`. */
export async function bootedTarget(
  stack: string,
  dir: string,
  settings: { adminCidrs: string[]; region: string },
): Promise<ApplyTarget> {
  const { router, standInsPid } = bootedRecord(dir);
  let inspected: InspectedResource[] = [];
  const deployment = await synthesize({
    projectDir: PACKAGE_ROOT,
    stack,
    inspect: (rs) => (inspected = rs),
  });
  const model = buildModel(deployment, settings.adminCidrs, settings.region);
  const standInsConfig = path.join(dir, "standins.json");
  const cfg = JSON.parse(fs.readFileSync(standInsConfig, "utf8")) as StandInConfig;
  return {
    router,
    model,
    standInsConfig,
    standInsPid,
    commandContext: rehearsalCommandContext(dir, router, model, cfg),
    unmasked: unmaskedCommands(inspected),
  };
}

/**
 * Runs `fn` holding the machine's rehearsal lock (lock.ts, HASTACK_REHEARSAL_LOCK), the one a
 * boot takes: an apply or a drill on a kept stack must not run beside a boot (they share the
 * cores) nor beside another apply or drill (they would change the same servers). Waits up to
 * `waitSeconds`; refuses naming the holder otherwise. Freed when `fn` ends, however it ends.
 * `file` defaults to LOCK_FILE (tests give their own).
 */
export async function holdingRehearsalLock<T>(
  stack: string,
  waitSeconds: number,
  log: (l: string) => void,
  fn: () => Promise<T>,
  file: string = LOCK_FILE,
): Promise<T> {
  // Shared within this process: the drills' boot of a stack (index.ts) takes it again.
  const lock = await takeLock(file, stack, waitSeconds, log, true);
  try {
    return await fn();
  } finally {
    lock.release();
  }
}

/** Reads BEFORE and AFTER for --apply; a bad file is a usage error naming it. */
export function readPair(before: string, after: string): [Deployment, Deployment] {
  const read = (f: string): Deployment => {
    try {
      return readDeployment(f);
    } catch (e) {
      throw new DrillUsageError(`--apply ${f}: ${(e as Error).message}`);
    }
  };
  return [read(before), read(after)];
}

/** Plans, prints the impact report and the steps, then applies them to the booted rehearsal. */
export async function applyToRehearsal(
  o: {
    stack: string;
    before: string;
    after: string;
    dir: string;
    adminCidrs: string[];
    region: string;
  },
  log: (l: string) => void,
): Promise<{ plan: ApplyPlan; result: ApplyResult }> {
  const [b, a] = readPair(o.before, o.after);
  const plan = planApply(b, a, { beforePath: o.before, afterPath: o.after, region: o.region });
  log("what `npm run impact` says about this pair:");
  for (const line of plan.impact.text.trimEnd().split("\n")) {
    log(`  ${line}`);
  }
  if (plan.refused.length > 0) {
    throw new ApplyRefusedError(plan.refused);
  }
  log(`${plan.steps.length} step(s) to apply:`);
  plan.steps.forEach((s, i) => log(`  ${i + 1}. ${describeStep(s)}`));
  const target = await bootedTarget(o.stack, o.dir, o);
  const result = await executePlan(plan, target, log);
  return { plan, result };
}

export interface ApplyOptions {
  stack: string;
  before: string;
  after: string;
  /** Seconds to wait for the machine's rehearsal lock. Defaults to 0: refuse, naming the holder. */
  lockWait: number;
}

export const APPLY_USAGE = [
  "usage: npm run rehearse -- stack --apply BEFORE.json AFTER.json [--stack NAME] [--lock-wait S]",
  "  Applies what `pulumi up` would do from BEFORE to AFTER (two `npm run synth` files of the",
  "  stack) to the rehearsal left up by `rehearse stack --keep`: Route 53 record sets to its",
  "  bind9, EIP moves on its network, SSM parameter values, remote commands over SSH, in the",
  "  engine's order. Prints `npm run impact` for the pair first; refuses any other change.",
  "  --stack NAME    the stack that is up. Defaults to prod.",
  "  --lock-wait S   seconds to wait while a boot, apply or drill holds the machine's rehearsal",
  "                  lock. Defaults to 0: refuse, naming the holder.",
].join("\n");

/** `--lock-wait S`: a whole number of seconds, 0 or more (the boot's flag, the same words). */
export function parseLockWait(v: string | undefined): number {
  const n = Number(v);
  if (v === undefined || v.startsWith("--") || !Number.isInteger(n) || n < 0) {
    throw new DrillUsageError(
      `--lock-wait must be a whole number of seconds, 0 or more, got ${JSON.stringify(v)}`,
    );
  }
  return n;
}

export function parseApplyArgs(args: string[]): ApplyOptions & { help?: boolean } {
  const o: ApplyOptions & { help?: boolean } = {
    stack: "prod",
    before: "",
    after: "",
    lockWait: 0,
  };
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === "--help" || a === "-h") {
      o.help = true;
    } else if (a === "--apply") {
      const [b, f] = [args[i + 1], args[i + 2]];
      if (!b || !f || b.startsWith("--") || f.startsWith("--")) {
        throw new DrillUsageError("--apply needs two files: BEFORE.json AFTER.json");
      }
      o.before = b;
      o.after = f;
      i += 2;
    } else if (a === "--stack") {
      const v = args[++i];
      if (!v || !/^[A-Za-z0-9_.-]+$/.test(v)) {
        throw new DrillUsageError(`--stack must be a stack name, got ${JSON.stringify(v)}`);
      }
      o.stack = v;
    } else if (a === "--lock-wait") {
      o.lockWait = parseLockWait(args[++i]);
    } else {
      throw new DrillUsageError(`--apply: unknown flag ${a}`);
    }
  }
  if (!o.help && !o.before) {
    throw new DrillUsageError("--apply needs two files: BEFORE.json AFTER.json");
  }
  return o;
}

export const applyDrill: Drill<ApplyOptions> = {
  usage: APPLY_USAGE,
  parseArgs: parseApplyArgs,
  async run(o, log) {
    if (process.getuid?.() !== 0) {
      throw new Error("--apply needs root (the rehearsal's namespaces)");
    }
    return holdingRehearsalLock(o.stack, o.lockWait, log, () => applyHeld(o, log));
  },
  cleanupSync(): void {
    // Nothing of its own to stop: the rehearsal stays up (--down removes it); the lock's helper
    // exits with this process.
  },
};

async function applyHeld(
  o: ApplyOptions,
  log: (l: string) => void,
): Promise<{ passed: boolean; problems: string[]; summary: string }> {
  const settings = readStackSettings(o.stack);
  const dir = path.join(RUN_ROOT, o.stack);
  try {
    const { plan, result } = await applyToRehearsal({ ...o, dir, ...settings }, log);
    const failed = result.steps.filter((s) => s.outcome === "failed");
    return {
      passed: result.ok,
      problems: failed.map((s) => `${s.urn}: ${s.error ?? "failed"}`),
      summary: JSON.stringify({
        apply: {
          before: o.before,
          after: o.after,
          impactExit: plan.impact.verdict.code,
          steps: result.steps,
          seconds: Math.round(result.seconds),
        },
      }),
    };
  } catch (e) {
    if (e instanceof ApplyRefusedError) {
      return {
        passed: false,
        problems: e.refused.map((r) => r.message),
        summary: JSON.stringify({ apply: { refused: e.refused.map((r) => r.urn) } }),
      };
    }
    throw e;
  }
}

export function applyMain(args: string[]): Promise<number> {
  return runDrill("stack --apply", applyDrill, args);
}
