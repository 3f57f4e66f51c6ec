// The whole-stack rehearsal's view of a synthesized stack (issue 11): which servers to boot, with
// which user-data, addresses, security groups and instance-profile policy; which SSM parameters,
// DNS zones and health checks the stand-ins serve. Pure: reads a Deployment, starts nothing.
//
// The offline synth records inputs only, so an address a resource gets from AWS (an ENI's private
// IPs, an EIP's public IP) is recomputed with the synth's own mock formula; `buildModel` checks
// every recomputed address against the places the synth references it (EIP associations, records,
// health checks) and fails when they disagree, so a change of the mock cannot go unnoticed.
import * as zlib from "zlib";
import { Deployment, SynthResource, mockEniAddresses, stableHash } from "../../synth/offline-synth";

export interface SecurityGroupRule {
  direction: "ingress" | "egress";
  /** "tcp", "udp", "icmp" or "-1" (all). */
  protocol: string;
  fromPort?: number;
  toPort?: number;
  /** Exactly one of cidr or group. */
  cidr?: string;
  group?: string;
  description: string;
}

export interface SecurityGroup {
  id: string;
  name: string;
  rules: SecurityGroupRule[];
}

export interface PolicyStatement {
  effect: "Allow" | "Deny";
  actions: string[];
  resources: string[];
  /** Condition operator → key → values; only StringEquals and StringLike are evaluated. */
  conditions?: Record<string, Record<string, string[]>>;
}

/** Condition operators the rehearsal evaluates; any other is refused when the model is built. */
export const CONDITION_OPERATORS = [
  "StringEquals",
  "StringLike",
  "ForAllValues:StringEquals",
  "ForAllValues:StringLike",
];

export interface RehearsalServer {
  /** Logical name of the instance, e.g. "mail-pair-primary". */
  logical: string;
  /** Name tag, e.g. "mail-primary": the container and host name in the rehearsal. */
  name: string;
  service: string;
  role: string;
  instanceId: string;
  userData: Buffer;
  /** Whether the user-data was gzip-compressed in the synth (cloud-init reads either). */
  userDataGzipped: boolean;
  keyName?: string;
  privateIp: string;
  /** Secondary private IPs of the primary ENI (the service-EIP targets). */
  secondaryIps: string[];
  /** MAC given to the ENI stand-in; IMDS serves the same. */
  mac: string;
  subnetId: string;
  /** The EIP bound to the primary private IP, if any. */
  publicIp?: string;
  securityGroups: string[];
  /** Instance profile role name and its inline policy statements. */
  roleName?: string;
  policy: PolicyStatement[];
  /** Managed policy ARNs attached to the role: the SSM stand-in cannot evaluate these. */
  managedPolicies: string[];
  httpTokensRequired: boolean;
}

export interface NatMapping {
  publicIp: string;
  privateIp: string;
  server: string;
}

export interface SsmParameter {
  name: string;
  /** The KMS key of a SecureString; undefined for the AWS-managed aws/ssm key. */
  keyId?: string;
  type: "String" | "StringList" | "SecureString";
  /** The synth's value, or undefined when the synth shows it as a secret. */
  value?: string;
}

export interface DnsRecord {
  name: string;
  type: string;
  ttl: number;
  values: string[];
  failover?: "PRIMARY" | "SECONDARY";
  healthCheckId?: string;
  setIdentifier?: string;
}

export interface DnsZone {
  name: string;
  private: boolean;
  records: DnsRecord[];
}

export interface HealthCheck {
  id: string;
  type: "HTTP" | "HTTPS" | "TCP";
  ipAddress: string;
  port: number;
  path?: string;
  intervalSeconds: number;
  failureThreshold: number;
}

export interface StackModel {
  region: string;
  vpcCidr: string;
  servers: RehearsalServer[];
  securityGroups: Map<string, SecurityGroup>;
  nat: NatMapping[];
  parameters: SsmParameter[];
  zones: DnsZone[];
  healthChecks: HealthCheck[];
  /** Logical names of command:remote:Command resources (run by Pulumi over SSH, not rehearsed). */
  remoteCommands: string[];
  /** Mock addresses the rehearsal had to change (invalid or duplicate), each explained. */
  remapped: string[];
  /** Config CIDRs the flows use: admin sources and the health checkers' published ranges. */
  adminCidrs: string[];
}

