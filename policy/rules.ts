// hastack's security invariants as pure functions over (type, inputs, options), issue 13. The
// same code runs in two places: inside a real Pulumi CrossGuard pack (policy/index.ts, for
// `pulumi preview --policy-pack policy`) and offline over the synthesized desired state
// (`npm run synth -- --policy`). Every policy is mandatory: a violation stops the update.
import { MTA_STS_INGRESS_DESCRIPTION } from "../components/mail-mta-sts";
import { addressCount, Cidr, parseCidr } from "../lib/config/cidr";

/** One resource as a policy sees it. */
export interface PolicyInput {
  type: string;
  urn: string;
  /** The resource's inputs, secrets unwrapped (policies never print them). */
  inputs: Record<string, unknown>;
  options: {
    protect: boolean;
    /** Known offline; CrossGuard does not pass it (then only `protect` is checked). */
    retainOnDelete?: boolean;
  };
}

export interface Violation {
  policy: string;
  urn?: string;
  message: string;
}

export interface ResourcePolicy {
  kind: "resource";
  name: string;
  description: string;
  check(r: PolicyInput): string[];
}

export interface StackPolicy {
  kind: "stack";
  name: string;
  description: string;
  check(resources: PolicyInput[]): { urn?: string; message: string }[];
}

export type HastackPolicy = ResourcePolicy | StackPolicy;

const T = {
  instance: "aws:ec2/instance:Instance",
  volume: "aws:ebs/volume:Volume",
  eip: "aws:ec2/eip:Eip",
  sg: "aws:ec2/securityGroup:SecurityGroup",
  ingress: "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule",
  parameter: "aws:ssm/parameter:Parameter",
  kmsKey: "aws:kms/key:Key",
  vault: "aws:backup/vault:Vault",
  vaultLock: "aws:backup/vaultLockConfiguration:VaultLockConfiguration",
  record: "aws:route53/record:Record",
  zone: "aws:route53/zone:Zone",
  command: "command:remote:Command",
  rolePolicy: "aws:iam/rolePolicy:RolePolicy",
  policy: "aws:iam/policy:Policy",
} as const;

/**
 * Admin, database and SIP ports (TCP unless noted): never reachable from more than a /8's worth
 * of addresses (the most `hastack:allowWideCidrs` may grant), computed on parsed CIDRs so no
 * spelling or split list slips through.
 */
export const GUARDED_PORTS: { protocol: "tcp" | "udp"; port: number; what: string }[] = [
  { protocol: "tcp", port: 22, what: "SSH" },
  { protocol: "tcp", port: 80, what: "FreePBX web UI" },
  { protocol: "tcp", port: 443, what: "FreePBX web UI (TLS)" },
  { protocol: "tcp", port: 3306, what: "MySQL" },
  { protocol: "tcp", port: 5038, what: "Asterisk Manager Interface" },
  { protocol: "tcp", port: 9100, what: "node_exporter" },
  { protocol: "tcp", port: 12345, what: "doveadm (mail sync)" },
  { protocol: "udp", port: 5060, what: "SIP" },
  { protocol: "tcp", port: 5060, what: "SIP" },
  { protocol: "tcp", port: 5061, what: "SIP over TLS" },
];
/** A /8's worth. */
export const MAX_OPEN_ADDRESSES = 2 ** 24;

/** Types that hold data or identity: protected, and retained on delete where it matters. */
export const STATEFUL: Record<string, { retain: boolean }> = {
  [T.instance]: { retain: false },
  [T.volume]: { retain: true },
  [T.eip]: { retain: true },
  [T.kmsKey]: { retain: true },
  [T.vault]: { retain: true },
  [T.vaultLock]: { retain: true },
  [T.zone]: { retain: false },
};

const get = (o: unknown, ...path: string[]): unknown =>
  path.reduce<unknown>(
    (v, k) => (v !== null && typeof v === "object" ? (v as Record<string, unknown>)[k] : undefined),
    o,
  );

