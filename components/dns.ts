// The stack's DNS zone and the one rule that keeps record updates safe: every (name, type) is
// exactly one Route 53 record set. Route 53 rejects (or, with allowOverwrite, silently clobbers)
// a second record set for the same name and type, so several MX values must live in one set.
// Records are declared through `Dns.record`, which enforces the rule at declaration time and
// parents each record under the service that owns it (so impact plans map it to that service).
import * as pulumi from "@pulumi/pulumi";
import * as aws from "@pulumi/aws";

export type RecordType = "A" | "AAAA" | "CNAME" | "MX" | "TXT" | "SRV" | "PTR";

/** One Route 53 record set. */
export interface RecordSpec {
  /** Fully qualified name, e.g. `mail.example.co.id`. */
  name: string;
  type: RecordType;
  /** Seconds. Defaults to 300. */
  ttl?: number;
  /** All values of the set, e.g. every MX `"10 mx1.example.co.id"`. */
  records: pulumi.Input<string>[];
  /** Distinguishes the records of a routing policy (failover PRIMARY/SECONDARY). Defaults to none. */
  setIdentifier?: string;
  /** Failover routing role. Requires setIdentifier. Defaults to simple routing. */
  failover?: "PRIMARY" | "SECONDARY";
  /** Health check evaluated for failover routing. Defaults to none. */
  healthCheckId?: pulumi.Input<string>;
}

/** How the zone is found: exactly one of id, name or create. */
export interface DnsArgs {
  /** The mail domain; record names must be inside it. */
  domain: string;
  /** Look the zone up by id. */
  zoneId?: string;
  /** Look the zone up by name. */
  zoneName?: string;
  /** Create the zone (protected: deleting a live zone takes every service offline). Defaults to false. */
  create?: boolean;
  /**
   * VPC for the private zone `internal.<domain>`: names servers use to reach each other by
   * private address, so security-group rules that name a source group match the traffic
   * (traffic to a public EIP would arrive from a public address). Defaults to no private zone.
   */
  internalVpcId?: pulumi.Input<string>;
}

/** The name a server uses to reach `fqdn`: its private twin when the private zone exists. */
export function peerName(dns: Dns, fqdn: string): string {
  return dns.internalDomain !== undefined ? internalName(fqdn, dns.domain) : fqdn;
}

/** `db.kantor.co.id` → `db.internal.kantor.co.id`: the private twin of a public name. */
export function internalName(fqdn: string, domain: string): string {
  const name = fqdn.toLowerCase().replace(/\.$/, "");
  if (name !== domain && !name.endsWith(`.${domain}`)) {
    throw new Error(`${fqdn} is not inside ${domain}`);
  }
  const label = name === domain ? "" : name.slice(0, -(domain.length + 1)) + ".";
  return `${label}internal.${domain}`;
}

export class Dns extends pulumi.ComponentResource {
  public readonly zoneId: pulumi.Output<string>;
  public readonly domain: string;
  /** Name servers when the zone is created here (delegate the domain to them); else empty. */
  public readonly nameServers: pulumi.Output<string[]>;
  /** `internal.<domain>`, resolvable only inside the VPC; undefined without internalVpcId. */
  public readonly internalDomain?: string;
  public readonly internalZoneId?: pulumi.Output<string>;
  private readonly declared = new Map<string, string>();

  constructor(name: string, args: DnsArgs, opts?: pulumi.ComponentResourceOptions) {
    super("hastack:dns:Dns", name, {}, opts);
    this.domain = args.domain;
    const ways = [args.zoneId, args.zoneName, args.create ? true : undefined].filter(
      (w) => w !== undefined,
    );
    if (ways.length !== 1) {
      throw new Error(`Dns ${name}: give exactly one of zoneId, zoneName or create`);
    }
    if (args.create) {
      const zone = new aws.route53.Zone(
        `${name}-zone`,
        { name: args.domain, comment: "hastack service records", forceDestroy: false },
        { parent: this, protect: true, retainOnDelete: true },
      );
      this.zoneId = zone.zoneId;
      this.nameServers = zone.nameServers;
    } else {
      const found = aws.route53.getZoneOutput(
        args.zoneId ? { zoneId: args.zoneId } : { name: args.zoneName, privateZone: false },
        { parent: this },
      );
      this.zoneId = found.zoneId;
      this.nameServers = pulumi.output([]);
    }
    if (args.internalVpcId !== undefined) {
      this.internalDomain = `internal.${args.domain}`;
      const internal = new aws.route53.Zone(
        `${name}-internal`,
        {
          name: this.internalDomain,
          comment: "hastack private names: server-to-server traffic by private address",
          vpcs: [{ vpcId: args.internalVpcId }],
          forceDestroy: false,
        },
        { parent: this },
      );
      this.internalZoneId = internal.zoneId;
    }
    this.registerOutputs({
      zoneId: this.zoneId,
      nameServers: this.nameServers,
      internalZoneId: this.internalZoneId,
    });
  }

