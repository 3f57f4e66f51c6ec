// Offline synth: runs the Pulumi program under the Node SDK's mock runtime — the official way to
// unit-test Pulumi programs — and writes the desired state shaped like `pulumi stack export`.
// It reads Pulumi.yaml and Pulumi.<stack>.yaml the way the CLI does (namespaced keys, the project
// as default namespace, `secure:` values as secrets), so a team without an AWS account can see
// exactly what a config change declares. Tests use runUnderMocks for single components.
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import {
  isMap,
  isScalar,
  isSeq,
  Node as YamlNode,
  parseDocument,
  stringify as stringifyYaml,
} from "yaml";
import { specialSecretSig, specialSigKey } from "@pulumi/pulumi/runtime/rpc";

/** What a secret looks like in synth output: never its value. */
export const SECRET_PLACEHOLDER = "[secret]";

export interface SynthResource {
  urn: string;
  type: string;
  /** Logical name (last URN segment). */
  name: string;
  custom: boolean;
  id?: string;
  parent?: string;
  protect: boolean;
  retainOnDelete: boolean;
  ignoreChanges: string[];
  inputs: Record<string, unknown>;
  /** URNs of explicit `dependsOn` resources (only when there are any). */
  dependsOn?: string[];
  outputs?: Record<string, unknown>;
}

export interface Deployment {
  version: 3;
  deployment: {
    manifest: { time: string; magic: string; version: string };
    resources: SynthResource[];
  };
}

export interface MockOptions {
  /** Defaults to "hastack". */
  project?: string;
  /** Defaults to "test". */
  stack?: string;
  /** Config as the CLI passes it: `"ns:key"` → string (objects JSON-encoded). Defaults to {}. */
  config?: Record<string, string>;
  /** Keys (`ns:key`) whose values are secret. Defaults to []. */
  secretKeys?: string[];
  /** Outputs the stack had last time (served to a self StackReference). Defaults to none. */
  previousOutputs?: Record<string, unknown>;
  /**
   * Receives every resource with its inputs secrets unwrapped — for the policy pack's offline
   * run (policy/rules.ts), which needs e.g. the secret connection's hostKey. Defaults to none.
   */
  inspect?: (resources: InspectedResource[]) => void;
}

/** A resource as the policy checks see it: type, URN, unmasked inputs, options. */
export interface InspectedResource {
  type: string;
  urn: string;
  inputs: Record<string, unknown>;
  options: { protect: boolean; retainOnDelete: boolean };
}

/** Thrown for bad input (stack name, files, config): the CLI prints the message, no trace. */
export class SynthInputError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "SynthInputError";
  }
}

interface Captured {
  resource: pulumi.Resource;
  type: string;
  name: string;
  custom: boolean;
  opts: pulumi.CustomResourceOptions;
}

/**
 * Runs `program` under mocks inside a Stack resource, records every resource (options through a
 * stack transformation, since the mock monitor never sees them) and returns the deployment.
 * The program's return value becomes the stack outputs.
 */
