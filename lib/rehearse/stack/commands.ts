// The stack's `command:remote:Command` resources, run the way `pulumi up` runs them (issue 11):
// after the servers exist, each create over real SSH to its connection's host, as its user, with
// its private key, refusing any host key but the connection's `hostKey`, its `stdin` piped in and
// its `environment` sent as SSH environment requests (the server must `AcceptEnv` them, as with
// the provider), in dependency order; a failing command fails the run with its URN.
//
// API (also used by `--apply`, issue 12):
//   remoteCommandsOf(deployment, unmasked?) -> RemoteCommandSpec[]   what the synth declares
//   orderCommands(specs) -> RemoteCommandSpec[]                       dependencies first
//   runRemoteCommand(spec, ctx, op?) -> {stdout, stderr}               one create/update/delete
//   runRemoteCommands(specs, ctx, log?) -> RemoteCommandRun[]          every create, in order
// `ctx` says how this machine reaches the hosts (a network namespace, a source address) and
// supplies what the synth cannot show: secrets kept as "[secret]" (the deploy key from secure
// config) and real host keys where the synth's are mocks.
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { spawn } from "child_process";
import {
  Deployment,
  InspectedResource,
  SECRET_PLACEHOLDER,
  SynthResource,
} from "../../synth/offline-synth";

export const REMOTE_COMMAND_TYPE = "command:remote:Command";

/** One `command:remote:Command` of the synth, its connection and its operations. */
export interface RemoteCommandSpec {
  urn: string;
  /** Logical name, e.g. "mysql-bootstrap". */
  name: string;
  /** The provider-assigned id in the synth (mocks: "<name>-id"). */
  id?: string;
  host: string;
  /** Defaults to 22 when the connection has none. */
  port: number;
  /** Defaults to "root", as the provider's. */
  user: string;
  /** OpenSSH/PEM private key; "[secret]" when the synth could not decrypt it (ctx supplies it). */
  privateKey?: string;
  /** The only host key accepted ("<type> <base64>"); undefined: the provider accepts any. */
  hostKey?: string;
  /** Connection attempts before giving up (the provider's dialErrorLimit). Defaults to 10. */
  dialErrorLimit: number;
  /** Seconds one dial may take (the provider's perDialTimeout). Defaults to 15. */
  perDialTimeout?: number;
  create?: string;
  update?: string;
  delete?: string;
  stdin?: string;
  environment: Record<string, string>;
  triggers: unknown[];
  /** URNs of the commands that must run first (dependsOn and input references). */
  dependsOn: string[];
}

/** A command that failed: the message names the URN, the host and the exit status. */
export class RemoteCommandError extends Error {
  constructor(
    message: string,
    public readonly urn: string,
    public readonly stdout: string,
    public readonly stderr: string,
  ) {
    super(message);
    this.name = "RemoteCommandError";
  }
}

type Connection = Pick<RemoteCommandSpec, "host" | "port" | "user" | "privateKey" | "hostKey">;

export interface CommandContext {
  /** Argv prefix ssh runs under to reach the hosts, e.g. ["ip","netns","exec","hsr-1"]. Defaults to []. */
  via?: string[];
  /** Source address for the connection (ssh -b). Defaults to the kernel's choice. */
  bindAddress?: string;
  /**
   * Adjusts a connection for this network: the key behind "[secret]", the real host key where the
   * synth's is a mock, a reachable address. Fields it returns replace the spec's. Defaults to none.
   */
  connect?: (spec: RemoteCommandSpec) => Partial<Connection>;
  /** Seconds one command may run. Defaults to 1800. */
  timeoutSeconds?: number;
  /**
   * Seconds between connection attempts. Defaults to the provider's: 0.1 s, growing 1.5 times
   * per attempt up to 5 s (pulumi's retry.Until defaults, which the provider's Dial uses).
   */
  dialIntervalSeconds?: number;
}

export interface RemoteCommandRun {
  urn: string;
  /** "skipped" when the command has no create (the provider then runs nothing, dials nothing). */
  result: "ran" | "skipped";
  seconds: number;
  stdout: string;
  stderr: string;
}

function str(v: unknown): string | undefined {
  return typeof v === "string" ? v : undefined;
}

function secretFree(v: unknown, where: string): Record<string, string> {
  if (v === undefined || v === null) {
    return {};
  }
  if (v === SECRET_PLACEHOLDER || typeof v !== "object") {
    throw new Error(`${where}: environment is ${JSON.stringify(v)}: pass the unmasked resources`);
  }
  return Object.fromEntries(
    Object.entries(v as Record<string, unknown>).map(([k, x]) => [k, String(x)]),
  );
}