/** A synth that cannot be rehearsed: the message names the resource and what is missing. */
export class ModelError extends Error {}

const SECRET = "[secret]";

/** The address the synth's mock gives a resource of `type` named `name` (see offline-synth). */
export function mockAddresses(
  type: string,
  name: string,
): { privateIps?: string[]; publicIp?: string } {
  const h = stableHash(`${type}::${name}`);
  if (type === "aws:ec2/networkInterface:NetworkInterface") {
    return { privateIps: mockEniAddresses(name) };
  }
  if (type === "aws:ec2/eip:Eip") {
    return { publicIp: `198.51.100.${(h % 250) + 2}` };
  }
  return {};
}

function str(v: unknown): string | undefined {
  return typeof v === "string" ? v : undefined;
}

/** Resolves a reference that is a resource id or an auto-named physical name (`<logical>-<suffix>`). */
function byRef(rs: SynthResource[], ref: string | undefined): SynthResource | undefined {
  if (ref === undefined) {
    return undefined;
  }
  const exact = rs.find((r) => r.id === ref);
  if (exact) {
    return exact;
  }
  return rs
    .filter(
      (r) => ref.startsWith(`${r.name}-`) && /^[0-9a-f]{7}$/.test(ref.slice(r.name.length + 1)),
    )
    .sort((a, b) => b.name.length - a.name.length)[0];
}

function parsePolicy(doc: unknown, where: string): PolicyStatement[] {
  const parsed = typeof doc === "string" ? (JSON.parse(doc) as unknown) : doc;
  const stmts = (parsed as { Statement?: unknown }).Statement;
  const list = Array.isArray(stmts) ? stmts : stmts ? [stmts] : [];
  return list.map((s: Record<string, unknown>) => {
    const arr = (v: unknown): string[] => (Array.isArray(v) ? v.map(String) : v ? [String(v)] : []);
    if (s.Effect !== "Allow" && s.Effect !== "Deny") {
      throw new ModelError(
        `${where}: statement Effect must be Allow or Deny, got ${String(s.Effect)}`,
      );
    }
    if (s.NotAction || s.NotResource) {
      throw new ModelError(`${where}: NotAction/NotResource are not evaluated by the rehearsal`);
    }
    let conditions: PolicyStatement["conditions"];
    if (s.Condition) {
      conditions = {};
      for (const [op, keys] of Object.entries(
        s.Condition as Record<string, Record<string, unknown>>,
      )) {
        if (!CONDITION_OPERATORS.includes(op)) {
          throw new ModelError(
            `${where}: condition operator ${op} is not evaluated by the rehearsal (${CONDITION_OPERATORS.join(", ")})`,
          );
        }
        conditions[op] = Object.fromEntries(Object.entries(keys).map(([k, v]) => [k, arr(v)]));
      }
    }
    return { effect: s.Effect, actions: arr(s.Action), resources: arr(s.Resource), conditions };
  });
}

/** The apex of a zone known only by id: the longest common domain suffix of its record names. */
function commonSuffix(names: string[]): string {
  const split = names.map((n) => n.replace(/\.$/, "").split(".").reverse());
  const out: string[] = [];
  for (let i = 0; ; i++) {
    const label = split[0]?.[i];
    if (label === undefined || split.some((s) => s[i] !== label)) {
      break;
    }
    out.push(label);
  }
  return out.reverse().join(".");
}

function userDataOf(r: SynthResource): { data: Buffer; gzipped: boolean } {
  const b64 = str(r.inputs.userDataBase64);
  if (b64 !== undefined) {
    const raw = Buffer.from(b64, "base64");
    return raw[0] === 0x1f && raw[1] === 0x8b
      ? { data: zlib.gunzipSync(raw), gzipped: true }
      : { data: raw, gzipped: false };
  }
  const plain = str(r.inputs.userData);
  if (plain === undefined || plain === SECRET) {
    throw new ModelError(`${r.name}: no user-data in the synth (userData/userDataBase64)`);
  }
  return { data: Buffer.from(plain, "utf8"), gzipped: false };
}