export async function runUnderMocks(
  program: () => Promise<Record<string, unknown> | void> | Record<string, unknown> | void,
  opts: MockOptions = {},
): Promise<Deployment> {
  const project = opts.project ?? "hastack";
  const stack = opts.stack ?? "test";
  const inputsByKey = new Map<string, Record<string, unknown>>();
  const statesByKey = new Map<string, { id: string }>();
  await pulumi.runtime.setMocks(
    {
      newResource(args: pulumi.runtime.MockResourceArgs) {
        const key = `${args.type}::${args.name}`;
        inputsByKey.set(key, args.inputs);
        const mocked = mockResourceState(args, opts.previousOutputs);
        statesByKey.set(key, { id: mocked.id });
        return mocked;
      },
      call(args: pulumi.runtime.MockCallArgs) {
        return mockCall(args);
      },
    },
    project,
    stack,
    false,
    // What a self-managed backend calls every stack's organization.
    "organization",
  );
  pulumi.runtime.setAllConfig(opts.config ?? {}, opts.secretKeys ?? []);

  const captured: Captured[] = [];
  let returned: Record<string, unknown> | void = undefined;
  await pulumi.runtime.runInPulumiStack(async () => {
    pulumi.runtime.registerStackTransformation((t) => {
      captured.push({
        resource: t.resource,
        type: t.type,
        name: t.name,
        // The SDK sets its custom-resource flag only after transformations run; the prototype
        // chain is already there.
        custom: t.resource instanceof pulumi.CustomResource,
        opts: t.opts as pulumi.CustomResourceOptions,
      });
      return undefined;
    });
    returned = await program();
    return returned ?? undefined;
  });
  await waitForRpcs();

  const stackUrn = `urn:pulumi:${stack}::${project}::pulumi:pulumi:Stack::${project}-${stack}`;
  const resources: SynthResource[] = [
    {
      urn: stackUrn,
      type: "pulumi:pulumi:Stack",
      name: `${project}-${stack}`,
      custom: false,
      protect: false,
      retainOnDelete: false,
      ignoreChanges: [],
      inputs: {},
      outputs: (await resolveDeep(returned ?? {})) as Record<string, unknown>,
    },
  ];
  const seen = new Set<string>();
  const urns = await Promise.all(
    captured.map(async (c) => {
      const parentResource = (c.resource as unknown as { __parentResource?: pulumi.Resource })
        .__parentResource;
      const deps = await resolveResources(c.opts.dependsOn);
      return {
        urn: await promiseOf(c.resource.urn),
        parent: parentResource ? await promiseOf(parentResource.urn) : stackUrn,
        dependsOn: await Promise.all(deps.map((r) => promiseOf(r.urn))),
      };
    }),
  );
  for (const [i, c] of captured.entries()) {
    const { urn, parent, dependsOn } = urns[i];
    if (seen.has(urn)) {
      throw new Error(
        `two resources share the URN ${urn}: child names must derive from their parent's`,
      );
    }
    seen.add(urn);
    const key = `${c.type}::${c.name}`;
    resources.push({
      urn,
      type: c.type,
      name: c.name,
      custom: c.custom,
      ...(c.custom ? { id: statesByKey.get(key)?.id } : {}),
      parent,
      protect: Boolean(
        (c.resource as unknown as { __protect?: boolean }).__protect ?? c.opts.protect,
      ),
      retainOnDelete: Boolean(c.opts.retainOnDelete),
      ignoreChanges: [...(c.opts.ignoreChanges ?? [])],
      inputs: maskSecrets(inputsByKey.get(key) ?? {}) as Record<string, unknown>,
      ...(dependsOn.length > 0 ? { dependsOn } : {}),
    });
  }
  opts.inspect?.(
    resources.map((r) => ({
      type: r.type,
      urn: r.urn,
      inputs: (r.type === "pulumi:pulumi:Stack"
        ? {}
        : unwrapSecrets(inputsByKey.get(`${r.type}::${r.name}`) ?? {})) as Record<string, unknown>,
      options: { protect: r.protect, retainOnDelete: r.retainOnDelete },
    })),
  );
  return {
    version: 3,
    deployment: {
      // A fixed manifest keeps the file byte-identical for the same input.
      manifest: {
        time: "1970-01-01T00:00:00Z",
        magic: "hastack-offline-synth",
        version: "v3.248.0",
      },
      resources,
    },
  };
}

export interface SynthOptions {
  /** Folder with Pulumi.yaml. */
  projectDir: string;
  /** Stack name: reads Pulumi.<stack>.yaml unless stackFile is given. */
  stack: string;
  /** Use this stack file instead of Pulumi.<stack>.yaml. */
  stackFile?: string;
  /** The stack's previous state (an earlier synth or `pulumi stack export`). */
  previous?: Deployment;
  /** Receives every resource unmasked (policy checks). Defaults to none. */
  inspect?: MockOptions["inspect"];
  /** The program module to run. Defaults to <projectDir>/dist/index.js, else the compiled index.js beside this script. */
  programPath?: string;
}