/**
 * The remote commands of a synth. `unmasked` (the synth's `inspect` callback's resources) supplies
 * the inputs the deployment shows as "[secret]" (connection, environment); without it a command
 * whose connection is secret is an error naming it.
 */
export function remoteCommandsOf(
  d: Deployment,
  unmasked: InspectedResource[] = [],
): RemoteCommandSpec[] {
  const byUrn = new Map(unmasked.map((r) => [r.urn, r.inputs]));
  const rs = d.deployment.resources.filter((r) => r.type === REMOTE_COMMAND_TYPE);
  const problems: string[] = [];
  const specs: RemoteCommandSpec[] = [];
  for (const r of rs) {
    const inputs = byUrn.get(r.urn) ?? r.inputs;
    const conn = inputs.connection;
    if (conn === SECRET_PLACEHOLDER || typeof conn !== "object" || conn === null) {
      problems.push(`${r.urn}: connection is ${JSON.stringify(conn)} (needs the unmasked inputs)`);
      continue;
    }
    const c = conn as Record<string, unknown>;
    const host = str(c.host);
    if (!host || host === SECRET_PLACEHOLDER) {
      problems.push(`${r.urn}: connection.host is ${JSON.stringify(c.host)}`);
      continue;
    }
    let environment: Record<string, string>;
    try {
      environment = secretFree(inputs.environment, r.urn);
    } catch (e) {
      problems.push((e as Error).message);
      continue;
    }
    specs.push({
      urn: r.urn,
      name: r.name,
      id: r.id,
      host,
      port: Number(c.port ?? 22),
      user: str(c.user) ?? "root",
      privateKey: str(c.privateKey),
      hostKey: str(c.hostKey),
      dialErrorLimit: Number(c.dialErrorLimit ?? 10),
      perDialTimeout: Number(c.perDialTimeout ?? 15) || 15,
      create: str(inputs.create),
      update: str(inputs.update),
      delete: str(inputs.delete),
      stdin: str(inputs.stdin),
      environment,
      triggers: Array.isArray(inputs.triggers) ? inputs.triggers : [],
      dependsOn: [],
    });
  }
  // Dependencies: explicit dependsOn, and any input that carries another command's URN or id
  // (the synth records resolved inputs, so an output reference shows as the value it resolved to).
  for (const s of specs) {
    const r = rs.find((x) => x.urn === s.urn) as SynthResource;
    const text = JSON.stringify(byUrn.get(s.urn) ?? r.inputs);
    const deps = new Set((r.dependsOn ?? []).filter((u) => specs.some((o) => o.urn === u)));
    for (const o of specs) {
      if (o !== s && (text.includes(o.urn) || (o.id !== undefined && text.includes(`"${o.id}"`)))) {
        deps.add(o.urn);
      }
    }
    s.dependsOn = [...deps];
  }
  if (problems.length > 0) {
    throw new Error(`remote commands cannot be run:\n  ${problems.join("\n  ")}`);
  }
  return specs;
}

/** Dependencies first, otherwise the synth's order; a cycle is an error naming its members. */
export function orderCommands(specs: RemoteCommandSpec[]): RemoteCommandSpec[] {
  const out: RemoteCommandSpec[] = [];
  const done = new Set<string>();
  const known = new Set(specs.map((s) => s.urn));
  let left = specs.slice();
  while (left.length > 0) {
    const ready = left.filter((s) => s.dependsOn.every((d) => done.has(d) || !known.has(d)));
    if (ready.length === 0) {
      throw new Error(
        `remote commands depend on each other in a cycle: ${left.map((s) => s.name).join(", ")}`,
      );
    }
    for (const s of ready) {
      out.push(s);
      done.add(s.urn);
    }
    left = left.filter((s) => !done.has(s.urn));
  }
  return out;
}

