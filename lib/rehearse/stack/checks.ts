// Checks on the booted stack (issue 11): cloud-init finished without error on every server, no
// failed systemd unit, the services answer where they should, and every flow of the declared
// table works from its real source address while a sample of undeclared flows is blocked.
// Every result comes from the real thing (a connection, a daemon's answer); none is assumed.
import * as fs from "fs";
import * as path from "path";
import { execFile } from "child_process";
import { promisify } from "util";
import { PACKAGE_ROOT } from "../../package-root";
import { answeredRecords } from "./dns";
import { RehearsalServer, StackModel } from "./model";
import { readCheckerStatus } from "./standins";
import type { Rehearsal } from "./index";

const execFileP = promisify(execFile);

/**
 * Units that fail only because the rehearsal has no route out (as issue 11 requires), each with
 * the journal words that prove it was that and nothing else. A match is listed in notRehearsed
 * instead of failedUnits; the same unit failing for any other reason stays a failure.
 */
export const NEEDS_THE_INTERNET: { unit: string; because: RegExp; notRehearsed: string }[] = [
  {
    unit: "hastack-mail-cert.service",
    because:
      /acme-v02\.api\.letsencrypt\.org.*(Temporary failure in name resolution|Failed to establish a new connection)/,
    notRehearsed:
      "ACME certificates from Let's Encrypt on the mail servers (no route out: hastack-mail-cert fails to reach acme-v02.api.letsencrypt.org and the self-signed first-boot certificate serves SMTP and IMAPS; the ACME flow is proven against pebble in test/server/mail/acme.test.ts)",
  },
];

export interface FlowSpec {
  from: string;
  /** Server name, or "" when the target is an address (health checker, world). */
  to: string;
  host: string;
  port: number;
  why: string;
  /** Source address when the source is the router (admin, world, health checker). */
  source?: string;
  /** Greeting the target must send (regexp), proving the service answered, not just the port. */
  greeting?: RegExp;
  http?: string;
  tls?: boolean;
}

export interface FlowResult extends FlowSpec {
  result: string;
  ok: boolean;
  detail: string;
}

export interface CheckReport {
  booted: number;
  cloudInitErrors: Record<string, string[]>;
  failedUnits: Record<string, string[]>;
  services: Record<string, string>;
  flows: {
    declared: number;
    ok: number;
    blockedAsExpected: number;
    violations: string[];
    /** Every declared flow tried, "from → to:port why: result". */
    tried: string[];
  };
  notRehearsed: string[];
  problems: string[];
  /** Seconds per phase: each server's boot to cloud-init's result, the remote commands, checks. */
  timings: {
    boot: Record<string, number>;
    /** Per server, seconds of each cloud-init stage (packages install in modules-final). */
    cloudInit: Record<string, Record<string, number>>;
    remoteCommands: number;
    checks: number;
  };
}

const ASTERISK_PORTS = new Set([5060, 5061]);

function find(model: StackModel, service: string, role: string): RehearsalServer | undefined {
  return model.servers.find((s) => s.service === service && s.role === role);
}