/** Whole-program synth of a stack, as the CLI would run it, under mocks. */
export async function synthesize(o: SynthOptions): Promise<Deployment> {
  const project = readProject(o.projectDir);
  const stackFile = o.stackFile ?? path.join(o.projectDir, `Pulumi.${o.stack}.yaml`);
  if (!/^[A-Za-z0-9_.-]+$/.test(o.stack)) {
    throw new SynthInputError(
      `--stack must be a stack name (letters, digits, _ . -), got ${JSON.stringify(o.stack)}`,
    );
  }
  if (!fs.existsSync(stackFile)) {
    const known = fs
      .readdirSync(o.projectDir)
      .map((f) => /^Pulumi\.(.+)\.yaml$/.exec(f)?.[1])
      .filter((s): s is string => Boolean(s));
    throw new SynthInputError(
      `no stack file ${stackFile} for stack "${o.stack}" (stacks here: ${known.join(", ") || "none"})`,
    );
  }
  const { config, secretKeys } = readStackConfig(stackFile, project);
  const programPath = o.programPath ?? path.join(__dirname, "..", "..", "index.js");
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const program = require(programPath) as () => Promise<Record<string, unknown>>;
  if (typeof program !== "function") {
    throw new Error(`${programPath} must export the program function (export = async () => …)`);
  }
  return runUnderMocks(program, {
    project: project.name,
    stack: o.stack,
    config,
    secretKeys,
    previousOutputs: o.previous ? stackOutputsOf(o.previous) : undefined,
    inspect: o.inspect,
  });
}

/** A stack file's `config:` map, as an edit sees it (arbitrary YAML, so loosely typed). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type StackConfigDoc = Record<string, any>;

/**
 * Writes a temporary copy of Pulumi.<stack>.yaml with `edit` applied to its `config:` map and
 * returns its path: how tests and the benchmark try a flip or a migration step.
 */
export function writeEditedStackFile(
  projectDir: string,
  stack: string,
  edit: (config: StackConfigDoc) => void,
): string {
  const source = path.join(projectDir, `Pulumi.${stack}.yaml`);
  const doc = (readYaml(source) ?? {}) as { config?: StackConfigDoc };
  doc.config = doc.config ?? {};
  edit(doc.config);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "hastack-stack-"));
  const file = path.join(dir, `Pulumi.${stack}.yaml`);
  fs.writeFileSync(file, stringifyYaml(doc));
  return file;
}

/** Synth of a stack with `edit` applied to a copy of its config. */
export async function synthesizeEdited(
  o: Omit<SynthOptions, "stackFile"> & { edit: (config: StackConfigDoc) => void },
): Promise<Deployment> {
  const stackFile = writeEditedStackFile(o.projectDir, o.stack, o.edit);
  try {
    return await synthesize({ ...o, stackFile });
  } finally {
    fs.rmSync(path.dirname(stackFile), { recursive: true, force: true });
  }
}

/** The stack outputs recorded in a deployment (synth file or `pulumi stack export`). */
export function stackOutputsOf(d: Deployment): Record<string, unknown> {
  const stackResource = d.deployment.resources.find((r) => r.type === "pulumi:pulumi:Stack");
  return (stackResource?.outputs as Record<string, unknown>) ?? {};
}

/** Reads and checks a deployment file (synth output or `pulumi stack export`). */
export function readDeployment(file: string): Deployment {
  let parsed: unknown;
  try {
    parsed = JSON.parse(fs.readFileSync(file, "utf8"));
  } catch (e) {
    throw new SynthInputError(`${file}: cannot read a deployment (${(e as Error).message})`);
  }
  const d = parsed as Partial<Deployment>;
  if (
    typeof d !== "object" ||
    d === null ||
    d.version !== 3 ||
    !Array.isArray(d.deployment?.resources)
  ) {
    throw new SynthInputError(
      `${file}: expected a deployment {"version": 3, "deployment": {"resources": [...]}} (an offline synth file or \`pulumi stack export\`)`,
    );
  }
  return d as Deployment;
}