/** What ssh says when it never reached the remote command: worth another dial. */
// The provider counts every error of ssh.Dial, which includes authentication: a key not yet
// installed (cloud-init writes it at first boot) is a dial error too, retried within the limit.
const DIAL_FAILURE =
  /Connection refused|Connection timed out|No route to host|Network is unreachable|Connection reset|Connection closed by|kex_exchange_identification|banner exchange|Permission denied \(publickey/;

/** The provider's wait before dial number `attempt + 1` (pulumi retry.Until's backoff). */
export function dialDelaySeconds(attempt: number): number {
  return Math.min(5, 0.1 * Math.pow(1.5, attempt - 1));
}

/**
 * Runs one operation of `spec` (its create by default) over real SSH. Resolves with its output;
 * rejects with a RemoteCommandError naming the URN for a non-zero exit, a refused host key, an
 * operation the command does not have, or a host that never answered within dialErrorLimit tries.
 */
export async function runRemoteCommand(
  spec: RemoteCommandSpec,
  ctx: CommandContext = {},
  op: "create" | "update" | "delete" = "create",
): Promise<{ stdout: string; stderr: string }> {
  const command = spec[op];
  if (command === undefined) {
    throw new RemoteCommandError(`${spec.urn}: has no ${op} command`, spec.urn, "", "");
  }
  const c: Connection = { ...spec, ...(ctx.connect?.(spec) ?? {}) };
  if (c.privateKey === undefined || c.privateKey === SECRET_PLACEHOLDER) {
    throw new RemoteCommandError(
      `${spec.urn}: no private key for ${c.user}@${c.host} (the synth shows it as ${JSON.stringify(c.privateKey)}; the context must supply it)`,
      spec.urn,
      "",
      "",
    );
  }
  for (const name of Object.keys(spec.environment)) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) {
      throw new RemoteCommandError(
        `${spec.urn}: environment name ${JSON.stringify(name)} is not a variable name`,
        spec.urn,
        "",
        "",
      );
    }
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "hastack-cmd-"));
  try {
    const key = path.join(dir, "key");
    fs.writeFileSync(key, c.privateKey.endsWith("\n") ? c.privateKey : `${c.privateKey}\n`, {
      mode: 0o600,
    });
    const knownHosts = path.join(dir, "known_hosts");
    // One alias for the pinned key, whatever the address and port.
    const alias = "hastack-remote-command-target";
    fs.writeFileSync(knownHosts, c.hostKey ? `${alias} ${c.hostKey.trim()}\n` : "");
    const argv = [
      ...(ctx.via ?? []),
      "ssh",
      "-F",
      "/dev/null",
      "-i",
      key,
      "-p",
      String(c.port),
      ...(ctx.bindAddress ? ["-b", ctx.bindAddress] : []),
      "-o",
      "BatchMode=yes",
      "-o",
      "IdentitiesOnly=yes",
      "-o",
      // The provider's perDialTimeout (default 15 s).
      `ConnectTimeout=${spec.perDialTimeout ?? 15}`,
      "-o",
      "LogLevel=ERROR",
      "-o",
      "GlobalKnownHostsFile=/dev/null",
      ...(c.hostKey
        ? ["-o", `HostKeyAlias=${alias}`, "-o", `UserKnownHostsFile=${knownHosts}`]
        : ["-o", "UserKnownHostsFile=/dev/null"]),
      "-o",
      // Without a hostKey the provider accepts any key; with one, only that key.
      `StrictHostKeyChecking=${c.hostKey ? "yes" : "no"}`,
      ...Object.keys(spec.environment).flatMap((n) => ["-o", `SendEnv=${n}`]),
      `${c.user}@${c.host}`,
      "--",
      command,
    ];
    const env = { PATH: process.env.PATH ?? "/usr/sbin:/usr/bin:/sbin:/bin", ...spec.environment };
    const timeout = (ctx.timeoutSeconds ?? 1800) * 1000;
    const attempts = Math.max(1, spec.dialErrorLimit);
    for (let attempt = 1; ; attempt++) {
      const r = await runSsh(argv, env, spec.stdin ?? "", timeout);
      if (r.code === 0) {
        return { stdout: r.stdout, stderr: r.stderr };
      }
      const last = r.stderr.trim().split("\n").slice(-5).join(" | ");
      if (r.timedOut) {
        throw new RemoteCommandError(
          `${spec.urn}: still running on ${c.host} after ${timeout / 1000} s: ${last}`,
          spec.urn,
          r.stdout,
          r.stderr,
        );
      }
      const wrongKey = /Host key verification failed|REMOTE HOST IDENTIFICATION HAS CHANGED/.test(
        r.stderr,
      );
      // The provider checks the pinned key inside ssh.Dial: another key is a dial error too,
      // retried within dialErrorLimit (at first boot the image's key answers until the user-data
      // installs the pinned one); the command never runs on an unpinned host.
      if (wrongKey && attempt < attempts) {
        await new Promise((res) =>
          setTimeout(res, (ctx.dialIntervalSeconds ?? dialDelaySeconds(attempt)) * 1000),
        );
        continue;
      }
      if (wrongKey) {
        throw new RemoteCommandError(
          `${spec.urn}: ${c.host} did not present the connection's hostKey in ${attempt} dial attempts: refused (${last})`,
          spec.urn,
          r.stdout,
          r.stderr,
        );
      }
      if (r.code === 255 && DIAL_FAILURE.test(r.stderr) && attempt < attempts) {
        await new Promise((res) =>
          setTimeout(res, (ctx.dialIntervalSeconds ?? dialDelaySeconds(attempt)) * 1000),
        );
        continue;
      }
      throw new RemoteCommandError(
        `${spec.urn}: ${op} on ${c.user}@${c.host}:${c.port} exited ${r.code ?? r.signal}` +
          (r.code === 255 && DIAL_FAILURE.test(r.stderr) ? ` after ${attempt} dial attempts` : "") +
          `: ${last || "(no stderr)"}`,
        spec.urn,
        r.stdout,
        r.stderr,
      );
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

function runSsh(
  argv: string[],
  env: NodeJS.ProcessEnv,
  stdin: string,
  timeoutMs: number,
): Promise<{
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}> {
  return new Promise((resolve) => {
    const child = spawn(argv[0], argv.slice(1), { env, stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    let timedOut = false;
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    // A command that exits without reading all of its stdin closes the pipe: not an error here.
    child.stdin.on("error", () => undefined);
    child.stdin.end(stdin);
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill("SIGKILL");
    }, timeoutMs);
    child.on("error", (e) => {
      clearTimeout(timer);
      resolve({ code: 127, signal: null, stdout, stderr: `${stderr}${e.message}`, timedOut });
    });
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, timedOut });
    });
  });
}

