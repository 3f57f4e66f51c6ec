// Prometheus monitoring generated from the stack outputs (docs/outputs.md), so what is probed
// and alerted on always matches what the stack declares: every service port through the
// blackbox exporter (the service name users reach, and each server on its own), the servers'
// node exporters (which carry the sync and backup jobs' textfile metrics), and alert rules for
// a service down, a side down, replication or sync older than its RPO, and a missed backup.
// Pure: scripts/monitoring.ts writes the files; tests run the real promtool on them.
import { stringify } from "yaml";
// Type-only: erased at compile time, so this pure module never loads Pulumi.
import type { Role } from "../../components/server-pair";

/** Thrown for unusable input: the CLI prints it and exits 2. */
export class MonitoringInputError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "MonitoringInputError";
  }
}

const SIDES: readonly Role[] = ["primary", "standby"];

export interface PortOutput {
  name: string;
  port: number;
  protocol: "tcp" | "udp";
  probe: string;
}

export interface ServiceOutput {
  service: string;
  activeSide: Role;
  switchover: "dns" | "eip";
  dnsName: string;
  ttl: number;
  ports: PortOutput[];
  sides: Record<Role, { privateIp?: string; publicIp?: string; instanceId?: string; az?: string }>;
  rpoSeconds: number;
  rtoSeconds: number;
  migrationPhase?: number;
}

export interface BackupJobOutput {
  service: string;
  name: string;
  schedule?: string;
  intervalHours: number;
  retentionDays?: number;
  rpoSeconds?: number;
  target?: string;
}

export interface MonitoringOutputs {
  domain?: string;
  /** What the operator must know about the input (mock addresses of an offline synth). */
  warnings?: string[];
  services: Record<string, ServiceOutput>;
  nas?: {
    endpoints?: Partial<Record<Role, string>>;
    backupPlanId?: string;
    jobs?: BackupJobOutput[];
  };
}

/** Metric the sync/replication jobs write through node_exporter's textfile collector. */
export const REPLICATION_METRIC = "hastack_replication_last_success_timestamp_seconds";
/** Metric each NAS backup job writes when it finished successfully. */
export const BACKUP_METRIC = "hastack_backup_last_success_timestamp_seconds";

/**
 * Metrics each mail server's hastack-mail-queue timer writes (server/mail/hastack-mail-queue.sh,
 * issue 17): messages per Postfix queue, the oldest one's age, when the queue was last read.
 */
export const MAIL_QUEUE_MESSAGES = "hastack_mail_queue_messages";
export const MAIL_QUEUE_AGE = "hastack_mail_queue_oldest_message_age_seconds";
export const MAIL_QUEUE_REPORT = "hastack_mail_queue_last_report_timestamp_seconds";
/**
 * A message queued longer than this is stuck: Postfix retries a deferred message for up to
 * 5 days (maximal_queue_lifetime) and a receiver that greylists answers within an hour.
 */
export const MAIL_QUEUE_STUCK_SECONDS = 3600;
/** More queued messages than this (held excluded) for 15 minutes: delivery is failing broadly. */
export const MAIL_QUEUE_LARGE_MESSAGES = 100;
/** The queue report is missing or older than this (the timer runs every minute). */
export const MAIL_QUEUE_REPORT_STALE_SECONDS = 600;

/** Blackbox module per probe kind in the outputs' port list. */
export const PROBE_MODULES: Record<string, string> = {
  smtp_banner: "smtp_banner",
  imaps: "imaps",
  tcp: "tcp_connect",
  mysql: "mysql_tcp",
  sip_tcp: "sip_tcp",
  http: "http_2xx",
};

export interface MonitoringOptions {
  /** host:port of the blackbox exporter, as Prometheus reaches it. Defaults to 127.0.0.1:9115. */
  blackboxAddress?: string;
  /** Port of node_exporter on every server. Defaults to 9100. */
  nodeExporterPort?: number;
  /** host:port of Alertmanager. Defaults to none (rules still evaluate; nothing is sent). */
  alertmanager?: string;
  /** Defaults to 30s. */
  scrapeInterval?: string;
}