/**
 * Reads the stack's previous state for `synth --previous` and checks what the comparison needs,
 * blaming the file (not a config key) for anything wrong in it: a deployment with resources, a
 * root stack resource whose outputs are an object, and `services.mail.migrationPhase` a phase
 * number. A file without them would silently disable the one-phase-at-a-time check.
 */
export function readPreviousState(file: string): Deployment {
  const d = readDeployment(file);
  const where = `--previous ${file}`;
  if (d.deployment.resources.length === 0) {
    throw new SynthInputError(
      `${where}: the deployment has no resources, so there is no previous state to compare with (give the last synth or \`pulumi stack export\` of this stack)`,
    );
  }
  const stack = d.deployment.resources.find((r) => r?.type === "pulumi:pulumi:Stack");
  if (!stack) {
    throw new SynthInputError(`${where}: the deployment has no pulumi:pulumi:Stack resource`);
  }
  if (!isPlainObject(stack.outputs)) {
    throw new SynthInputError(
      `${where}: the stack resource's outputs must be an object, got ${describe(stack.outputs)}`,
    );
  }
  const services = stack.outputs.services;
  const mail = isPlainObject(services) ? services.mail : undefined;
  const phase = isPlainObject(mail) ? mail.migrationPhase : undefined;
  if (phase === undefined) {
    throw new SynthInputError(
      `${where}: has no stack output services.mail.migrationPhase, so the one-phase-at-a-time check of hastack:mail.migration.phase cannot run (is it this hastack stack's state?)`,
    );
  }
  if (typeof phase !== "number" || !Number.isInteger(phase) || phase < 0 || phase > 9) {
    throw new SynthInputError(
      `${where}: services.mail.migrationPhase must be a migration phase 0–9, got ${describe(phase)}`,
    );
  }
  return d;
}

function describe(v: unknown): string {
  return v === undefined ? "nothing" : JSON.stringify(v).slice(0, 80);
}

/** A change between two deployments, per resource. */
export interface ResourceChange {
  urn: string;
  type: string;
  op: "create" | "update" | "delete";
  /** Top-level input keys that differ (update only). */
  changedKeys: string[];
}

/** Which resources a move from `before` to `after` creates, updates or deletes. */
export function diffDeployments(before: Deployment, after: Deployment): ResourceChange[] {
  const old = new Map(before.deployment.resources.map((r) => [r.urn, r]));
  const changes: ResourceChange[] = [];
  for (const r of after.deployment.resources) {
    const prev = old.get(r.urn);
    if (!prev) {
      changes.push({ urn: r.urn, type: r.type, op: "create", changedKeys: [] });
      continue;
    }
    old.delete(r.urn);
    if (r.type === "pulumi:pulumi:Stack") {
      continue;
    }
    const keys = new Set([...Object.keys(prev.inputs), ...Object.keys(r.inputs)]);
    const changedKeys = [...keys]
      .filter((k) => JSON.stringify(prev.inputs[k]) !== JSON.stringify(r.inputs[k]))
      .sort();
    if (changedKeys.length > 0) {
      changes.push({ urn: r.urn, type: r.type, op: "update", changedKeys });
    }
  }
  for (const r of old.values()) {
    changes.push({ urn: r.urn, type: r.type, op: "delete", changedKeys: [] });
  }
  return changes;
}

/** Pulumi.yaml: the project name and project-level config defaults. */
export function readProject(projectDir: string): { name: string; config: Record<string, unknown> } {
  const file = path.join(projectDir, "Pulumi.yaml");
  const doc = readYaml(file) as { name?: unknown; config?: Record<string, unknown> } | null;
  if (!doc || typeof doc.name !== "string" || doc.name.length === 0) {
    throw new SynthInputError(`${file}: expected a project with a "name"`);
  }
  const defaults: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(doc.config ?? {})) {
    const v =
      value !== null && typeof value === "object" && !Array.isArray(value)
        ? ((value as Record<string, unknown>).value ?? (value as Record<string, unknown>).default)
        : value;
    if (v !== undefined) {
      defaults[qualify(key, doc.name)] = v;
    }
  }
  return { name: doc.name, config: defaults };
}

