// `npm run rehearse -- stack`: the whole stack as a system on this machine (issue 11). Every
// instance of the stack's offline synth boots as a Debian 12 systemd-nspawn container from its
// exact user-data (NoCloud seed), wired as on AWS (network.ts, nft.ts), calling stand-ins for
// IMDSv2, SSM Parameter Store and Route 53 (standins.ts, dns.ts); then checks.ts tries the
// services and the declared flows for real. Drills on the booted stack (issue 12) plug in after
// the checks, on the same `Rehearsal` object.
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import { ChildProcess, execFileSync, spawn } from "child_process";
import { parse as parseYaml } from "yaml";
import { PACKAGE_ROOT } from "../../package-root";
import { InspectedResource, synthesize } from "../../synth/offline-synth";
import { Drill, DrillUsageError, findBinary, runDrill } from "../drill";
import { ensureImage } from "./image";
import { caSignedCertificate } from "./pki";
import { StackModel, buildModel } from "./model";
import { RehearsalNet, createNetwork } from "./network";
import { generateParameters, parameterTail } from "./secrets";
import {
  CommandContext,
  RemoteCommandError,
  RemoteCommandSpec,
  remoteCommandsOf,
  runRemoteCommandsWhenReady,
} from "./commands";
import { RehearsalLock, takeLock } from "./lock";
import {
  renderExtraZoneFile,
  renderNamedConf,
  renderUnboundConf,
  renderZoneFile,
  rndcConf,
} from "./dns";
import { StandInConfig } from "./standins";
import { NSPAWN_RUN_DIR, Teardown, isMounted } from "./teardown";
import { ContainerSpec, machineName, rehearsalId, startContainer, writeServers } from "./container";
import { CheckReport, runChecks } from "./checks";

export interface StackOptions {
  stack: string;
  drills: "none";
  keep: boolean;
  down: boolean;
  /** Seconds to wait for every server's cloud-init. Defaults to 1800. */
  bootTimeout: number;
  /** Seconds to wait for another rehearsal's lock on this machine. Defaults to 0. */
  lockWait: number;
}

export const USAGE = [
  "usage: npm run rehearse -- stack [--stack NAME] [--drills none|all|LIST] [--keep] [--down] [--boot-timeout S] [--lock-wait S]",
  "       npm run rehearse -- stack --apply BEFORE.json AFTER.json [--stack NAME]",
  "  Boots every server of the stack's offline synth as a Debian 12 container from its exact",
  "  user-data, on an isolated copy of the VPC with its security groups, IMDSv2, SSM and Route 53",
  "  stand-ins; checks cloud-init, systemd, the services and the declared flows. Needs root.",
  "  --stack NAME      stack to synthesize (Pulumi.NAME.yaml). Defaults to prod.",
  "  --drills LIST     drills on the booted stack after the checks, comma-separated, or all;",
  "                    none (the default) boots and checks only. Built: mysql (not yet: mail,",
  "                    pbx, nas, migration).",
  "  --apply B A       apply what changes from synth file B to A to a stack left up by --keep.",
  "  --keep            leave the stack up and print how to enter each server.",
  "  --down            remove a stack left up by --keep, and nothing else.",
  "  --boot-timeout S  seconds to wait for cloud-init on every server. Defaults to 1800.",
  "  --lock-wait S     seconds to wait while another rehearsal runs on this machine (one at a",
  "                    time: they share the cores). Defaults to 0: refuse, naming the holder.",
].join("\n");

export const RUN_ROOT = process.env.HASTACK_REHEARSAL_DIR ?? "/var/lib/hastack-rehearsal";
const ACCOUNT = "123456789012";