/** Grace added to an RPO before "stale": one job run plus two scrapes may be in flight. */
export const REPLICATION_GRACE_SECONDS = 120;
/** A semi-sync database has RPO 0; its replication check runs every minute. */
export const MIN_REPLICATION_WINDOW_SECONDS = 60;
/** Grace added to a backup interval before "missed": a backup may run long. */
export const BACKUP_GRACE_SECONDS = 3600;

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/**
 * The outputs object from `pulumi stack output --json`, or a synth/`pulumi stack export`
 * deployment (its root stack resource's outputs). Checks what monitoring needs, naming the path.
 */
export function readMonitoringOutputs(doc: unknown, path: string): MonitoringOutputs {
  let outputs: unknown = doc;
  const warnings: string[] = [];
  if (isRecord(doc) && isRecord(doc.deployment) && Array.isArray(doc.deployment.resources)) {
    if (
      isRecord(doc.deployment.manifest) &&
      doc.deployment.manifest.magic === "hastack-offline-synth"
    ) {
      warnings.push(
        `${path} is an offline synth: its server addresses are mocks (10.20.x.x, 198.51.100.x), not your servers'. Use \`pulumi stack output --json\` of the deployed stack for real monitoring.`,
      );
    }
    const stack = (doc.deployment.resources as unknown[]).find(
      (r) => isRecord(r) && r.type === "pulumi:pulumi:Stack",
    ) as Record<string, unknown> | undefined;
    if (!stack || !isRecord(stack.outputs)) {
      throw new MonitoringInputError(`${path}: the deployment has no root stack outputs`);
    }
    outputs = stack.outputs;
  }
  if (!isRecord(outputs) || !isRecord(outputs.services)) {
    throw new MonitoringInputError(
      `${path}: expected stack outputs with "services" (the file from \`pulumi stack output --json\`) or a synth deployment`,
    );
  }
  const problems: string[] = [];
  const services: Record<string, ServiceOutput> = {};
  for (const [name, raw] of Object.entries(outputs.services)) {
    const at = `services.${name}`;
    if (!isRecord(raw)) {
      problems.push(`${at} must be an object`);
      continue;
    }
    if (raw.activeSide !== "primary" && raw.activeSide !== "standby") {
      problems.push(
        `${at}.activeSide must be "primary" or "standby", got ${JSON.stringify(raw.activeSide)}`,
      );
    }
    if (typeof raw.dnsName !== "string" || raw.dnsName === "") {
      problems.push(`${at}.dnsName must be the service's host name`);
    }
    if (!Array.isArray(raw.ports)) {
      problems.push(`${at}.ports must be a list of {name, port, protocol, probe}`);
    } else {
      raw.ports.forEach((p, i) => {
        if (!isRecord(p) || typeof p.port !== "number" || typeof p.name !== "string") {
          problems.push(`${at}.ports[${i}] needs a name and a port number`);
        } else if (typeof p.probe === "string" && !PROBE_MODULES[p.probe]) {
          problems.push(
            `${at}.ports[${i}].probe must be one of ${Object.keys(PROBE_MODULES).join(", ")}, got ${JSON.stringify(p.probe)}`,
          );
        }
      });
    }
    if (
      !isRecord(raw.sides) ||
      !SIDES.every((s) => isRecord((raw.sides as Record<string, unknown>)[s]))
    ) {
      problems.push(`${at}.sides must have primary and standby`);
    }
    // The alert thresholds are computed from it: "soon" would become `for: NaNs`.
    if (raw.rpoSeconds !== undefined && !isSeconds(raw.rpoSeconds)) {
      problems.push(
        `${at}.rpoSeconds must be a number of seconds (0 or more), got ${JSON.stringify(raw.rpoSeconds)}`,
      );
    }
    services[name] = raw as unknown as ServiceOutput;
  }
  // Without the NAS outputs there would be no backup alert at all, and nobody would notice.
  if (!isRecord(outputs.nas)) {
    problems.push(
      `has no "nas" output (the backup jobs), so no backup alert could be written; give the outputs of the whole hastack stack`,
    );
  }
  const nas = isRecord(outputs.nas) ? (outputs.nas as MonitoringOutputs["nas"]) : undefined;
  if (nas && !Array.isArray(nas.jobs)) {
    problems.push(`nas.jobs must be the list of backup jobs, got ${JSON.stringify(nas.jobs)}`);
  }
  (Array.isArray(nas?.jobs) ? nas.jobs : []).forEach((j, i) => {
    if (
      !isRecord(j) ||
      typeof j.name !== "string" ||
      typeof j.intervalHours !== "number" ||
      typeof j.service !== "string"
    ) {
      problems.push(`nas.jobs[${i}] needs service, name and intervalHours`);
    } else if (!(j.intervalHours > 0) || !Number.isFinite(j.intervalHours)) {
      problems.push(
        `nas.jobs[${i}].intervalHours must be a number of hours above 0, got ${j.intervalHours}`,
      );
    }
  });
  if (problems.length > 0) {
    throw new MonitoringInputError(`${path}: ${problems.join("; ")}`);
  }
  return {
    domain: typeof outputs.domain === "string" ? outputs.domain : undefined,
    services,
    nas,
    warnings,
  };
}