/**
 * A stack file's `config:` as the CLI hands it to the program: keys namespaced (the project is
 * the default namespace), values as strings (objects JSON-encoded), and every key holding a
 * `secure:` value listed as secret. Ciphertext cannot be decrypted offline: it becomes "[secret]".
 */
export function readStackConfig(
  stackFile: string,
  project: { name: string; config: Record<string, unknown> },
): { config: Record<string, string>; secretKeys: string[] } {
  const doc = readYaml(stackFile, MAX_STACK_FILE_BYTES);
  if (!isPlainObject(doc) || !("config" in doc)) {
    // An empty file, binary garbage or a YAML list would otherwise surface as ten
    // "… is required" lines, as if the operator had forgotten every key.
    throw new SynthInputError(
      `${stackFile}: this is not a Pulumi stack file (expected a YAML mapping with a "config:" section${doc === null || doc === undefined ? "; the file is empty" : ""})`,
    );
  }
  const raw = doc.config ?? {};
  if (!isPlainObject(raw)) {
    throw new SynthInputError(`${stackFile}: "config" must be a map of keys to values`);
  }
  const merged: Record<string, unknown> = { ...project.config };
  for (const [key, value] of Object.entries(raw as Record<string, unknown>)) {
    merged[qualify(key, project.name)] = value;
  }
  const config: Record<string, string> = {};
  const secretKeys: string[] = [];
  for (const [key, value] of Object.entries(merged)) {
    const { value: plain, secret } = replaceSecure(value);
    if (secret) {
      secretKeys.push(key);
    }
    config[key] = typeof plain === "string" ? plain : JSON.stringify(plain);
  }
  return { config, secretKeys: secretKeys.sort() };
}

function qualify(key: string, project: string): string {
  return key.includes(":") ? key : `${project}:${key}`;
}

function replaceSecure(value: unknown): { value: unknown; secret: boolean } {
  if (value !== null && typeof value === "object") {
    const obj = value as Record<string, unknown>;
    if (!Array.isArray(obj) && Object.keys(obj).length === 1 && typeof obj.secure === "string") {
      return { value: SECRET_PLACEHOLDER, secret: true };
    }
    let secret = false;
    const out: Record<string, unknown> | unknown[] = Array.isArray(obj) ? [] : {};
    for (const [k, v] of Object.entries(obj)) {
      const r = replaceSecure(v);
      secret = secret || r.secret;
      (out as Record<string, unknown>)[k] = r.value;
    }
    return { value: out, secret };
  }
  return { value, secret: false };
}

/**
 * A stack file holds settings, not data: Pulumi.prod.yaml is 4 KB. Anything this large is a
 * mistake, refused before it is parsed (a 5 MB file of unknown keys took minutes to reject).
 */
export const MAX_STACK_FILE_BYTES = 1024 * 1024;

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/**
 * Reads a YAML file, refusing binary content and (with maxBytes) oversized files. Duplicate keys
 * are refused as the CLI does — but checked here with one Set per mapping: the yaml library's
 * own check (`uniqueKeys`) compares every key with every earlier one, quadratic in the number of
 * keys (16,000 keys: 55 s; 65,000 never finished).
 */