export function parseStackArgs(args: string[]): StackOptions & { help?: boolean } {
  const o: StackOptions & { help?: boolean } = {
    stack: "prod",
    drills: "none",
    keep: false,
    down: false,
    bootTimeout: 1800,
    lockWait: 0,
  };
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    const value = (): string => {
      const v = args[++i];
      if (v === undefined || v.startsWith("--")) {
        throw new DrillUsageError(`${a} needs a value`);
      }
      return v;
    };
    if (a === "--help" || a === "-h") {
      o.help = true;
    } else if (a === "--stack") {
      o.stack = value();
      if (!/^[A-Za-z0-9_.-]+$/.test(o.stack)) {
        throw new DrillUsageError(
          `--stack must be a stack name (letters, digits, _ . -), got ${JSON.stringify(o.stack)}`,
        );
      }
    } else if (a === "--drills") {
      const d = value();
      if (d !== "none") {
        throw new DrillUsageError(
          `--drills ${d}: drills on the booted stack are not built yet (issue 12); use --drills none`,
        );
      }
    } else if (a === "--keep") {
      o.keep = true;
    } else if (a === "--down") {
      o.down = true;
    } else if (a === "--boot-timeout") {
      const v = Number(value());
      if (!Number.isInteger(v) || v < 60) {
        throw new DrillUsageError("--boot-timeout must be a whole number of seconds, at least 60");
      }
      o.bootTimeout = v;
    } else if (a === "--lock-wait") {
      const v = Number(value());
      if (!Number.isInteger(v) || v < 0) {
        throw new DrillUsageError("--lock-wait must be a whole number of seconds, 0 or more");
      }
      o.lockWait = v;
    } else {
      throw new DrillUsageError(`unknown flag ${a}`);
    }
  }
  if (o.keep && o.down) {
    throw new DrillUsageError("--keep and --down exclude each other");
  }
  return o;
}

/** What a booted rehearsal holds; drills (issue 12) receive it. */
export interface Rehearsal {
  model: StackModel;
  net: RehearsalNet;
  dir: string;
  adminKey: string;
  mailUser?: { user: string; password: string };
  containers: { name: string; nspawnPid: number; root: string; ns: string }[];
  standInLog: string;
  checkerStatus: string;
}

let teardown: Teardown | undefined;
let keepUp = false;
let lock: RehearsalLock | undefined;

/**
 * One rehearsal at a time on a machine (lock.ts), whatever its HASTACK_REHEARSAL_DIR: the cores are
 * what they share. The issue-12 drills take the same lock.
 */
export const LOCK_FILE = process.env.HASTACK_REHEARSAL_LOCK ?? "/var/lib/hastack-rehearsal/lock";

function stateFile(stack: string): string {
  return path.join(RUN_ROOT, stack, "made.json");
}

function sh(cmd: string, args: string[], input?: string): string {
  return execFileSync(cmd, args, {
    encoding: "utf8",
    input,
    stdio: [input === undefined ? "ignore" : "pipe", "pipe", "pipe"],
    maxBuffer: 16 * 1024 * 1024,
  });
}

/** Packages the user-data of every server installs (cloud-config `packages:`). */
export function userDataPackages(model: StackModel): string[] {
  const out = new Set<string>();
  for (const s of model.servers) {
    const text = s.userData.toString("utf8");
    if (!text.startsWith("#cloud-config")) {
      continue;
    }
    const doc = parseYaml(text) as { packages?: unknown[] };
    for (const p of doc.packages ?? []) {
      out.add(Array.isArray(p) ? `${String(p[0])}=${String(p[1])}` : String(p));
    }
  }
  return [...out].sort();
}

export function readStackSettings(stack: string): {
  adminCidrs: string[];
  region: string;
  domain: string;
} {
  const file = path.join(PACKAGE_ROOT, `Pulumi.${stack}.yaml`);
  const doc = parseYaml(fs.readFileSync(file, "utf8")) as { config?: Record<string, unknown> };
  const c = doc.config ?? {};
  const domain = String(c["hastack:domain"] ?? "");
  return {
    adminCidrs: (c["hastack:adminCidrs"] as string[] | undefined) ?? [],
    region: String(c["aws:region"] ?? "us-east-1"),
    domain,
  };
}

/** Binaries the rehearsal runs on this machine; `missingTools()` lists the absent ones. */
export const REQUIRED = [
  "systemd-nspawn",
  "mmdebstrap",
  "named",
  "unbound",
  "rndc",
  "nft",
  "ip",
  "nsenter",
  "openssl",
  "ssh-keygen",
  "ssh",
  "ssh-keyscan",
  "dig",
  "dpkg-scanpackages",
  "flock",
];

export function missingTools(): string[] {
  return REQUIRED.filter((b) => !findBinary(b));
}

/**
 * Runs the rehearsal and removes everything it started unless --keep (runDrill's exit hook covers
 * signals only: it is detached before a drill's normal return).
 */
async function run(
  o: StackOptions,
  log: (l: string) => void,
): Promise<{ passed: boolean; problems: string[]; summary: string }> {
  try {
    return await rehearse(o, log);
  } finally {
    drill.cleanupSync();
    lock?.release();
    lock = undefined;
  }
}