/** The flows the services need, each from its real source to its real target. */
export function declaredFlows(model: StackModel, admin: string, checker: string): FlowSpec[] {
  const flows: FlowSpec[] = [];
  const pairs = (svc: string): [RehearsalServer, RehearsalServer] | undefined => {
    const p = find(model, svc, "primary");
    const s = find(model, svc, "standby");
    return p && s ? [p, s] : undefined;
  };
  const add = (
    from: RehearsalServer,
    to: RehearsalServer,
    port: number,
    why: string,
    greeting?: RegExp,
  ): void => {
    flows.push({ from: from.name, to: to.name, host: to.privateIp, port, why, greeting });
  };
  const SSH = /^SSH-2\.0-/;
  const MARIADB = /mariadb|\d+\.\d+\.\d+/i;
  const mysql = pairs("mysql");
  if (mysql) {
    add(
      mysql[1],
      mysql[0],
      3306,
      "MariaDB replication: the standby reads the primary's binlog",
      MARIADB,
    );
    add(
      mysql[0],
      mysql[1],
      3306,
      "MariaDB replication after a switch (the old primary follows)",
      MARIADB,
    );
  }
  const mail = pairs("mail");
  if (mail) {
    add(mail[0], mail[1], 12345, "mail sync: doveadm dsync to the peer");
    add(mail[1], mail[0], 12345, "mail sync: doveadm dsync to the peer");
    add(mail[0], mail[1], 22, "mail peer sync over SSH", SSH);
    add(mail[1], mail[0], 22, "mail peer sync over SSH", SSH);
  }
  const pbx = pairs("pbx");
  if (pbx) {
    add(pbx[0], pbx[1], 22, "PBX config and spool sync to the standby", SSH);
    add(pbx[1], pbx[0], 22, "PBX sync back after a switch", SSH);
    for (const p of pbx) {
      for (const db of mysql ?? []) {
        add(p, db, 3306, "PBX CDRs to the MySQL pair", MARIADB);
      }
    }
  }
  const nas = pairs("nas");
  if (nas) {
    add(nas[0], nas[1], 22, "NAS replication to the standby NAS", SSH);
    add(nas[1], nas[0], 22, "NAS replication back after a switch", SSH);
    for (const n of nas) {
      for (const m of mail ?? []) {
        add(n, m, 22, "NAS pulls mail backups (rrsync over SSH)", SSH);
      }
      for (const p of pbx ?? []) {
        add(n, p, 22, "NAS pulls PBX backups (rrsync over SSH)", SSH);
      }
      for (const db of mysql ?? []) {
        add(n, db, 3306, "NAS pulls MySQL dumps", MARIADB);
      }
    }
  }
  for (const hc of model.healthChecks) {
    const target = model.nat.find((n) => n.publicIp === hc.ipAddress);
    flows.push({
      from: "route53-health-checker",
      to: target?.server ?? "",
      host: hc.ipAddress,
      port: hc.port,
      source: checker,
      why: `Route 53 health check ${hc.type} ${hc.port}${hc.path ?? ""}`,
      http: hc.type === "HTTP" ? (hc.path ?? "/") : undefined,
      // The path works when the agent answers at all; that it answers 200 is a service check.
      greeting: hc.type === "HTTP" ? /^HTTP\/1\.[01] \d{3} / : undefined,
    });
  }
  for (const s of model.servers) {
    if (s.publicIp) {
      flows.push({
        from: "admin",
        to: s.name,
        host: s.publicIp,
        port: 22,
        source: admin,
        why: "admin SSH from the admin CIDR",
        greeting: SSH,
      });
    }
  }
  return flows;
}

/** Flows nobody declared: each must be dropped on the way. */
export function undeclaredSamples(model: StackModel, world: string): FlowSpec[] {
  const out: FlowSpec[] = [];
  const mail = find(model, "mail", "primary");
  for (const db of model.servers.filter((s) => s.service === "mysql")) {
    if (mail) {
      out.push({
        from: mail.name,
        to: db.name,
        host: db.privateIp,
        port: 3306,
        why: "mail → MySQL (no mail flow needs the database)",
      });
    }
    if (db.publicIp) {
      out.push({
        from: "world",
        to: db.name,
        host: db.publicIp,
        port: 3306,
        source: world,
        why: "the world → MySQL",
      });
      out.push({
        from: "world",
        to: db.name,
        host: db.publicIp,
        port: 22,
        source: world,
        why: "the world → SSH",
      });
    }
  }
  for (const s of model.servers.filter((x) => x.service !== "mysql" && x.publicIp)) {
    out.push({
      from: "world",
      to: s.name,
      host: s.publicIp!,
      port: 22,
      source: world,
      why: "the world → SSH",
    });
  }
  return out;
}

async function run(
  cmd: string,
  args: string[],
  timeoutMs: number,
): Promise<{ code: number; out: string; err: string }> {
  try {
    const r = await execFileP(cmd, args, {
      timeout: timeoutMs,
      maxBuffer: 8 * 1024 * 1024,
      encoding: "utf8",
    });
    return { code: 0, out: r.stdout, err: r.stderr };
  } catch (e) {
    const x = e as { code?: number | string; stdout?: string; stderr?: string; message: string };
    return {
      code: typeof x.code === "number" ? x.code : 124,
      out: x.stdout ?? "",
      err: x.stderr || x.message,
    };
  }
}