function readYaml(file: string, maxBytes?: number): unknown {
  let bytes: Buffer;
  try {
    const size = fs.statSync(file).size;
    if (maxBytes !== undefined && size > maxBytes) {
      throw new SynthInputError(
        `${file}: this is not a Pulumi stack file (${(size / 1048576).toFixed(1)} MiB; a stack file holds settings and stays far below ${maxBytes / 1048576} MiB)`,
      );
    }
    bytes = fs.readFileSync(file);
  } catch (e) {
    if (e instanceof SynthInputError) {
      throw e;
    }
    throw new SynthInputError(`${file}: cannot read (${(e as NodeJS.ErrnoException).code ?? e})`);
  }
  const text = bytes.toString("utf8");
  if (bytes.includes(0) || text.includes("\uFFFD")) {
    throw new SynthInputError(
      `${file}: this is not a Pulumi stack file (binary content, not YAML text)`,
    );
  }
  const doc = parseDocument(text, { uniqueKeys: false, prettyErrors: false });
  if (doc.errors.length > 0) {
    throw new SynthInputError(`${file}: not valid YAML (${doc.errors[0].message.split("\n")[0]})`);
  }
  const duplicate = firstDuplicateKey(doc.contents);
  if (duplicate) {
    throw new SynthInputError(`${file}: not valid YAML (the key ${duplicate} appears twice)`);
  }
  try {
    return doc.toJS({ maxAliasCount: 100 });
  } catch (e) {
    throw new SynthInputError(`${file}: not valid YAML (${(e as Error).message.split("\n")[0]})`);
  }
}

/** The first key that appears twice in one mapping, anywhere in the tree (linear time). */
function firstDuplicateKey(node: unknown, at = ""): string | undefined {
  if (isMap(node)) {
    const seen = new Set<string>();
    for (const pair of node.items) {
      const key = isScalar(pair.key) ? String(pair.key.value) : String(pair.key);
      const where = at ? `${at}.${key}` : key;
      if (seen.has(key)) {
        return JSON.stringify(where);
      }
      seen.add(key);
      const inner = firstDuplicateKey(pair.value as YamlNode, where);
      if (inner) {
        return inner;
      }
    }
  } else if (isSeq(node)) {
    for (const [i, item] of node.items.entries()) {
      const inner = firstDuplicateKey(item, `${at}[${i}]`);
      if (inner) {
        return inner;
      }
    }
  }
  return undefined;
}

/** Resolves an Output's value (a test helper too: `await promiseOf(pair.endpointIp)`). */
export function promiseOf<T>(output: pulumi.Output<T>): Promise<T> {
  return new Promise((resolve) => output.apply((v) => resolve(v)));
}

/** The resources a `dependsOn` option names (it may hold Outputs and Promises). */
async function resolveResources(value: unknown): Promise<pulumi.Resource[]> {
  if (value === undefined || value === null) {
    return [];
  }
  if (pulumi.Output.isInstance(value)) {
    return resolveResources(await promiseOf(value as pulumi.Output<unknown>));
  }
  if (value instanceof Promise) {
    return resolveResources(await value);
  }
  if (Array.isArray(value)) {
    return (await Promise.all(value.map(resolveResources))).flat();
  }
  return pulumi.Resource.isInstance(value) ? [value as pulumi.Resource] : [];
}

async function resolveDeep(value: unknown): Promise<unknown> {
  if (pulumi.Output.isInstance(value)) {
    const out = value as pulumi.Output<unknown>;
    const secret = await (out as unknown as { isSecret: Promise<boolean> }).isSecret;
    const v = await promiseOf(out);
    return secret ? SECRET_PLACEHOLDER : resolveDeep(v);
  }
  if (value instanceof Promise) {
    return resolveDeep(await value);
  }
  if (pulumi.Resource.isInstance(value)) {
    return promiseOf((value as pulumi.Resource).urn);
  }
  if (Array.isArray(value)) {
    return Promise.all(value.map(resolveDeep));
  }
  if (value !== null && typeof value === "object") {
    const entries = await Promise.all(
      Object.entries(value).map(async ([k, v]) => [k, await resolveDeep(v)] as const),
    );
    return Object.fromEntries(entries.filter(([, v]) => v !== undefined));
  }
  return value;
}