async function rehearse(
  o: StackOptions,
  log: (l: string) => void,
): Promise<{ passed: boolean; problems: string[]; summary: string }> {
  let started = Date.now();
  if (process.getuid?.() !== 0) {
    throw new Error("the stack rehearsal needs root (network namespaces, mounts, containers)");
  }
  const missing = missingTools();
  if (missing.length > 0) {
    throw new Error(`missing ${missing.join(", ")}: run test/install-deps.sh`);
  }
  lock = await takeLock(LOCK_FILE, o.stack, o.lockWait, log);
  // "seconds" is the rehearsal's own time, not the wait for another one.
  started = Date.now();
  const timings: Record<string, number> = {};
  let phaseStarted = Date.now();
  const phase = (name: string): void => {
    timings[name] = Math.round((Date.now() - phaseStarted) / 1000);
    phaseStarted = Date.now();
  };
  teardown = new Teardown(stateFile(o.stack));
  // --keep keeps a failed rehearsal up too: that is when one wants to look inside.
  keepUp = o.keep;
  if (o.down) {
    const n = teardown.items.length;
    const failed = teardown.runSync(log);
    log(
      n === 0
        ? `no rehearsal of stack ${o.stack} is up`
        : `removed the rehearsal of stack ${o.stack} (${n} items)`,
    );
    return {
      passed: failed.length === 0,
      problems: failed,
      summary: JSON.stringify({ down: o.stack, removed: n, failed }),
    };
  }
  if (teardown.items.length > 0) {
    throw new Error(
      `a rehearsal of stack ${o.stack} is up (--keep) or was killed before its cleanup: run \`npm run rehearse -- stack --stack ${o.stack} --down\` first`,
    );
  }

  log(`synthesizing stack ${o.stack}`);
  const settings = readStackSettings(o.stack);
  // Unmasked inputs too: the remote commands' connections and environments are secrets.
  let unmasked: InspectedResource[] = [];
  const deployment = await synthesize({
    projectDir: PACKAGE_ROOT,
    stack: o.stack,
    inspect: (rs) => (unmasked = rs),
  });
  const model = buildModel(deployment, settings.adminCidrs, settings.region);
  // The PBX's activation commands stop and start Asterisk and run FreePBX's `fwconsole reload`
  // (issue 16); neither is in Debian, so they cannot run here. They are listed in notRehearsed,
  // and every other command runs (nothing depends on them: the EIP association waits for them).
  const pbxHosts = new Set(
    model.servers.filter((s) => s.service === "pbx").map((s) => s.publicIp ?? ""),
  );
  const allCommands = remoteCommandsOf(deployment, unmasked);
  const commands = allCommands.filter((c) => !pbxHosts.has(c.host));
  const commandsNotRun = allCommands.filter((c) => pbxHosts.has(c.host) && c.create !== undefined);
  // A password the stack generates (random.RandomPassword) is also in the remote commands'
  // environment (the accounts they create): the SSM parameter must hold that same value.
  for (const p of model.parameters) {
    const v = unmasked.find(
      (r) => r.type === "aws:ssm/parameter:Parameter" && r.inputs.name === p.name,
    )?.inputs.value;
    if (p.value === undefined && /password$/.test(p.name) && typeof v === "string") {
      p.value = v;
    }
  }
  phase("synth");
  const domain = settings.domain || model.zones.find((z) => !z.private)?.name || "example.com";
  log(`${model.servers.length} servers: ${model.servers.map((s) => s.name).join(", ")}`);

  const packages = userDataPackages(model);
  const image = ensureImage(packages, log);
  log(
    image.built
      ? `base image ${image.key} built in ${image.seconds.toFixed(0)} s`
      : `base image ${image.key} from the cache`,
  );
  phase("image");

  const dir = path.join(RUN_ROOT, o.stack);
  fs.mkdirSync(dir, { recursive: true });
  teardown.add({ kind: "dir", path: dir });
  // Namespace names from the stack and the state directory: a stack left up (--keep) under another
  // HASTACK_REHEARSAL_DIR keeps its names, this run gets its own.
  const id = rehearsalId(RUN_ROOT, o.stack);

  // nspawn's state directory on a tmpfs (it cleans its propagation directories only there),
  // shared by every rehearsal on the machine and so never recorded for teardown (teardown.ts).
  if (!isMounted(NSPAWN_RUN_DIR)) {
    fs.mkdirSync(NSPAWN_RUN_DIR, { recursive: true });
    sh("mount", ["-t", "tmpfs", "tmpfs", NSPAWN_RUN_DIR]);
  }

  log("creating the rehearsal network (router and server namespaces, security groups)");
  const net = createNetwork(model, id, dir, teardown);
  phase("network");

  // Secrets, the admin's key pair, the SSM stand-in's certificate.
  const secrets = generateParameters(model, domain);
  const adminKey = path.join(dir, "admin-key");
  sh("ssh-keygen", [
    "-q",
    "-t",
    "ed25519",
    "-N",
    "",
    "-C",
    "hastack-rehearsal-admin",
    "-f",
    adminKey,
  ]);
  const adminPub = fs.readFileSync(`${adminKey}.pub`, "utf8").trim();
  const ssmName = `ssm.${model.region}.amazonaws.com`;
  caSignedCertificate({
    dnsName: ssmName,
    days: 30,
    caCert: image.caCert,
    caKey: image.caKey,
    keyFile: path.join(dir, "ssm.key"),
    certFile: path.join(dir, "ssm.crt"),
  });

  // DNS: bind9 authoritative for the synth's zones and the stand-in endpoints; unbound resolves.
  const dnsDir = path.join(dir, "dns");
  fs.mkdirSync(dnsDir, { recursive: true });
  const extraZones = [{ name: ssmName, address: net.addresses.ssm }];
  const serial = Math.floor(Date.now() / 1000);
  for (const z of model.zones) {
    fs.writeFileSync(path.join(dnsDir, `${z.name}.zone`), renderZoneFile(z, {}, serial));
  }
  for (const z of extraZones) {
    fs.writeFileSync(path.join(dnsDir, `${z.name}.zone`), renderExtraZoneFile(z, serial));
  }
  const rndcSecret = crypto.randomBytes(32).toString("base64");
  fs.writeFileSync(
    path.join(dnsDir, "named.conf"),
    renderNamedConf(
      dnsDir,
      [...model.zones.map((z) => z.name), ...extraZones.map((z) => z.name)],
      rndcSecret,
    ),
  );
  fs.writeFileSync(path.join(dnsDir, "rndc.conf"), rndcConf(rndcSecret));
  fs.writeFileSync(
    path.join(dnsDir, "unbound.conf"),
    renderUnboundConf(dnsDir, net.addresses.resolver),
  );
  startDaemon(
    net.router,
    ["named", "-g", "-c", path.join(dnsDir, "named.conf")],
    path.join(dnsDir, "named.log"),
    "named",
  );
  startDaemon(
    net.router,
    ["unbound", "-d", "-c", path.join(dnsDir, "unbound.conf")],
    path.join(dnsDir, "unbound.out"),
    "unbound",
  );

  // IMDS, SSM, health checkers.
  const standInConfig: StandInConfig = {
    account: ACCOUNT,
    region: model.region,
    imdsAddress: net.addresses.imds,
    ssm: {
      address: net.addresses.ssm,
      certFile: path.join(dir, "ssm.crt"),
      keyFile: path.join(dir, "ssm.key"),
    },
    servers: model.servers.map((s, i) => ({
      name: s.name,
      instanceId: s.instanceId,
      privateIp: s.privateIp,
      secondaryIps: s.secondaryIps,
      publicIp: s.publicIp,
      mac: s.mac,
      region: model.region,
      az: `${model.region}${s.subnetId.endsWith("2") || i % 2 === 1 ? "b" : "a"}`,
      hostname: `ip-${s.privateIp.replace(/\./g, "-")}.${model.region}.compute.internal`,
      vpcCidr: model.vpcCidr,
      roleName: s.roleName,
      policy: s.policy,
      securityGroups: s.securityGroups,
      sshPublicKey: adminPub,
      userData: s.userData.toString("utf8"),
    })),
    parameters: secrets.values,
    // Every EIP where the synth associates it (a service EIP on a secondary address included):
    // IMDS lists them as AWS does; an `--apply` EIP move rewrites this.
    eips: model.nat.map(({ publicIp, privateIp }) => ({ publicIp, privateIp })),
    checker: { source: net.addresses.checker, statusFile: path.join(dir, "health.json") },
    healthChecks: model.healthChecks,
    dns: { dir: dnsDir, zones: model.zones, extraZones, rndcConf: path.join(dnsDir, "rndc.conf") },
    logFile: path.join(dir, "standins.log"),
  };
  fs.writeFileSync(path.join(dir, "standins.json"), JSON.stringify(standInConfig));
  fs.chmodSync(path.join(dir, "standins.json"), 0o600);
  startDaemon(
    net.router,
    [process.execPath, path.join(__dirname, "standins.js"), path.join(dir, "standins.json")],
    path.join(dir, "standins.out"),
    "stand-ins",
  );
  await waitFor(
    () =>
      fs.existsSync(path.join(dir, "health.json")) &&
      fs.readFileSync(standInConfig.logFile, "utf8").includes("ssm on"),
    30,
    "the stand-ins to listen",
  );
  await waitFor(
    () => dnsAnswers(net.router, net.addresses.resolver, ssmName),
    60,
    "named and unbound to answer",
  );
  phase("standIns");

  // Containers: an overlay on the base image, the NoCloud seed beside the exact user-data.
  const containers: Rehearsal["containers"] = [];
  const specs: ContainerSpec[] = [];
  // The servers' writable layers on a tmpfs: gigabytes of installed packages go with one umount
  // instead of minutes of unlinking on a loaded disk.
  const serversDir = path.join(dir, "servers");
  fs.mkdirSync(serversDir, { recursive: true });
  sh("mount", ["-t", "tmpfs", "-o", "size=16g,mode=0755", "hastack-rehearsal", serversDir]);
  teardown.add({ kind: "mount", target: serversDir });
  model.servers.forEach((s, i) => {
    const sdir = path.join(dir, "servers", s.name);
    for (const d of ["upper", "work", "root", "data"]) {
      fs.mkdirSync(path.join(sdir, d), { recursive: true });
    }
    const root = path.join(sdir, "root");
    sh("mount", [
      "-t",
      "overlay",
      "overlay",
      "-o",
      `lowerdir=${image.root},upperdir=${sdir}/upper,workdir=${sdir}/work`,
      root,
    ]);
    teardown!.add({ kind: "mount", target: root });
    const seed = path.join(root, "var/lib/cloud/seed/nocloud");
    fs.mkdirSync(seed, { recursive: true });
    fs.writeFileSync(path.join(seed, "user-data"), s.userData);
    fs.writeFileSync(
      path.join(seed, "meta-data"),
      [
        `instance-id: ${s.instanceId}`,
        `local-hostname: ${standInConfig.servers[i].hostname.split(".")[0]}`,
        "public-keys:",
        `  - ${adminPub}`,
        "",
      ].join("\n"),
    );
    fs.writeFileSync(
      path.join(seed, "network-config"),
      [
        "version: 2",
        "ethernets:",
        "  ens5:",
        // By name: cloud-init waits for a matched MAC only on physical devices, and a veth is not.
        `    addresses: [${s.privateIp}/${model.vpcCidr.split("/")[1]}]`,
        "    routes:",
        `      - to: 0.0.0.0/0`,
        `        via: ${net.addresses.gateway}`,
        "    nameservers:",
        `      addresses: [${net.addresses.resolver}]`,
        "",
      ].join("\n"),
    );
    // What Debian's AWS AMI configures: its default user is "admin" (hastack:sshUser).
    fs.writeFileSync(
      path.join(root, "etc/cloud/cloud.cfg.d/91-hastack-ami.cfg"),
      "system_info:\n  default_user:\n    name: admin\n    lock_passwd: true\n    gecos: Debian\n    groups: [adm]\n    sudo: ['ALL=(ALL) NOPASSWD:ALL']\n    shell: /bin/bash\n",
    );
    // What the VPC's DHCP options give an instance: the resolver. Not user-data.
    fs.rmSync(path.join(root, "etc/resolv.conf"), { force: true });
    fs.writeFileSync(
      path.join(root, "etc/resolv.conf"),
      `nameserver ${net.addresses.resolver}\nsearch ${model.region}.compute.internal\n`,
    );
    const spec: ContainerSpec = {
      name: s.name,
      machine: machineName(id, s.name),
      root,
      ns: net.serverNs[i],
      data: path.join(sdir, "data"),
      console: path.join(sdir, "console.log"),
      privateIp: s.privateIp,
    };
    specs.push(spec);
    writeServers(dir, specs, id);
    const pid = startContainer(spec, id, teardown!);
    containers.push({ name: s.name, nspawnPid: pid, root, ns: net.serverNs[i] });
    log(`${s.name}: booting (${s.privateIp}${s.publicIp ? `, EIP ${s.publicIp}` : ""})`);
  });

  const rehearsal: Rehearsal = {
    model,
    net,
    dir,
    adminKey,
    mailUser: secrets.mailUser,
    containers,
    standInLog: standInConfig.logFile,
    checkerStatus: standInConfig.checker.statusFile,
  };
  phase("containersStarted");
  // The remote commands start now, as `pulumi up` creates each once the instances it needs
  // exist, not after every boot: the MySQL pair's accounts (the PBX's database among them) are
  // there while the other servers still boot. Each dials once its host's sshd listens (an
  // instance's sshd comes up well within the provider's dial budget on AWS; a container on two
  // busy cores takes minutes), then with the provider's own dial schedule (commands.ts).
  const commandsRun = runStackCommands(rehearsal, commands, secrets.values, log, async (spec) => {
    const server = model.servers.find((s) => s.publicIp === spec.host);
    const c = containers.find((x) => x.name === server?.name);
    if (!c) {
      throw new Error(`${spec.urn}: ${spec.host} is no server's EIP`);
    }
    await waitFor(
      () => sshdListens(c.nspawnPid, spec.port),
      o.bootTimeout,
      `${c.name}'s sshd to listen (remote command ${spec.name})`,
    );
  });
  const report: CheckReport = await runChecks(rehearsal, o.bootTimeout, log, () => commandsRun);
  const seconds = Math.round((Date.now() - started) / 1000);
  const summary = {
    stack: o.stack,
    servers: model.servers.length,
    booted: report.booted,
    cloudInitErrors: report.cloudInitErrors,
    failedUnits: report.failedUnits,
    services: report.services,
    flows: report.flows,
    notRehearsed: [
      ...report.notRehearsed,
      // Found by the speed work (2026-11-30): mmdebstrap's build environment downloads without
      // Recommends, so apt on the servers skips them where an instance installs them.
      "the Recommends of the user-data's packages (an instance installs them from the Debian mirror; the image's local repository holds Depends only, e.g. mail's prometheus-node-exporter-collectors, opendkim-tools, libsasl2-modules)",
      ...(commandsNotRun.length > 0
        ? [
            `remote commands on the PBX servers (${commandsNotRun.map((c) => c.name).join(", ")}): they stop and start Asterisk and run FreePBX's fwconsole reload, not in Debian 12`,
          ]
        : []),
    ],
    remoteCommands: commands.map((c) => c.name),
    image: { key: image.key, built: image.built, buildSeconds: Math.round(image.seconds) },
    timings: { ...timings, ...report.timings },
    seconds,
  };
  if (o.keep) {
    log(
      `left up (--keep). Enter a server: nsenter -t $(cat /proc/<nspawn-pid>/task/*/children | head -1) -a -- /bin/bash -l`,
    );
    for (const c of containers) {
      log(
        `  ${c.name}: nsenter -t ${leaderPid(c.nspawnPid) ?? "?"} -a -- /bin/bash -l    (or ssh -i ${adminKey} admin@<EIP> from the router: ip netns exec ${net.router} ssh -b ${net.addresses.admin} …)`,
      );
    }
    log(`remove it with: npm run rehearse -- stack --stack ${o.stack} --down`);
  }
  return {
    passed: report.problems.length === 0,
    problems: report.problems,
    summary: JSON.stringify(summary),
  };
}