/** Runs argv inside a container (all its namespaces and root). */
export function inContainer(
  leader: number,
  argv: string[],
  timeoutMs = 60000,
): Promise<{ code: number; out: string; err: string }> {
  return run(
    "nsenter",
    [
      "-t",
      String(leader),
      "-m",
      "-u",
      "-i",
      "-n",
      "-p",
      "-r",
      "-w",
      "--",
      "/usr/bin/env",
      "-i",
      "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
      "HOME=/root",
      "LANG=C.UTF-8",
      ...argv,
    ],
    timeoutMs,
  );
}

async function probe(
  ns: string,
  f: FlowSpec,
): Promise<{ result: string; greeting: string; error?: string }> {
  const args = [
    "netns",
    "exec",
    ns,
    "/usr/bin/python3",
    path.join(PACKAGE_ROOT, "lib/rehearse/stack/probe.py"),
    f.host,
    String(f.port),
  ];
  if (f.source) {
    args.push("--source", f.source);
  }
  if (f.tls) {
    args.push("--tls");
  }
  if (f.http) {
    args.push("--http", f.http);
  }
  const r = await run("ip", args, 30000);
  try {
    return JSON.parse(r.out.trim().split("\n").pop() ?? "") as { result: string; greeting: string };
  } catch {
    return { result: "probe-failed", greeting: "", error: r.err.trim() };
  }
}