function isSeconds(v: unknown): v is number {
  return typeof v === "number" && Number.isFinite(v) && v >= 0;
}

/** Whether a path under the output directory is one `renderMonitoring` writes. */
export function isMonitoringFile(rel: string): boolean {
  return (
    rel === "prometheus.yml" ||
    rel === "blackbox.yml" ||
    rel === "rules/hastack.rules.yml" ||
    /^targets\/[A-Za-z0-9._-]+\.json$/.test(rel)
  );
}

interface TargetGroup {
  targets: string[];
  labels: Record<string, string>;
}

/**
 * Blackbox targets of one service. Each probed TCP port is probed three ways: the service name
 * (role "service": what users reach, whichever side serves) and each server's own address (role
 * "active"/"standby"). MySQL is not public: its probes use private addresses, the service one
 * being the active server. UDP ports are not probed (blackbox has no generic UDP prober).
 */
export function blackboxTargets(svc: ServiceOutput): TargetGroup[] {
  const groups: TargetGroup[] = [];
  for (const port of svc.ports) {
    if (port.protocol !== "tcp" || !port.probe) {
      continue;
    }
    const module = PROBE_MODULES[port.probe];
    const privateOnly = port.probe === "mysql";
    const common = { service: svc.service, port_name: port.name };
    const serviceHost = privateOnly ? svc.sides[svc.activeSide].privateIp : svc.dnsName;
    if (serviceHost) {
      groups.push({
        targets: [`${serviceHost}:${port.port}`],
        labels: {
          ...common,
          module,
          role: "service",
          side: privateOnly ? svc.activeSide : "service",
        },
      });
    }
    for (const side of SIDES) {
      const host = privateOnly ? svc.sides[side].privateIp : svc.sides[side].publicIp;
      if (!host) {
        continue;
      }
      groups.push({
        targets: [`${host}:${port.port}`],
        // A server's own address does not match the service's certificate name.
        labels: {
          ...common,
          module: module === "imaps" ? "imaps_server" : module,
          role: side === svc.activeSide ? "active" : "standby",
          side,
        },
      });
    }
  }
  return groups;
}

/** node_exporter on every server (private addresses: scraped from inside the VPC or the VPN). */
export function nodeTargets(o: MonitoringOutputs, port: number): TargetGroup[] {
  const groups: TargetGroup[] = [];
  for (const svc of Object.values(o.services)) {
    for (const side of SIDES) {
      const ip = svc.sides[side].privateIp;
      if (ip) {
        groups.push({
          targets: [`${ip}:${port}`],
          labels: {
            service: svc.service,
            side,
            role: side === svc.activeSide ? "active" : "standby",
          },
        });
      }
    }
  }
  if (!o.services.nas) {
    for (const side of SIDES) {
      const host = o.nas?.endpoints?.[side];
      if (host) {
        groups.push({ targets: [`${host}:${port}`], labels: { service: "nas", side, role: side } });
      }
    }
  }
  return groups;
}