/**
 * Runs the synth's remote commands as `pulumi up` would once the instances exist: from the admin
 * address (the deployer's side of the security groups), to each command's host (an EIP), with
 * the rehearsal's stand-ins for what the synth cannot show — the deploy key (secure config:
 * the admin key the meta-data installs) and each server's real host key (the public half of the
 * key its SSM parameter holds; the synth's is a mock). Returns the problems (first failure).
 */
async function runStackCommands(
  r: Rehearsal,
  commands: ReturnType<typeof remoteCommandsOf>,
  parameters: Record<string, { value: string }>,
  log: (l: string) => void,
  ready: (spec: RemoteCommandSpec) => Promise<void>,
): Promise<string[]> {
  const services = [...new Set(r.model.servers.map((s) => s.service))];
  const privateKey = fs.readFileSync(r.adminKey, "utf8");
  const hostKeys = new Map<string, string>();
  for (const s of r.model.servers) {
    const name = Object.keys(parameters).find(
      (n) => parameterTail(n, services) === `${s.service}/ssh-host-key/${s.role}`,
    );
    if (s.publicIp && name) {
      const f = path.join(r.dir, `host-key-${s.name}`);
      fs.writeFileSync(f, parameters[name].value, { mode: 0o600 });
      hostKeys.set(s.publicIp, sh("ssh-keygen", ["-y", "-f", f]).trim());
      fs.rmSync(f);
    }
  }
  const ctx: CommandContext = {
    via: ["ip", "netns", "exec", r.net.router],
    bindAddress: r.net.addresses.admin,
    connect: (spec) => {
      const hostKey = hostKeys.get(spec.host);
      if (spec.hostKey !== undefined && hostKey === undefined) {
        // Never drop a pinned key: a host with no known key is an error, not a trust-on-first-use.
        throw new Error(`${spec.urn}: ${spec.host} is no server's EIP with a host key parameter`);
      }
      return { privateKey, hostKey: spec.hostKey === undefined ? undefined : hostKey };
    },
  };
  try {
    await runRemoteCommandsWhenReady(commands, ctx, ready, log);
    return [];
  } catch (e) {
    const tail =
      e instanceof RemoteCommandError ? `\n${e.stderr.split("\n").slice(-15).join("\n")}` : "";
    return [`remote command failed: ${(e as Error).message}${tail}`];
  }
}