/** Reads the rehearsal model from a deployment; collects every problem, then throws once. */
export function buildModel(d: Deployment, adminCidrs: string[], region: string): StackModel {
  const rs = d.deployment.resources;
  const problems: string[] = [];
  const ofType = (t: string): SynthResource[] => rs.filter((r) => r.type === t);

  // Security groups and their rules (inline ingress/egress and the vpc rule resources).
  const sgs = new Map<string, SecurityGroup>();
  for (const r of ofType("aws:ec2/securityGroup:SecurityGroup")) {
    const id = r.id ?? r.name;
    const rules: SecurityGroupRule[] = [];
    for (const dir of ["ingress", "egress"] as const) {
      for (const rule of (r.inputs[dir] as Record<string, unknown>[] | undefined) ?? []) {
        const base = {
          direction: dir,
          protocol: String(rule.protocol),
          fromPort: rule.fromPort as number,
          toPort: rule.toPort as number,
          description: String(rule.description ?? ""),
        };
        for (const c of (rule.cidrBlocks as string[] | undefined) ?? []) {
          rules.push({ ...base, cidr: c });
        }
        for (const g of (rule.securityGroups as string[] | undefined) ?? []) {
          rules.push({ ...base, group: g });
        }
        if (rule.self) {
          rules.push({ ...base, group: id });
        }
      }
    }
    sgs.set(id, { id, name: r.name, rules });
  }
  for (const [t, dir] of [
    ["aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule", "ingress"],
    ["aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule", "egress"],
  ] as const) {
    for (const r of ofType(t)) {
      const sg = sgs.get(String(r.inputs.securityGroupId));
      if (!sg) {
        problems.push(
          `${r.name}: security group ${String(r.inputs.securityGroupId)} is not in the synth`,
        );
        continue;
      }
      const cidr = str(r.inputs.cidrIpv4);
      const group = str(r.inputs.referencedSecurityGroupId);
      if (!cidr && !group) {
        if (r.inputs.cidrIpv6 || r.inputs.prefixListId) {
          continue; // IPv6 and prefix lists: the rehearsal network is IPv4 only
        }
        problems.push(`${r.name}: rule has neither cidrIpv4 nor referencedSecurityGroupId`);
        continue;
      }
      sg.rules.push({
        direction: dir,
        protocol: String(r.inputs.ipProtocol),
        fromPort: r.inputs.fromPort as number | undefined,
        toPort: r.inputs.toPort as number | undefined,
        cidr,
        group,
        description: String(r.inputs.description ?? ""),
      });
    }
  }

  // EIPs: public address (mock formula) and the private address they target.
  const enis = ofType("aws:ec2/networkInterface:NetworkInterface");
  const eniIps = new Map(
    enis.map((e) => [e.id ?? e.name, mockAddresses(e.type, e.name).privateIps ?? []]),
  );
  const remapped: string[] = [];
  const taken = new Set([...eniIps.values()].flat().filter(validIpv4));
  for (const [eni, ips] of eniIps) {
    ips.forEach((a, k) => {
      if (!validIpv4(a)) {
        const free = freeInSubnet(a, taken);
        taken.add(free);
        ips[k] = free;
        remapped.push(`${eni}: mock address ${a} is not an IPv4 address; rehearsed as ${free}`);
      }
    });
  }
  const nat: NatMapping[] = [];
  const eipPublic = new Map<string, string>();
  for (const e of ofType("aws:ec2/eip:Eip")) {
    eipPublic.set(e.id ?? e.name, mockAddresses(e.type, e.name).publicIp!);
  }
  const bind = (
    allocation: string,
    eni: string | undefined,
    privateIp: string | undefined,
    who: string,
  ): void => {
    const publicIp = eipPublic.get(allocation);
    if (!publicIp || !eni) {
      return;
    }
    const ips = eniIps.get(eni);
    if (!ips) {
      problems.push(`${who}: network interface ${eni} is not in the synth`);
      return;
    }
    const target = privateIp ?? ips[0];
    if (!ips.includes(target)) {
      problems.push(
        `${who}: targets ${target}, which the mock gives no address of ${eni} (${ips.join(", ")}): the synth's mock addresses changed`,
      );
      return;
    }
    nat.push({ publicIp, privateIp: target, server: eni });
  };
  for (const e of ofType("aws:ec2/eip:Eip")) {
    bind(
      e.id ?? e.name,
      str(e.inputs.networkInterface),
      str(e.inputs.associateWithPrivateIp),
      e.name,
    );
  }
  for (const a of ofType("aws:ec2/eipAssociation:EipAssociation")) {
    bind(
      String(a.inputs.allocationId),
      str(a.inputs.networkInterfaceId),
      str(a.inputs.privateIpAddress),
      a.name,
    );
  }

  // Servers.
  const servers: RehearsalServer[] = [];
  for (const inst of ofType("aws:ec2/instance:Instance")) {
    const tags = (inst.inputs.tags as Record<string, string> | undefined) ?? {};
    const eniId = str(
      (inst.inputs.primaryNetworkInterface as Record<string, unknown> | undefined)
        ?.networkInterfaceId,
    );
    const eni = enis.find((e) => (e.id ?? e.name) === eniId);
    if (!eni) {
      problems.push(
        `${inst.name}: primaryNetworkInterface ${String(eniId)} is not in the synth (the rehearsal wires servers through their ENIs)`,
      );
      continue;
    }
    let ud: { data: Buffer; gzipped: boolean };
    try {
      ud = userDataOf(inst);
    } catch (e) {
      problems.push((e as Error).message);
      continue;
    }
    const ips = eniIps.get(eniId!)!;
    const count = Number(eni.inputs.privateIpsCount ?? 0);
    const profile = byRef(
      ofType("aws:iam/instanceProfile:InstanceProfile"),
      str(inst.inputs.iamInstanceProfile),
    );
    const role = profile ? byRef(ofType("aws:iam/role:Role"), str(profile.inputs.role)) : undefined;
    const policy: PolicyStatement[] = [];
    const managedPolicies: string[] = [];
    if (role) {
      for (const p of ofType("aws:iam/rolePolicy:RolePolicy")) {
        if (byRef([role], str(p.inputs.role))) {
          try {
            policy.push(...parsePolicy(p.inputs.policy, p.name));
          } catch (e) {
            problems.push((e as Error).message);
          }
        }
      }
      for (const a of ofType("aws:iam/rolePolicyAttachment:RolePolicyAttachment")) {
        if (byRef([role], str(a.inputs.role))) {
          managedPolicies.push(String(a.inputs.policyArn));
        }
      }
    }
    const h = stableHash(inst.name);
    const meta = inst.inputs.metadataOptions as Record<string, unknown> | undefined;
    servers.push({
      logical: inst.name,
      name: tags.Name ?? inst.name,
      service: tags["hastack:service"] ?? "unknown",
      role: tags["hastack:role"] ?? "unknown",
      instanceId: inst.id ?? `i-${inst.name}`,
      userData: ud.data,
      userDataGzipped: ud.gzipped,
      keyName: str(inst.inputs.keyName),
      privateIp: ips[0],
      secondaryIps: ips.slice(1, 1 + count),
      // Locally administered unicast MAC, stable per instance.
      mac: `0a:${[h >>> 24, (h >>> 16) & 0xff, (h >>> 8) & 0xff, h & 0xff, servers.length]
        .map((b) => b.toString(16).padStart(2, "0"))
        .join(":")}`,
      subnetId: String(eni.inputs.subnetId ?? ""),
      publicIp: nat.find((n) => n.privateIp === ips[0])?.publicIp,
      securityGroups: ((eni.inputs.securityGroups as string[] | undefined) ?? []).slice(),
      roleName: role ? role.name : undefined,
      policy,
      managedPolicies,
      httpTokensRequired: meta?.httpTokens === "required",
    });
  }
  for (const n of nat) {
    const s = servers.find(
      (sv) => sv.privateIp === n.privateIp || sv.secondaryIps.includes(n.privateIp),
    );
    n.server = s ? s.name : n.server;
  }
  const seen = new Map<string, string>();
  for (const s of servers) {
    for (const ip of [s.privateIp, ...s.secondaryIps]) {
      if (seen.has(ip)) {
        problems.push(`${s.logical}: mock address ${ip} is also ${seen.get(ip)}'s`);
      }
      seen.set(ip, s.logical);
    }
  }

  // SSM parameters.
  const parameters: SsmParameter[] = ofType("aws:ssm/parameter:Parameter").map((p) => ({
    name: String(p.inputs.name),
    type: (str(p.inputs.type) ?? "String") as SsmParameter["type"],
    keyId: str(p.inputs.keyId),
    value: [p.inputs.value, p.inputs.insecureValue]
      .filter((v) => v !== undefined && v !== SECRET)
      .map(String)[0],
  }));

  // DNS zones: created zones by id; looked-up zones (records' zoneId only) by their names' apex.
  const created = new Map(
    ofType("aws:route53/zone:Zone").map((z) => [
      z.id ?? z.name,
      {
        name: String(z.inputs.name),
        private: Array.isArray(z.inputs.vpcs) && z.inputs.vpcs.length > 0,
      },
    ]),
  );
  const byZone = new Map<string, DnsRecord[]>();
  for (const r of ofType("aws:route53/record:Record")) {
    const i = r.inputs;
    const fo = (i.failoverRoutingPolicies as { type: string }[] | undefined)?.[0]?.type;
    if (i.aliases) {
      problems.push(`${r.name}: alias records are not rehearsed`);
      continue;
    }
    const rec: DnsRecord = {
      name: String(i.name).replace(/\.$/, ""),
      type: String(i.type),
      ttl: Number(i.ttl ?? 300),
      values: ((i.records as string[] | undefined) ?? []).map(String),
      failover: fo === "PRIMARY" || fo === "SECONDARY" ? fo : undefined,
      healthCheckId: str(i.healthCheckId),
      setIdentifier: str(i.setIdentifier),
    };
    const zid = String(i.zoneId);
    byZone.set(zid, [...(byZone.get(zid) ?? []), rec]);
  }
  const zones: DnsZone[] = [];
  for (const [zid, records] of byZone) {
    // The synth's records name a created zone by its zoneId output, which inputs do not hold: a
    // zone is recognised by the apex its records share.
    const apex = commonSuffix(records.map((r) => r.name));
    const known = created.get(zid) ?? [...created.values()].find((z) => z.name === apex);
    const name = known?.name ?? apex;
    if (!name.includes(".")) {
      problems.push(`zone ${zid}: cannot tell its name from its records`);
      continue;
    }
    zones.push({ name, private: known?.private ?? false, records });
  }

  const healthChecks: HealthCheck[] = ofType("aws:route53/healthCheck:HealthCheck").map((h) => ({
    id: h.id ?? h.name,
    type: String(h.inputs.type) as HealthCheck["type"],
    ipAddress: String(h.inputs.ipAddress),
    port: Number(h.inputs.port),
    path: str(h.inputs.resourcePath),
    intervalSeconds: Number(h.inputs.requestInterval ?? 30),
    failureThreshold: Number(h.inputs.failureThreshold ?? 3),
  }));
  // Every address the synth references must be one the mock formula gave.
  const publics = new Set(nat.map((n) => n.publicIp).concat([...eipPublic.values()]));
  for (const hc of healthChecks) {
    if (!publics.has(hc.ipAddress)) {
      problems.push(
        `health check ${hc.id}: ${hc.ipAddress} is no EIP of the synth (mock addresses changed?)`,
      );
    }
  }

  if (problems.length > 0) {
    throw new ModelError(`the synth cannot be rehearsed:\n  ${problems.join("\n  ")}`);
  }
  return {
    region,
    vpcCidr: "10.20.0.0/16",
    servers,
    securityGroups: sgs,
    nat,
    remapped,
    remoteCommands: ofType("command:remote:Command").map((r) => r.name),
    parameters,
    zones,
    healthChecks,
    adminCidrs,
  };
}

export function validIpv4(a: string): boolean {
  const o = a.split(".");
  return o.length === 4 && o.every((x) => /^\d{1,3}$/.test(x) && Number(x) <= 255);
}

/** A free host address in the /24 of `a` (its first three octets). */
function freeInSubnet(a: string, taken: Set<string>): string {
  const prefix = a.split(".").slice(0, 3).join(".");
  for (let h = 10; h < 255; h++) {
    if (!taken.has(`${prefix}.${h}`)) {
      return `${prefix}.${h}`;
    }
  }
  throw new ModelError(`no free address in ${prefix}.0/24 for ${a}`);
}

/** Whether IPv4 `ip` lies in `cidr`. */
export function inCidr(ip: string, cidr: string): boolean {
  const [base, bitsText] = cidr.split("/");
  const bits = Number(bitsText ?? 32);
  const n = (a: string): number => a.split(".").reduce((acc, o) => acc * 256 + Number(o), 0);
  const mask = bits === 0 ? 0 : 2 ** 32 - 2 ** (32 - bits);
  return (n(ip) & mask) >>> 0 === (n(base) & mask) >>> 0;
}
