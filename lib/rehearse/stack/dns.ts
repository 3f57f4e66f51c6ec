// Route 53 of the synth as bind9 zones, and the VPC resolver as unbound (issue 11). Pure:
// renders zone files and configs; failover record sets are rendered from the health state the
// rehearsal's checker measured, answering as Route 53 does: the PRIMARY while its health check
// passes, else the SECONDARY while its check passes, else the PRIMARY (Route 53 fails open).
import { DnsRecord, DnsZone } from "./model";

/** Health-check id → healthy. A check not yet measured counts as healthy, as in Route 53. */
export type HealthState = Record<string, boolean>;

/** A stand-in zone the rehearsal adds: AWS endpoints the servers call, at the stand-in's address. */
export interface ExtraZone {
  name: string;
  address: string;
}

function dotted(name: string): string {
  return name.endsWith(".") ? name : `${name}.`;
}

function rdata(type: string, value: string): string {
  switch (type) {
    case "TXT":
      // Route 53's form: a long value's character strings are joined by `""` (DKIM keys).
      return value.startsWith('"')
        ? value
        : value
            .split('""')
            .map((part) => `"${part.replace(/(["\\])/g, "\\$1")}"`)
            .join(" ");
    case "CNAME":
    case "NS":
    case "PTR":
      return dotted(value);
    case "MX":
    case "SRV": {
      const parts = value.trim().split(/\s+/);
      parts[parts.length - 1] = dotted(parts[parts.length - 1]);
      return parts.join(" ");
    }
    default:
      return value;
  }
}

/** The record sets a resolver gets for `zone` given the health state (failover resolved). */
export function answeredRecords(zone: DnsZone, health: HealthState): DnsRecord[] {
  const plain = zone.records.filter((r) => !r.failover);
  const groups = new Map<string, DnsRecord[]>();
  for (const r of zone.records.filter((x) => x.failover)) {
    const key = `${r.name}|${r.type}`;
    groups.set(key, [...(groups.get(key) ?? []), r]);
  }
  const healthy = (r: DnsRecord | undefined): boolean =>
    r !== undefined && (r.healthCheckId === undefined || health[r.healthCheckId] !== false);
  for (const set of groups.values()) {
    const primary = set.find((r) => r.failover === "PRIMARY");
    const secondary = set.find((r) => r.failover === "SECONDARY");
    const chosen = healthy(primary)
      ? primary
      : healthy(secondary)
        ? secondary
        : (primary ?? secondary);
    if (chosen) {
      plain.push(chosen);
    }
  }
  return plain;
}

/** A zone file for `zone` as answered under `health`; `serial` must grow on every change. */
export function renderZoneFile(zone: DnsZone, health: HealthState, serial: number): string {
  const origin = dotted(zone.name);
  const lines = [
    `$ORIGIN ${origin}`,
    "$TTL 300",
    `@ 900 IN SOA ns.rehearsal.invalid. hostmaster.rehearsal.invalid. ${serial} 900 300 86400 60`,
    "@ 900 IN NS ns.rehearsal.invalid.",
  ];
  for (const r of answeredRecords(zone, health)) {
    for (const v of r.values) {
      lines.push(`${dotted(r.name)} ${r.ttl} IN ${r.type} ${rdata(r.type, v)}`);
    }
  }
  return lines.join("\n") + "\n";
}

export function renderExtraZoneFile(z: ExtraZone, serial: number): string {
  return [
    `$ORIGIN ${dotted(z.name)}`,
    "$TTL 60",
    `@ IN SOA ns.rehearsal.invalid. hostmaster.rehearsal.invalid. ${serial} 900 300 86400 60`,
    "@ IN NS ns.rehearsal.invalid.",
    `@ IN A ${z.address}`,
    "",
  ].join("\n");
}

/** named.conf: authoritative only, on the router's loopback, reloadable by rndc with `key`. */
export function renderNamedConf(dir: string, zoneNames: string[], rndcSecret: string): string {
  return [
    `key "rehearsal" { algorithm hmac-sha256; secret "${rndcSecret}"; };`,
    `controls { inet 127.0.0.1 port 953 allow { 127.0.0.1; } keys { "rehearsal"; }; };`,
    "options {",
    `  directory "${dir}";`,
    `  pid-file "${dir}/named.pid";`,
    `  session-keyfile "${dir}/session.key";`,
    `  managed-keys-directory "${dir}";`,
    "  listen-on port 53 { 127.0.0.1; };",
    "  listen-on-v6 { none; };",
    "  recursion no;",
    "  dnssec-validation no;",
    "  notify no;",
    "};",
    ...zoneNames.map((z) => `zone "${z}" { type primary; file "${dir}/${z}.zone"; };`),
    "",
  ].join("\n");
}

export function rndcConf(rndcSecret: string): string {
  return [
    `key "rehearsal" { algorithm hmac-sha256; secret "${rndcSecret}"; };`,
    `options { default-key "rehearsal"; default-server 127.0.0.1; default-port 953; };`,
    "",
  ].join("\n");
}

/** unbound as the VPC resolver: caches by TTL, asks bind9 for everything, no DNSSEC, no root. */
export function renderUnboundConf(dir: string, listen: string): string {
  return [
    "server:",
    `  interface: ${listen}`,
    "  port: 53",
    "  do-ip6: no",
    "  access-control: 0.0.0.0/0 allow",
    `  directory: "${dir}"`,
    `  pidfile: "${dir}/unbound.pid"`,
    '  username: ""',
    '  chroot: ""',
    "  use-syslog: no",
    `  logfile: "${dir}/unbound.log"`,
    "  do-not-query-localhost: no",
    '  module-config: "iterator"',
    "  cache-min-ttl: 0",
    "  prefetch: no",
    "  serve-expired: no",
    "forward-zone:",
    '  name: "."',
    "  forward-addr: 127.0.0.1@53",
    "",
  ].join("\n");
}