export const POLICIES: HastackPolicy[] = [
  {
    kind: "stack",
    name: "no-world-open-admin-db-sip-ports",
    description: `Admin, database and SIP ports are never reachable from more than a /8's worth of addresses (parsed CIDRs, all rules of a group together).`,
    check(resources) {
      // Every (group, protocol, port range, CIDR) that admits traffic, from rules and inline ingress.
      const grants: {
        sg: string;
        urn: string;
        protocol: string;
        from: number;
        to: number;
        cidr: string;
      }[] = [];
      for (const r of resources) {
        // The mail servers' MTA-STS policy (RFC 8461) is fetched by any sender over HTTPS: a
        // rule for exactly 443 that says so (MailPair's, nginx serving one file) is not the
        // FreePBX web UI this guard is about.
        const mtaSts =
          r.inputs.description === MTA_STS_INGRESS_DESCRIPTION &&
          Number(r.inputs.fromPort) === 443 &&
          Number(r.inputs.toPort) === 443;
        if (r.type === T.ingress && typeof r.inputs.cidrIpv4 === "string" && !mtaSts) {
          grants.push({
            sg: String(r.inputs.securityGroupId),
            urn: r.urn,
            protocol: String(r.inputs.ipProtocol),
            from: Number(r.inputs.fromPort ?? 0),
            to: Number(r.inputs.toPort ?? 65535),
            cidr: r.inputs.cidrIpv4,
          });
        }
        if (r.type === T.sg) {
          for (const rule of (r.inputs.ingress as Record<string, unknown>[] | undefined) ?? []) {
            for (const cidr of (rule.cidrBlocks as string[] | undefined) ?? []) {
              grants.push({
                sg: r.urn,
                urn: r.urn,
                protocol: String(rule.protocol),
                from: Number(rule.fromPort),
                to: Number(rule.toPort),
                cidr,
              });
            }
          }
        }
      }
      const out: { urn?: string; message: string }[] = [];
      const groups = new Set(grants.map((g) => g.sg));
      for (const sg of groups) {
        for (const port of GUARDED_PORTS) {
          const reaching = grants.filter(
            (g) =>
              g.sg === sg &&
              (g.protocol === "-1" || g.protocol === port.protocol) &&
              (g.protocol === "-1" || (g.from <= port.port && port.port <= g.to)),
          );
          if (reaching.length === 0) {
            continue;
          }
          const parsed: Cidr[] = [];
          for (const g of reaching) {
            const p = parseCidr(g.cidr);
            if (p.ok) {
              parsed.push(p.cidr);
            } else {
              out.push({
                urn: g.urn,
                message: `${port.what} (${port.protocol} ${port.port}) admits ${JSON.stringify(g.cidr)}, which must be ${p.reason}`,
              });
            }
          }
          const count = addressCount(parsed);
          if (count > MAX_OPEN_ADDRESSES) {
            out.push({
              urn: reaching[0].urn,
              message: `${port.what} (${port.protocol} ${port.port}) is open to ${count} addresses (${reaching.map((g) => g.cidr).join(", ")}); at most ${MAX_OPEN_ADDRESSES} (a /8's worth)`,
            });
          }
        }
      }
      return out;
    },
  },
  {
    kind: "resource",
    name: "imdsv2-required",
    description: "Every instance requires IMDSv2 tokens with a hop limit of 1.",
    check(r) {
      if (r.type !== T.instance) {
        return [];
      }
      const tokens = get(r.inputs, "metadataOptions", "httpTokens");
      const hops = Number(get(r.inputs, "metadataOptions", "httpPutResponseHopLimit") ?? 1);
      return tokens === "required" && hops <= 1
        ? []
        : [
            `metadataOptions must set httpTokens "required" and httpPutResponseHopLimit 1 (got ${JSON.stringify(tokens)}, ${hops})`,
          ];
    },
  },
  {
    kind: "resource",
    name: "encryption-with-customer-keys",
    description:
      "Volumes, root disks, SecureStrings and backup vaults are encrypted with a customer-managed KMS key (never aws/ebs or aws/ssm): snapshots under aws/ebs cannot be copied to another account.",
    check(r) {
      if (r.type === T.volume && r.inputs.encrypted !== true) {
        return ["the volume must be encrypted"];
      }
      if (r.type === T.volume && !isCustomerKey(r.inputs.kmsKeyId)) {
        return ["the volume must name the stack's customer-managed key (kmsKeyId), not aws/ebs"];
      }
      if (r.type === T.instance && get(r.inputs, "rootBlockDevice", "encrypted") !== true) {
        return ["the root volume must be encrypted"];
      }
      if (r.type === T.instance && !isCustomerKey(get(r.inputs, "rootBlockDevice", "kmsKeyId"))) {
        return [
          "the root volume must name the stack's customer-managed key (rootBlockDevice.kmsKeyId), not aws/ebs",
        ];
      }
      if (r.type === T.parameter && r.inputs.type === "SecureString") {
        if (!isCustomerKey(r.inputs.keyId)) {
          return ["a SecureString must name the stack's customer-managed key (keyId), not aws/ssm"];
        }
      }
      if (
        r.type === T.vault &&
        (typeof r.inputs.kmsKeyArn !== "string" || r.inputs.kmsKeyArn === "")
      ) {
        return ["the backup vault must be encrypted with a customer-managed key (kmsKeyArn)"];
      }
      return [];
    },
  },
  {
    kind: "resource",
    name: "stateful-protected",
    description:
      "Instances, volumes, EIPs, KMS keys, backup vaults and their locks, zones are protected (and retained on delete where they hold data).",
    check(r) {
      const rule = STATEFUL[r.type];
      // A private zone holds only records the stack re-creates; a public one, the delegation.
      if (
        !rule ||
        (r.type === T.zone && Array.isArray(r.inputs.vpcs) && r.inputs.vpcs.length > 0)
      ) {
        return [];
      }
      const problems: string[] = [];
      if (!r.options.protect) {
        problems.push("a stateful resource must be protected (protect: true)");
      }
      if (rule.retain && r.options.retainOnDelete === false) {
        problems.push(
          "a resource that holds data must be retained on delete (retainOnDelete: true)",
        );
      }
      return problems;
    },
  },
  {
    kind: "stack",
    name: "failover-records-health-checked",
    description:
      "Every failover record has a health check; a PRIMARY may go without one only while its SECONDARY has one (a migration keeping clients on a server outside the stack).",
    check(resources) {
      const failover = resources.filter(
        (r) => r.type === T.record && Array.isArray(r.inputs.failoverRoutingPolicies),
      );
      const role = (r: PolicyInput): string =>
        String(get((r.inputs.failoverRoutingPolicies as unknown[])[0], "type") ?? "");
      const checked = (r: PolicyInput): boolean =>
        typeof r.inputs.healthCheckId === "string" && r.inputs.healthCheckId !== "";
      const out: { urn?: string; message: string }[] = [];
      for (const r of failover) {
        if (checked(r)) {
          continue;
        }
        const secondary = failover.find(
          (s) =>
            s.inputs.name === r.inputs.name &&
            s.inputs.type === r.inputs.type &&
            role(s) === "SECONDARY",
        );
        if (role(r) === "PRIMARY" && secondary && checked(secondary)) {
          continue;
        }
        out.push({
          urn: r.urn,
          message: `${role(r)} failover record ${String(r.inputs.name)} has no health check`,
        });
      }
      return out;
    },
  },
  {
    kind: "resource",
    name: "switch-record-ttl-at-most-60",
    description:
      "Failover records have a TTL of at most 60 s so clients follow a failover quickly.",
    check(r) {
      if (r.type !== T.record || !Array.isArray(r.inputs.failoverRoutingPolicies)) {
        return [];
      }
      const ttl = Number(r.inputs.ttl);
      return ttl <= 60 ? [] : [`TTL must be at most 60 s, got ${String(r.inputs.ttl)}`];
    },
  },
  {
    kind: "resource",
    name: "remote-commands-pin-host-key",
    description:
      "Every remote command's connection pins the server's host key (hostKey), never trusting the first key it sees.",
    check(r) {
      if (r.type !== T.command || r.inputs.connection === undefined) {
        return [];
      }
      const key = get(r.inputs, "connection", "hostKey");
      return typeof key === "string" && /^ssh-[a-z0-9-]+ [A-Za-z0-9+/=]+/.test(key)
        ? []
        : ["connection.hostKey must be the server's public host key (ssh-ed25519 AAAA…)"];
    },
  },
  {
    kind: "resource",
    name: "iam-no-wildcard-account-or-region",
    description:
      "IAM policy ARNs name the stack's region and account: no `*` in either field, no bare `*` resource.",
    check(r) {
      if (r.type !== T.rolePolicy && r.type !== T.policy) {
        return [];
      }
      let doc: { Statement?: unknown };
      try {
        doc =
          typeof r.inputs.policy === "string"
            ? JSON.parse(r.inputs.policy)
            : (r.inputs.policy as object);
      } catch {
        return ["the policy document must be JSON"];
      }
      const statements = Array.isArray(doc.Statement) ? doc.Statement : [doc.Statement];
      const out: string[] = [];
      for (const s of statements as Record<string, unknown>[]) {
        if (s?.Effect !== "Allow") {
          continue;
        }
        const resources = Array.isArray(s.Resource) ? s.Resource : [s.Resource];
        const actions = (Array.isArray(s.Action) ? s.Action : [s.Action]) as unknown[];
        // Actions AWS authorizes only on `*` (no resource-level permissions) may have it, alone.
        const unscopable =
          actions.length > 0 &&
          actions.every((a) => ACTIONS_ONLY_ON_ANY_RESOURCE.includes(String(a)));
        for (const arn of resources as unknown[]) {
          if (arn === "*" && unscopable) {
            continue;
          }
          if (arn === "*") {
            out.push("an Allow statement must name its resources, not `*`");
            continue;
          }
          const [, , , region, account] = String(arn).split(":");
          if ((region ?? "").includes("*") || (account ?? "").includes("*")) {
            out.push(`${String(arn)} must name the stack's region and account, not a wildcard`);
          }
        }
      }
      return out;
    },
  },
];