async function inBatches<T, R>(items: T[], n: number, fn: (t: T) => Promise<R>): Promise<R[]> {
  const out: R[] = [];
  for (let i = 0; i < items.length; i += n) {
    out.push(...(await Promise.all(items.slice(i, i + n).map(fn))));
  }
  return out;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** /run/cloud-init/status.json: each stage's start and finish (epoch seconds), the current one. */
interface CloudInitStatus {
  v1?: { stage?: string | null } & Record<string, unknown>;
}
const STAGES = ["init-local", "init", "modules-config", "modules-final"];

function readJson(file: string): unknown {
  try {
    return JSON.parse(fs.readFileSync(file, "utf8"));
  } catch {
    return undefined;
  }
}

/** The running stage, else the last finished one. */
export function cloudInitStage(s: CloudInitStatus): string {
  if (s.v1?.stage) {
    return s.v1.stage;
  }
  const done = STAGES.filter(
    (st) => (s.v1?.[st] as { finished?: number | null } | undefined)?.finished,
  );
  return done.length ? `${done[done.length - 1]} done` : "starting";
}

export function stageSeconds(s: CloudInitStatus): Record<string, number> {
  const out: Record<string, number> = {};
  for (const st of STAGES) {
    const t = s.v1?.[st] as { start?: number | null; finished?: number | null } | undefined;
    if (t?.start && t.finished) {
      out[st] = Math.round(t.finished - t.start);
    }
  }
  return out;
}

/**
 * Waits for every server's first boot, runs `afterBoot` (the stack's remote commands, as
 * `pulumi up` runs them once the instances exist; it returns its problems), then checks.
 */
export async function runChecks(
  r: Rehearsal,
  bootTimeout: number,
  log: (l: string) => void,
  afterBoot: () => Promise<string[]> = async () => [],
): Promise<CheckReport> {
  const { model, net } = r;
  const report: CheckReport = {
    booted: 0,
    cloudInitErrors: {},
    failedUnits: {},
    services: {},
    flows: { declared: 0, ok: 0, blockedAsExpected: 0, violations: [], tried: [] },
    notRehearsed: [],
    problems: [],
    timings: { boot: {}, cloudInit: {}, remoteCommands: 0, checks: 0 },
  };
  const bootStarted = Date.now();
  const { leaderPid } = await import("./index");
  const leaders = new Map<string, number>();
  const cloudInit = new Map<string, Promise<CloudInitResult | undefined>>();

  // 1. Boot: wait for cloud-init's result on every server, logging each stage change.
  const until = Date.now() + bootTimeout * 1000;
  await Promise.all(
    r.containers.map(async (c) => {
      let last = "";
      while (Date.now() < until) {
        const leader = leaderPid(c.nspawnPid);
        if (!fs.existsSync(`/proc/${c.nspawnPid}`)) {
          report.problems.push(
            `${c.name}: systemd-nspawn exited during boot (see ${path.join(r.dir, "servers", c.name, "console.log")})`,
          );
          return;
        }
        if (leader) {
          leaders.set(c.name, leader);
          // cloud-init's own status files, read through /proc: polling `cloud-init status` (a
          // Python start per server every few seconds) cost a core of the two.
          const run = `/proc/${leader}/root/run/cloud-init`;
          const status = readJson(`${run}/status.json`) as CloudInitStatus | undefined;
          const stage = status ? cloudInitStage(status) : "starting";
          if (stage !== last) {
            log(
              `${c.name}: cloud-init ${stage} (${Math.round((Date.now() - bootStarted) / 1000)} s)`,
            );
            last = stage;
          }
          if (fs.existsSync(`${run}/result.json`)) {
            report.timings.boot[c.name] = Math.round((Date.now() - bootStarted) / 1000);
            if (status) {
              report.timings.cloudInit[c.name] = stageSeconds(status);
            }
            // cloud-init's result and output are final once result.json exists: read now, while
            // the slower servers still boot, not after the last one (a Python start per server).
            cloudInit.set(c.name, readCloudInitResult(leader));
            return;
          }
        }
        await sleep(2000);
      }
      report.problems.push(`${c.name}: cloud-init did not finish within ${bootTimeout} s`);
    }),
  );

  // 2. The stack's remote commands (MariaDB accounts and replication), then cloud-init and
  // systemd on each server: a unit a command broke shows as failed.
  const commandsStarted = Date.now();
  report.problems.push(...(await afterBoot()));
  report.timings.remoteCommands = Math.round((Date.now() - commandsStarted) / 1000);
  const checksStarted = Date.now();
  // Failed units are read after the remote commands (a unit a command broke shows as failed) and
  // after every boot, as before; each server's reads are independent, so they run side by side.
  const perServer = await Promise.all(
    r.containers.map(async (c) => {
      const leader = leaders.get(c.name);
      const result = leader ? await cloudInit.get(c.name) : undefined;
      if (!leader || !result) {
        return undefined;
      }
      return { c, result, units: await failedUnits(leader, report) };
    }),
  );
  for (const one of perServer) {
    if (!one) {
      continue;
    }
    const { c, result, units } = one;
    const { errors, outputErrors } = result;
    report.booted++;
    if (errors.length > 0) {
      report.cloudInitErrors[c.name] = [...new Set(errors)];
      report.problems.push(`${c.name}: cloud-init errors: ${errors.join("; ")}`);
    }
    if (outputErrors.length > 0) {
      report.cloudInitErrors[c.name] = [
        ...new Set([
          ...(report.cloudInitErrors[c.name] ?? []),
          ...outputErrors.map((l) => `runcmd: ${l}`),
        ]),
      ];
      report.problems.push(
        `${c.name}: user-data commands reported errors: ${outputErrors.join("; ")}`,
      );
    }
    if (units.failed.length > 0) {
      report.failedUnits[c.name] = units.failed;
      const why = units.failed.map((u) => `${u}: ${units.journal.get(u)}`);
      report.problems.push(`${c.name}: failed units: ${why.join("; ")}`);
    }
    log(
      `${c.name}: cloud-init ${errors.length ? "with errors" : "done"}, ${units.failed.length} failed units`,
    );
  }

  // 3. What cannot run here.
  if (model.servers.some((s) => s.service === "pbx")) {
    report.notRehearsed.push(
      "Asterisk on the PBX servers: not in Debian 12 (the stack installs it from hastack:pbx.installer or a FreePBX AMI); SIP/RTP ports, the PBX health check (TCP 5060) and CDR writes are not rehearsed, everything else on the PBX is",
    );
  }
  report.notRehearsed.push(
    "EBS data volumes: each server's /srv/data is a directory mounted before boot, so hastack-mount-data's format-and-mount path does not run (a container cannot attach a block device as a disk)",
  );

  // 4. Services, and beside them (5.) the flows: each only reads (a login, a banner, a query).
  const servicesChecked = checkServices(r, leaders, report, log).catch((e: Error) => {
    report.problems.push(`service checks: ${e.message}`);
  });

  // 5. Flows.
  const declared = declaredFlows(model, net.addresses.admin, net.addresses.checker).filter((f) => {
    const pbxTarget = model.servers.find((s) => s.name === f.to)?.service === "pbx";
    if (pbxTarget && ASTERISK_PORTS.has(f.port)) {
      return false; // Asterisk: listed in notRehearsed
    }
    return true;
  });
  const nsOf = (from: string): string => {
    const i = model.servers.findIndex((s) => s.name === from);
    return i >= 0 ? net.serverNs[i] : net.router;
  };
  // The undeclared samples end in their probe's timeout when dropped (as they must): all at
  // once, beside the declared flows, instead of a timeout per batch after them.
  const samples = undeclaredSamples(model, net.addresses.world);
  const sampleRun = Promise.all(
    samples.map(async (f) => ({ ...f, ...(await probe(nsOf(f.from), f)) })),
  );
  const declaredResults: FlowResult[] = await inBatches(declared, 4, async (f) => {
    const p = await probe(nsOf(f.from), f);
    const ok = p.result === "open" && (!f.greeting || f.greeting.test(p.greeting));
    return {
      ...f,
      result: p.result,
      ok,
      detail: p.greeting.split("\r\n")[0].slice(0, 60) || p.error || "",
    };
  });
  report.flows.declared = declaredResults.length;
  for (const f of declaredResults) {
    report.flows.tried.push(`${f.from} → ${f.to || f.host}:${f.port} ${f.why}: ${f.result}`);
    if (f.ok) {
      report.flows.ok++;
    } else {
      report.flows.violations.push(
        `declared ${f.from} → ${f.to || f.host}:${f.port} (${f.why}): ${f.result}${f.detail ? ` "${f.detail}"` : ""}`,
      );
    }
    log(
      `flow ${f.ok ? "ok     " : "FAILED "} ${f.from} → ${f.to || f.host}:${f.port} ${f.why}: ${f.result}`,
    );
  }
  const sampleResults = await sampleRun;
  for (const f of sampleResults) {
    const blocked = f.result === "timeout";
    if (blocked) {
      report.flows.blockedAsExpected++;
    } else {
      report.flows.violations.push(
        `undeclared ${f.from} → ${f.to}:${f.port} (${f.why}) was not blocked: ${f.result}`,
      );
    }
    log(
      `flow ${blocked ? "blocked" : "OPEN!  "} ${f.from} → ${f.to}:${f.port} ${f.why}: ${f.result}`,
    );
  }
  for (const v of report.flows.violations) {
    report.problems.push(`flow: ${v}`);
  }
  await servicesChecked;
  report.timings.checks = Math.round((Date.now() - checksStarted) / 1000);
  return report;
}

interface CloudInitResult {
  errors: string[];
  outputErrors: string[];
}

/** cloud-init's result on a server whose result.json exists: its errors and the runcmd output's. */
async function readCloudInitResult(leader: number): Promise<CloudInitResult | undefined> {
  const res = await inContainer(leader, ["cat", "/run/cloud-init/result.json"]);
  if (res.code !== 0) {
    return undefined;
  }
  let errors: string[];
  try {
    errors = ((JSON.parse(res.out) as { v1?: { errors?: string[] } }).v1?.errors ?? []).map(String);
  } catch (e) {
    // Read while the slower servers boot: a broken file must not end the rehearsal unreported.
    errors = [`/run/cloud-init/result.json is no JSON: ${(e as Error).message}`];
  }
  const status = await inContainer(leader, ["cloud-init", "status", "--long"]);
  if (/status: error/.test(status.out)) {
    errors.push(
      ...status.out
        .split("\n")
        .filter((l) => /error|Error/.test(l))
        .map((l) => l.trim()),
    );
  }
  // A failing runcmd command does not fail cloud-init (the script's status is its last line's),
  // so its output is read too.
  const output = await inContainer(leader, [
    "sh",
    "-c",
    "grep -E '^(hastack[^:]*:|.*(ERROR|Traceback|command not found|No such file))' /var/log/cloud-init-output.log | head -20",
  ]);
  // apt's "Ign:" notes for optional index files of the flat local repository are not errors.
  const outputErrors = output.out
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l && /error|not found|No such file|refus|fail/i.test(l))
    .filter((l) => !/^File not found - \/var\/local\/hastack-repo\//.test(l));
  return { errors, outputErrors };
}

/**
 * The failed units of a settled server, each with its journal's last lines; a unit that failed
 * only for want of the internet goes to notRehearsed instead (NEEDS_THE_INTERNET).
 */
async function failedUnits(
  leader: number,
  report: CheckReport,
): Promise<{ failed: string[]; journal: Map<string, string> }> {
  await waitSettled(leader);
  const failed = await inContainer(leader, ["systemctl", "--failed", "--no-legend", "--plain"]);
  const listed = failed.out
    .split("\n")
    .map((l) => l.trim().split(/\s+/)[0])
    .filter(Boolean);
  // The unit's own words, so a failure is diagnosed from the report, not by re-running.
  const journal = new Map<string, string>();
  for (const u of listed) {
    const j = await inContainer(leader, [
      "sh",
      "-c",
      `journalctl -b -u ${u} --no-pager -o cat 2>&1 | tail -8`,
    ]);
    journal.set(u, j.out.trim().split("\n").join(" | "));
  }
  const units = listed.filter((u) => {
    const outside = NEEDS_THE_INTERNET.find(
      (n) => n.unit === u && n.because.test(journal.get(u) ?? ""),
    );
    if (outside && !report.notRehearsed.includes(outside.notRehearsed)) {
      report.notRehearsed.push(outside.notRehearsed);
    }
    return outside === undefined;
  });
  return { failed: units, journal };
}

/** Waits (bounded) until systemd has no job queued, so `--failed` reads a settled system. */
async function waitSettled(leader: number): Promise<void> {
  for (let i = 0; i < 60; i++) {
    const j = await inContainer(leader, ["systemctl", "list-jobs", "--no-legend"]);
    if (j.out.trim() === "") {
      return;
    }
    await sleep(2000);
  }
}

async function checkServices(
  r: Rehearsal,
  leaders: Map<string, number>,
  report: CheckReport,
  log: (l: string) => void,
): Promise<void> {
  const { model, net } = r;
  const record = (key: string, ok: boolean, detail: string): void => {
    report.services[key] = `${ok ? "ok" : "FAILED"}: ${detail}`;
    log(`service ${ok ? "ok    " : "FAILED"} ${key}: ${detail}`);
    if (!ok) {
      report.problems.push(`${key}: ${detail}`);
    }
  };
  const routerProbe = (f: Omit<FlowSpec, "from" | "to" | "why">): ReturnType<typeof probe> =>
    probe(net.router, { ...f, from: "", to: "", why: "" });

  for (const s of model.servers) {
    const leader = leaders.get(s.name);
    if (s.publicIp) {
      const ssh = await run(
        "ip",
        [
          "netns",
          "exec",
          net.router,
          "ssh",
          "-i",
          r.adminKey,
          "-b",
          net.addresses.admin,
          "-o",
          "BatchMode=yes",
          "-o",
          "StrictHostKeyChecking=no",
          "-o",
          "UserKnownHostsFile=/dev/null",
          "-o",
          "ConnectTimeout=10",
          "-o",
          "LogLevel=ERROR",
          `admin@${s.publicIp}`,
          "id -un",
        ],
        40000,
      );
      record(
        `${s.name} ssh`,
        ssh.code === 0 && ssh.out.trim() === "admin",
        ssh.code === 0
          ? `admin logged in over ${s.publicIp}:22 with the key from meta-data`
          : (ssh.err.trim().split("\n").pop() ?? "failed"),
      );
    }
    if (s.service === "mail" && s.publicIp) {
      const smtp = await routerProbe({ host: s.publicIp, port: 25, source: net.addresses.world });
      record(
        `${s.name} smtp`,
        smtp.result === "open" && /^220 /.test(smtp.greeting),
        `${smtp.result} ${smtp.greeting.trim().slice(0, 60)}`,
      );
      const imaps = await routerProbe({
        host: s.publicIp,
        port: 993,
        source: net.addresses.world,
        tls: true,
      });
      record(
        `${s.name} imaps`,
        imaps.result === "open" && /^\* OK/.test(imaps.greeting),
        `${imaps.result} ${imaps.greeting.trim().slice(0, 60)}`,
      );
    }
    if (s.service === "mysql" && leader) {
      const ro = await inContainer(leader, ["mariadb", "-N", "-B", "-e", "SELECT @@read_only"]);
      const want = s.role === "standby" ? "1" : "0";
      record(
        `${s.name} read_only`,
        ro.code === 0 && ro.out.trim() === want,
        ro.code === 0 ? `read_only=${ro.out.trim()} (want ${want})` : ro.err.trim(),
      );
      if (s.role === "standby") {
        const st = await inContainer(leader, ["mariadb", "-e", "SHOW SLAVE STATUS\\G"]);
        const io = /Slave_IO_Running: (\w+)/.exec(st.out)?.[1];
        const sql = /Slave_SQL_Running: (\w+)/.exec(st.out)?.[1];
        const err = /Last_IO_Error: (.*)/.exec(st.out)?.[1]?.trim();
        record(
          `${s.name} replication`,
          io === "Yes" && sql === "Yes",
          st.out.trim() === ""
            ? "no replication configured (SHOW SLAVE STATUS is empty)"
            : `IO ${io}, SQL ${sql}${err ? `, ${err}` : ""}`,
        );
      }
    }
  }
  // Health agents: the checker's view and a direct GET from the checkers' range.
  for (const hc of model.healthChecks.filter((h) => h.type !== "TCP")) {
    const target = model.nat.find((n) => n.publicIp === hc.ipAddress)?.server ?? hc.ipAddress;
    const p = await routerProbe({
      host: hc.ipAddress,
      port: hc.port,
      source: net.addresses.checker,
      http: hc.path ?? "/",
    });
    record(
      `${target} health agent`,
      /^HTTP\/1\.[01] 200/.test(p.greeting),
      `${p.result} ${p.greeting.split("\r\n")[0]}`,
    );
  }
  // SSM: each instance profile's policy, through the servers' own AWS CLI.
  const mail = find(model, "mail", "primary");
  const mailLeader = mail ? leaders.get(mail.name) : undefined;
  if (mail && mailLeader) {
    const own = model.parameters.find((p) => p.name.includes("/mail/"));
    const foreign = model.parameters.find((p) => p.name.includes("/mysql/"));
    const get = (name: string): Promise<{ code: number; out: string; err: string }> =>
      inContainer(
        mailLeader,
        [
          "aws",
          "--region",
          model.region,
          "ssm",
          "get-parameter",
          "--with-decryption",
          "--name",
          name,
          "--query",
          "Parameter.Name",
          "--output",
          "text",
        ],
        60000,
      );
    if (own) {
      const g = await get(own.name);
      record(
        `${mail.name} ssm own`,
        g.code === 0 && g.out.trim() === own.name,
        g.code === 0 ? `read ${own.name}` : (g.err.trim().split("\n").pop() ?? ""),
      );
    }
    if (foreign) {
      const g = await get(foreign.name);
      record(
        `${mail.name} ssm foreign`,
        g.code !== 0 && /AccessDenied/.test(g.err),
        g.code !== 0
          ? `refused ${foreign.name}: ${/AccessDenied\w*/.exec(g.err)?.[0] ?? g.err.trim()}`
          : `READ ${foreign.name}: the policy was not enforced`,
      );
    }
  }
  // DNS through the VPC resolver, from a server: the failover name answers the healthy side.
  const internal = model.zones.find((z) => z.private);
  const db = internal?.records.find((x) => x.failover === "PRIMARY" && /^db\./.test(x.name));
  if (db && model.servers.length > 0) {
    // The checker may have flipped the answer moments ago: a resolver honouring the TTL converges
    // within one TTL, so the answer is read until then (bounded), and the wait reported.
    const started = Date.now();
    let got = "";
    let want: string | undefined;
    let side = "";
    while (Date.now() - started < (db.ttl + 15) * 1000) {
      // As Route 53 answers: dns.ts's failover rule, applied to the checker's current state.
      const answer = answeredRecords(internal!, readCheckerStatus(r.checkerStatus).health).find(
        (x) => x.name === db.name && x.type === "A",
      );
      want = answer?.values[0];
      side = answer?.failover === "SECONDARY" ? "secondary" : "primary";
      const d = await run(
        "ip",
        [
          "netns",
          "exec",
          net.serverNs[0],
          "dig",
          "+short",
          `@${net.addresses.resolver}`,
          db.name,
          "A",
        ],
        20000,
      );
      got = d.out.trim();
      if (got === want) {
        break;
      }
      await sleep(3000);
    }
    const waited = Math.round((Date.now() - started) / 1000);
    record(
      `dns ${db.name}`,
      got === want,
      `answers ${got || "nothing"} (want ${want}, the ${side} under the checker's health state; ${waited} s within TTL ${db.ttl} s)`,
    );
  }
}