/**
 * Runs every command's create in dependency order, as `pulumi up` does on a first deployment
 * (one at a time: commands of one pair act on each other's servers). Stops at the first failure,
 * throwing its RemoteCommandError; a command without create is skipped, as the provider skips it.
 */
export async function runRemoteCommands(
  specs: RemoteCommandSpec[],
  ctx: CommandContext = {},
  log: (l: string) => void = () => undefined,
): Promise<RemoteCommandRun[]> {
  const runs: RemoteCommandRun[] = [];
  for (const s of orderCommands(specs)) {
    if (s.create === undefined) {
      runs.push({ urn: s.urn, result: "skipped", seconds: 0, stdout: "", stderr: "" });
      log(`remote command ${s.name}: no create, nothing to run`);
      continue;
    }
    const started = Date.now();
    log(`remote command ${s.name}: running on ${s.user}@${s.host}`);
    const out = await runRemoteCommand(s, ctx);
    const seconds = (Date.now() - started) / 1000;
    log(`remote command ${s.name}: done in ${seconds.toFixed(0)} s`);
    runs.push({ urn: s.urn, result: "ran", seconds, ...out });
  }
  return runs;
}

/**
 * Runs every command's create as `pulumi up` schedules resources: each as soon as the commands
 * it depends on are done and `ready(spec)` resolves (its host exists), independent ones at the
 * same time. A failed command fails the ones that depend on it (they never run) while the others
 * go on; the first failure is thrown once every command has settled.
 */
export async function runRemoteCommandsWhenReady(
  specs: RemoteCommandSpec[],
  ctx: CommandContext,
  ready: (spec: RemoteCommandSpec) => Promise<void>,
  log: (l: string) => void = () => undefined,
): Promise<RemoteCommandRun[]> {
  orderCommands(specs); // a cycle is an error before anything runs
  const runs: RemoteCommandRun[] = [];
  const started = new Map<string, Promise<void>>();
  const start = (s: RemoteCommandSpec): Promise<void> => {
    let p = started.get(s.urn);
    if (p === undefined) {
      p = (async () => {
        const deps = specs.filter((o) => s.dependsOn.includes(o.urn));
        const settled = await Promise.allSettled(deps.map(start));
        if (settled.some((r) => r.status === "rejected")) {
          throw new Error(`${s.name}: not run, a command it depends on failed`);
        }
        if (s.create === undefined) {
          runs.push({ urn: s.urn, result: "skipped", seconds: 0, stdout: "", stderr: "" });
          log(`remote command ${s.name}: no create, nothing to run`);
          return;
        }
        await ready(s);
        const t0 = Date.now();
        log(`remote command ${s.name}: running on ${s.user}@${s.host}`);
        const out = await runRemoteCommand(s, ctx);
        const seconds = (Date.now() - t0) / 1000;
        log(`remote command ${s.name}: done in ${seconds.toFixed(0)} s`);
        runs.push({ urn: s.urn, result: "ran", seconds, ...out });
      })();
      started.set(s.urn, p);
    }
    return p;
  };
  const results = await Promise.allSettled(specs.map(start));
  const failed = results.find(
    (r): r is PromiseRejectedResult =>
      r.status === "rejected" && !/not run, a command it depends on failed/.test(String(r.reason)),
  );
  if (failed) {
    throw failed.reason;
  }
  return runs;
}