export function renderPrometheusConfig(o: MonitoringOutputs, opts: MonitoringOptions = {}): string {
  const interval = opts.scrapeInterval ?? "30s";
  const doc: Record<string, unknown> = {
    global: {
      scrape_interval: interval,
      evaluation_interval: interval,
      external_labels: { stack: "hastack", ...(o.domain ? { domain: o.domain } : {}) },
    },
    rule_files: ["rules/hastack.rules.yml"],
    ...(opts.alertmanager
      ? { alerting: { alertmanagers: [{ static_configs: [{ targets: [opts.alertmanager] }] }] } }
      : {}),
    scrape_configs: [
      {
        job_name: "blackbox",
        metrics_path: "/probe",
        scrape_interval: interval,
        scrape_timeout: "10s",
        file_sd_configs: [{ files: ["targets/blackbox-*.json"], refresh_interval: "5m" }],
        relabel_configs: [
          // The target is the thing probed; the scrape goes to the exporter.
          { source_labels: ["__address__"], target_label: "__param_target" },
          { source_labels: ["module"], target_label: "__param_module" },
          { source_labels: ["__param_target"], target_label: "instance" },
          { target_label: "__address__", replacement: opts.blackboxAddress ?? "127.0.0.1:9115" },
        ],
      },
      {
        job_name: "node",
        scrape_interval: interval,
        file_sd_configs: [{ files: ["targets/node.json"], refresh_interval: "5m" }],
      },
      {
        job_name: "blackbox_exporter",
        static_configs: [{ targets: [opts.blackboxAddress ?? "127.0.0.1:9115"] }],
      },
    ],
  };
  return (
    "# Generated by `npm run monitoring` from the stack outputs; do not edit by hand.\n" +
    stringify(doc)
  );
}

/** Blackbox exporter modules for every probe kind the outputs may name. */
export function renderBlackboxConfig(): string {
  const doc = {
    modules: {
      // SMTP: the 220 greeting proves the MTA answers, then leave politely.
      smtp_banner: {
        prober: "tcp",
        timeout: "10s",
        tcp: { query_response: [{ expect: "^220" }, { send: "QUIT\r" }, { expect: "^221" }] },
      },
      // IMAPS on the service name: TLS verified against the service certificate.
      imaps: {
        prober: "tcp",
        timeout: "10s",
        tcp: { tls: true, query_response: [{ expect: "^\\* OK" }, { send: "a1 LOGOUT\r" }] },
      },
      // IMAPS on one server's own address: the certificate names the service, not the IP.
      imaps_server: {
        prober: "tcp",
        timeout: "10s",
        tcp: {
          tls: true,
          tls_config: { insecure_skip_verify: true },
          query_response: [{ expect: "^\\* OK" }, { send: "a1 LOGOUT\r" }],
        },
      },
      // SIP over TCP: a connect; an OPTIONS ping would need a full SIP dialog per probe.
      sip_tcp: { prober: "tcp", timeout: "5s" },
      // MySQL/MariaDB: the server greeting is binary and has no line end for blackbox's
      // line-based expect, so a completed TCP handshake is the check.
      mysql_tcp: { prober: "tcp", timeout: "5s" },
      tcp_connect: { prober: "tcp", timeout: "5s" },
      http_2xx: { prober: "http", timeout: "10s", http: { preferred_ip_protocol: "ip4" } },
    },
  };
  return (
    "# Generated by `npm run monitoring`; modules named by the stack outputs' ports[].probe.\n" +
    stringify(doc)
  );
}

/** Seconds after which a service's replication/sync counts as stale (its RPO plus grace). */
export function replicationStaleSeconds(rpoSeconds: number): number {
  return Math.max(rpoSeconds, MIN_REPLICATION_WINDOW_SECONDS) + REPLICATION_GRACE_SECONDS;
}

/** Seconds after which a backup job counts as missed (its interval plus grace). */
export function backupMissedSeconds(intervalHours: number): number {
  return intervalHours * 3600 + BACKUP_GRACE_SECONDS;
}