function unwrapSecrets(value: unknown): unknown {
  if (Array.isArray(value)) {
    return value.map(unwrapSecrets);
  }
  if (value !== null && typeof value === "object") {
    const obj = value as Record<string, unknown>;
    if (obj[specialSigKey] === specialSecretSig) {
      return unwrapSecrets(obj.value);
    }
    if (pulumi.Resource.isInstance(obj)) {
      return "[resource]";
    }
    return Object.fromEntries(Object.entries(obj).map(([k, v]) => [k, unwrapSecrets(v)]));
  }
  return value;
}

function maskSecrets(value: unknown): unknown {
  if (Array.isArray(value)) {
    return value.map(maskSecrets);
  }
  if (value !== null && typeof value === "object") {
    const obj = value as Record<string, unknown>;
    if (obj[specialSigKey] === specialSecretSig) {
      return SECRET_PLACEHOLDER;
    }
    if (pulumi.Resource.isInstance(obj)) {
      return "[resource]";
    }
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(obj).sort()) {
      out[k] = maskSecrets(obj[k]);
    }
    return out;
  }
  return value;
}

async function waitForRpcs(): Promise<void> {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const settings = require("@pulumi/pulumi/runtime/settings") as {
    waitForRPCs?: () => Promise<void>;
  };
  await settings.waitForRPCs?.();
}

/** A short stable hash of a string, for deterministic mock ids and addresses. */
export function stableHash(s: string): number {
  let h = 2166136261;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 16777619);
  }
  return h >>> 0;
}

/**
 * The private addresses the mocks give the network interface `name`: its primary, then one
 * secondary, in one 10.20.x.0/24. Both are host addresses (10..254) and never equal; the secondary
 * is primary + 128 while that stays below 255, else it wraps to 10..20 (it once gave x.256).
 */
export function mockEniAddresses(name: string): [string, string] {
  const h = stableHash(`aws:ec2/networkInterface:NetworkInterface::${name}`);
  const subnet = `10.20.${(h >> 8) & 0xff}`;
  const host = h & 0x7f; // 0..127
  return [`${subnet}.${host + 10}`, `${subnet}.${((host + 128) % 245) + 10}`];
}

function hex(s: string, len: number): string {
  let out = "";
  let i = 0;
  while (out.length < len) {
    out += stableHash(`${s}#${i++}`).toString(16).padStart(8, "0");
  }
  return out.slice(0, len);
}

const ID_PREFIX: Record<string, string> = {
  "aws:ec2/instance:Instance": "i-",
  "aws:ebs/volume:Volume": "vol-",
  "aws:ec2/securityGroup:SecurityGroup": "sg-",
  "aws:ec2/eip:Eip": "eipalloc-",
  "aws:ec2/networkInterface:NetworkInterface": "eni-",
  "aws:ec2/vpc:Vpc": "vpc-",
  "aws:ec2/subnet:Subnet": "subnet-",
};