  /** Whether a name lives in the private zone. */
  isInternal(name: string): boolean {
    const n = name.toLowerCase().replace(/\.$/, "");
    return (
      this.internalDomain !== undefined &&
      (n === this.internalDomain || n.endsWith(`.${this.internalDomain}`))
    );
  }

  /**
   * Declares the one record set for (name, type[, setIdentifier]) as a child of `owner`.
   * Throws when that set was declared already: put every value in one call's `records`.
   */
  record(
    owner: pulumi.Resource,
    logicalName: string,
    spec: RecordSpec,
    opts: { dependsOn?: pulumi.Input<pulumi.Resource>[] } = {},
  ): aws.route53.Record {
    const problems = checkRecordSpec(spec, this.domain);
    if (problems.length > 0) {
      throw new Error(`DNS record ${logicalName}: ${problems.join("; ")}`);
    }
    const key = recordSetKey(spec);
    const previous = this.declared.get(key);
    if (previous !== undefined) {
      throw new Error(
        `DNS record ${logicalName}: ${key} is already declared by ${previous}; ` +
          "each (name, type) is one record set — put all values in one record",
      );
    }
    this.declared.set(key, logicalName);
    if (
      spec.name.toLowerCase().includes(`.internal.${this.domain}`) &&
      !this.isInternal(spec.name)
    ) {
      throw new Error(
        `DNS record ${logicalName}: ${spec.name} needs the private zone (give internalVpcId)`,
      );
    }
    return new aws.route53.Record(
      logicalName,
      {
        zoneId: this.isInternal(spec.name) ? this.internalZoneId! : this.zoneId,
        name: spec.name,
        type: spec.type,
        ttl: spec.ttl ?? 300,
        records: spec.records,
        setIdentifier: spec.setIdentifier,
        healthCheckId: spec.healthCheckId,
        failoverRoutingPolicies: spec.failover ? [{ type: spec.failover }] : undefined,
        // Never adopt a record someone made by hand: a collision must fail the update loudly.
        allowOverwrite: false,
      },
      { parent: owner, dependsOn: opts.dependsOn },
    );
  }
}

/** `mail.example.co.id MX` or `mail.example.co.id A #primary` — identity of a record set. */
export function recordSetKey(spec: Pick<RecordSpec, "name" | "type" | "setIdentifier">): string {
  const base = `${spec.name.toLowerCase().replace(/\.$/, "")} ${spec.type}`;
  return spec.setIdentifier ? `${base} #${spec.setIdentifier}` : base;
}

/** Problems with a record spec, as sentences; empty when it is fine. */
export function checkRecordSpec(spec: RecordSpec, domain: string): string[] {
  const problems: string[] = [];
  const name = spec.name.toLowerCase().replace(/\.$/, "");
  if (name !== domain && !name.endsWith(`.${domain}`) && spec.type !== "PTR") {
    problems.push(`name "${spec.name}" is outside the zone ${domain}`);
  }
  if (spec.records.length === 0) {
    problems.push("a record set needs at least one value");
  }
  if (spec.failover && !spec.setIdentifier) {
    problems.push("failover routing needs a setIdentifier");
  }
  if (spec.ttl !== undefined && (spec.ttl < 0 || !Number.isInteger(spec.ttl))) {
    problems.push(`ttl must be a whole number of seconds, got ${spec.ttl}`);
  }
  return problems;
}