function promDuration(seconds: number): string {
  if (seconds % 3600 === 0) {
    return `${seconds / 3600}h`;
  }
  if (seconds % 60 === 0) {
    return `${seconds / 60}m`;
  }
  return `${seconds}s`;
}

/**
 * Mail a server accepted but has not delivered (issue 17), per server: it is lost if that server
 * is shut down or fenced for good before `hastack-mail-queue flush`.
 */
export function mailQueueRules(): Record<string, unknown>[] {
  const on = '{service="mail"}';
  return [
    {
      alert: "HastackMailQueueStuck",
      expr: `max by (service, side, instance) (${MAIL_QUEUE_AGE}${on}) > ${MAIL_QUEUE_STUCK_SECONDS}`,
      for: "5m",
      labels: { severity: "warning" },
      annotations: {
        summary: "mail {{ $labels.side }}: a message has waited in the queue for over 1 h",
        description:
          "{{ $labels.instance }}: the oldest queued message is {{ $value | humanizeDuration }} old. `sudo postqueue -p` on the server says why; never shut the server down or fence it for good before `sudo hastack-mail-queue flush` succeeds.",
      },
    },
    {
      alert: "HastackMailQueueLarge",
      expr: `sum by (service, side, instance) (${MAIL_QUEUE_MESSAGES}{service="mail",queue!="hold"}) > ${MAIL_QUEUE_LARGE_MESSAGES}`,
      for: "15m",
      labels: { severity: "warning" },
      annotations: {
        summary: `mail {{ $labels.side }}: more than ${MAIL_QUEUE_LARGE_MESSAGES} messages queued`,
        description:
          "{{ $labels.instance }} holds {{ $value }} undelivered messages for 15 minutes: delivery is failing (Dovecot's LMTP, DNS, port 25 out, or a receiver refusing us).",
      },
    },
    {
      alert: "HastackMailQueueMetricMissing",
      // Per server whose node exporter answers: no fresh queue report (timer stopped, postqueue
      // failing, or Postfix down).
      expr: `up{job="node",service="mail"} == 1 unless on (instance) (time() - ${MAIL_QUEUE_REPORT}${on} < ${MAIL_QUEUE_REPORT_STALE_SECONDS})`,
      for: "5m",
      labels: { severity: "warning" },
      annotations: {
        summary: "mail {{ $labels.side }}: no fresh Postfix queue report",
        description: `{{ $labels.instance }}: ${MAIL_QUEUE_REPORT} is missing or older than ${MAIL_QUEUE_REPORT_STALE_SECONDS} s: hastack-mail-queue.timer does not run or postqueue fails, so a stuck queue would go unnoticed.`,
      },
    },
  ];
}