function mockResourceState(
  args: pulumi.runtime.MockResourceArgs,
  previousOutputs: Record<string, unknown> | undefined,
): { id: string; state: Record<string, unknown> } {
  const h = stableHash(`${args.type}::${args.name}`);
  const id =
    (ID_PREFIX[args.type] ?? "") + (ID_PREFIX[args.type] ? hex(args.name, 17) : `${args.name}-id`);
  // Providers auto-name resources that have no explicit name (logical name + random suffix).
  const state: Record<string, unknown> = {
    name: `${args.name}-${hex(args.name, 7)}`,
    ...args.inputs,
  };
  switch (args.type) {
    case "pulumi:pulumi:StackReference":
      return {
        id: args.inputs.name as string,
        state: { ...state, outputs: previousOutputs ?? {} },
      };
    case "aws:ec2/instance:Instance":
      state.privateIp = `10.20.${(h >> 8) & 0xff}.${(h & 0x7f) + 10}`;
      state.publicIp = "";
      state.arn = `arn:aws:ec2:region:123456789012:instance/${id}`;
      break;
    case "aws:ec2/networkInterface:NetworkInterface": {
      const ips = mockEniAddresses(args.name);
      state.privateIp = ips[0];
      state.privateIps = ips;
      break;
    }
    case "aws:ec2/eip:Eip":
      state.publicIp = `198.51.100.${(h % 250) + 2}`;
      state.allocationId = id;
      break;
    case "aws:route53/zone:Zone":
      state.zoneId = `Z${hex(args.name, 13).toUpperCase()}`;
      state.nameServers = ["ns-1.awsdns-00.org", "ns-2.awsdns-00.net"];
      break;
    case "random:index/randomPassword:RandomPassword":
      state.result = `mock-${hex(args.name, 24)}`;
      break;
    case "tls:index/privateKey:PrivateKey":
      state.publicKeyOpenssh = `ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI${hex(args.name, 40)}\n`;
      state.privateKeyOpenssh = `-----BEGIN OPENSSH PRIVATE KEY-----\n${hex(args.name, 64)}\n-----END OPENSSH PRIVATE KEY-----\n`;
      state.privateKeyPem = state.privateKeyOpenssh;
      // A PEM public key (DKIM records are rendered from it); its bytes are a mock, not a key.
      state.publicKeyPem = `-----BEGIN PUBLIC KEY-----\n${Buffer.from(hex(args.name, 294)).toString("base64")}\n-----END PUBLIC KEY-----\n`;
      break;
    case "tls:index/selfSignedCert:SelfSignedCert":
    case "tls:index/locallySignedCert:LocallySignedCert":
      // A PEM certificate (mock bytes): a CA's certPem is a required input of the certs it signs.
      state.certPem = `-----BEGIN CERTIFICATE-----\n${Buffer.from(hex(args.name, 96)).toString("base64")}\n-----END CERTIFICATE-----\n`;
      break;
    case "tls:index/certRequest:CertRequest":
      state.certRequestPem = `-----BEGIN CERTIFICATE REQUEST-----\n${Buffer.from(hex(args.name, 96)).toString("base64")}\n-----END CERTIFICATE REQUEST-----\n`;
      break;
    case "aws:kms/key:Key":
      state.keyId = id;
      state.arn = `arn:aws:kms:region:123456789012:key/${id}`;
      break;
    case "aws:sns/topic:Topic":
      state.arn = `arn:aws:sns:region:123456789012:${args.name}`;
      break;
    default:
      if (!state.arn) {
        state.arn = `arn:aws:mock:region:123456789012:${args.type.split(":").pop()}/${id}`;
      }
  }
  return { id, state };
}

function mockCall(args: pulumi.runtime.MockCallArgs): Record<string, unknown> {
  switch (args.token) {
    case "aws:route53/getZone:getZone": {
      const name = (args.inputs.name as string | undefined) ?? "example.co.id";
      const zoneId =
        (args.inputs.zoneId as string | undefined) ?? `Z${hex(name, 13).toUpperCase()}`;
      return { ...args.inputs, id: zoneId, zoneId, name };
    }
    case "aws:index/getIpRanges:getIpRanges":
      // A few of the published Route 53 health-checker ranges, enough to exercise the rule.
      return {
        ...args.inputs,
        id: "route53_healthchecks",
        cidrBlocks: ["15.177.0.0/18", "54.228.16.0/26", "54.232.40.64/26", "107.23.255.0/26"],
        ipv6CidrBlocks: [],
      };
    case "aws:ec2/getVpc:getVpc":
      // An existing VPC's range (the mysql pair limits its accounts to it).
      return { ...args.inputs, cidrBlock: "10.20.0.0/16" };
    case "aws:index/getRegion:getRegion":
      return { name: "ap-southeast-3", region: "ap-southeast-3", id: "ap-southeast-3" };
    case "aws:index/getCallerIdentity:getCallerIdentity":
      return {
        accountId: "123456789012",
        arn: "arn:aws:iam::123456789012:user/mock",
        userId: "mock",
      };
    default:
      return args.inputs;
  }
}