/**
 * Read-only actions that IAM supports only with `Resource: "*"` (AWS's service authorization
 * reference lists no resource type for them). route53:ListHostedZones: certbot's Route 53 plugin
 * finds the zone with it (mail's ACME DNS-01, issue 17); it lists zone names, no records.
 */
export const ACTIONS_ONLY_ON_ANY_RESOURCE: readonly string[] = ["route53:ListHostedZones"];

/** Runs every policy over a whole desired state (offline synth, or tests). */
export function checkResources(resources: PolicyInput[]): Violation[] {
  const out: Violation[] = [];
  for (const p of POLICIES) {
    if (p.kind === "stack") {
      out.push(...p.check(resources).map((v) => ({ policy: p.name, ...v })));
    } else {
      for (const r of resources) {
        out.push(...p.check(r).map((message) => ({ policy: p.name, urn: r.urn, message })));
      }
    }
  }
  return out;
}

/** One line per violation, as synth prints them. */
export function formatViolations(violations: Violation[]): string {
  return violations.map((v) => `  - [${v.policy}] ${v.urn ?? "(stack)"}: ${v.message}`).join("\n");
}

/** A KMS key named by ARN, id or alias that is not an AWS-managed one (alias/aws/…). */
function isCustomerKey(key: unknown): boolean {
  return typeof key === "string" && key !== "" && !key.startsWith("alias/aws/");
}