export function renderRules(o: MonitoringOutputs): string {
  const availability = [
    {
      alert: "HastackServiceDown",
      expr: 'probe_success{job="blackbox",role="service"} == 0',
      for: "2m",
      labels: { severity: "critical" },
      annotations: {
        summary: "{{ $labels.service }} is down for users ({{ $labels.port_name }})",
        description:
          "The {{ $labels.port_name }} probe of {{ $labels.instance }} has failed for 2 minutes. Check the active server; see docs/operations-impact.md.",
      },
    },
    {
      alert: "HastackActiveSideDown",
      expr: 'probe_success{job="blackbox",role="active"} == 0',
      for: "1m",
      labels: { severity: "critical" },
      annotations: {
        summary: "{{ $labels.service }}: the active server ({{ $labels.side }}) is down",
        description:
          "{{ $labels.instance }} ({{ $labels.port_name }}) fails. dns switchover: Route 53 fails over by itself; eip switchover: fail over by config (hastack:{{ $labels.service }}.active).",
      },
    },
    {
      alert: "HastackStandbyDown",
      expr: 'probe_success{job="blackbox",role="standby"} == 0',
      for: "5m",
      labels: { severity: "warning" },
      annotations: {
        summary:
          "{{ $labels.service }}: the standby server ({{ $labels.side }}) is down, no redundancy",
        description:
          "{{ $labels.instance }} ({{ $labels.port_name }}) has failed for 5 minutes; a failover would have nowhere to go.",
      },
    },
    {
      alert: "HastackNodeExporterDown",
      expr: 'up{job="node"} == 0',
      for: "5m",
      labels: { severity: "warning" },
      annotations: {
        summary: "{{ $labels.service }} {{ $labels.side }}: node exporter unreachable",
        description: "Without it the sync and backup metrics of this server are not seen either.",
      },
    },
  ];
  const dataProtection: Record<string, unknown>[] = [];
  for (const svc of Object.values(o.services).sort((a, b) => a.service.localeCompare(b.service))) {
    const stale = replicationStaleSeconds(svc.rpoSeconds ?? 0);
    const sel = `${REPLICATION_METRIC}{service="${svc.service}"}`;
    dataProtection.push(
      {
        alert: "HastackReplicationStale",
        expr: `time() - max by (service) (${sel}) > ${stale}`,
        for: "1m",
        labels: {
          severity: "critical",
          service: svc.service,
          rpo_seconds: String(svc.rpoSeconds ?? 0),
        },
        annotations: {
          summary: `${svc.service}: standby data older than its RPO`,
          description: `The last successful ${svc.service} sync/replication is more than ${stale} s old (RPO ${svc.rpoSeconds ?? 0} s + grace): a failover now would lose data.`,
        },
      },
      {
        alert: "HastackReplicationMetricMissing",
        expr: `absent(${sel})`,
        for: promDuration(Math.max(stale, 600)),
        labels: { severity: "warning", service: svc.service },
        annotations: {
          summary: `${svc.service}: no sync/replication metric`,
          description: `No ${REPLICATION_METRIC} for ${svc.service}: the sync job does not run or node_exporter's textfile collector does not see it.`,
        },
      },
    );
  }
  if (o.services.mail) {
    dataProtection.push(...mailQueueRules());
  }
  for (const job of [...(o.nas?.jobs ?? [])].sort((a, b) => a.name.localeCompare(b.name))) {
    const missed = backupMissedSeconds(job.intervalHours);
    const sel = `${BACKUP_METRIC}{backup="${job.name}"}`;
    dataProtection.push(
      {
        alert: "HastackBackupMissed",
        expr: `time() - max by (backup) (${sel}) > ${missed}`,
        for: "5m",
        labels: { severity: "critical", service: job.service, backup: job.name },
        annotations: {
          summary: `backup ${job.name} (${job.service}) missed`,
          description: `No successful run of ${job.name} for more than ${job.intervalHours} h + 1 h grace (schedule ${job.schedule ?? "?"}).`,
        },
      },
      {
        alert: "HastackBackupMetricMissing",
        expr: `absent(${sel})`,
        for: promDuration(missed),
        labels: { severity: "warning", service: job.service, backup: job.name },
        annotations: {
          summary: `backup ${job.name}: no metric`,
          description: `No ${BACKUP_METRIC} for ${job.name}: the job never succeeded or its metric is not collected.`,
        },
      },
    );
  }
  const doc = {
    groups: [
      { name: "hastack-availability", rules: availability },
      ...(dataProtection.length > 0
        ? [{ name: "hastack-data-protection", rules: dataProtection }]
        : []),
    ],
  };
  return (
    "# Generated by `npm run monitoring` from the stack outputs; do not edit by hand.\n" +
    stringify(doc, { lineWidth: 0 })
  );
}

/** Every file, by path relative to the output directory. */
export function renderMonitoring(
  o: MonitoringOutputs,
  opts: MonitoringOptions = {},
): Record<string, string> {
  const files: Record<string, string> = {
    "prometheus.yml": renderPrometheusConfig(o, opts),
    "blackbox.yml": renderBlackboxConfig(),
    "rules/hastack.rules.yml": renderRules(o),
    "targets/node.json":
      JSON.stringify(nodeTargets(o, opts.nodeExporterPort ?? 9100), null, 2) + "\n",
  };
  for (const svc of Object.values(o.services)) {
    files[`targets/blackbox-${svc.service}.json`] =
      JSON.stringify(blackboxTargets(svc), null, 2) + "\n";
  }
  return files;
}