/** Whether a listening TCP socket on `port` is in the container's network namespace. */
export function sshdListens(nspawnPid: number, port: number): boolean {
  const leader = leaderPid(nspawnPid);
  if (leader === undefined) {
    return false;
  }
  const hexPort = port.toString(16).toUpperCase().padStart(4, "0");
  return ["tcp", "tcp6"].some((f) => {
    try {
      // local_address is "ADDR:PORT" in hex, st 0A is LISTEN.
      return fs
        .readFileSync(`/proc/${leader}/net/${f}`, "utf8")
        .split("\n")
        .slice(1)
        .some((l) => {
          const cols = l.trim().split(/\s+/);
          return cols[1]?.endsWith(`:${hexPort}`) && cols[3] === "0A";
        });
    } catch {
      return false;
    }
  });
}

/** PID 1 of a container: the child of its systemd-nspawn process. */
export function leaderPid(nspawnPid: number): number | undefined {
  try {
    const kids = fs
      .readdirSync(`/proc/${nspawnPid}/task`)
      .flatMap((t) =>
        fs.readFileSync(`/proc/${nspawnPid}/task/${t}/children`, "utf8").trim().split(/\s+/),
      )
      .filter(Boolean)
      .map(Number);
    return kids[0];
  } catch {
    return undefined;
  }
}

function startDaemon(ns: string, argv: string[], logFile: string, what: string): ChildProcess {
  const out = fs.openSync(logFile, "a");
  const child = spawn("ip", ["netns", "exec", ns, ...argv], {
    stdio: ["ignore", out, out],
    detached: true,
  });
  fs.closeSync(out);
  child.unref();
  teardown!.add({ kind: "process", pid: child.pid!, what });
  return child;
}

function dnsAnswers(ns: string, server: string, name: string): boolean {
  try {
    return (
      sh("ip", [
        "netns",
        "exec",
        ns,
        "dig",
        "+short",
        "+time=2",
        "+tries=1",
        `@${server}`,
        name,
        "A",
      ]).trim().length > 0
    );
  } catch {
    return false;
  }
}

export async function waitFor(
  cond: () => boolean | Promise<boolean>,
  seconds: number,
  what: string,
): Promise<void> {
  const until = Date.now() + seconds * 1000;
  while (Date.now() < until) {
    if (await cond()) {
      return;
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
  throw new Error(`gave up after ${seconds} s waiting for ${what}`);
}

export const drill: Drill<StackOptions> = {
  usage: USAGE,
  parseArgs: parseStackArgs,
  run,
  cleanupSync(): void {
    if (teardown && !keepUp) {
      teardown.runSync((l) => process.stderr.write(`rehearse stack: ${l}\n`));
    }
  },
};

export function main(args: string[]): Promise<number> {
  return runDrill("stack", drill, args);
}
