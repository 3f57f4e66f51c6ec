// A primary and a standby server for one service, running at once, one of them active.
// Everything both sides share is declared once; the real differences (role, AZ, subnet) are
// spelled out per Role. Flipping `active` must touch only the switch resources — the failover
// record pair (dns) or the service EIP association (eip) — never an instance, a volume or a
// security group: that is what makes a failover or fallback a small, reviewable stack update.
import * as pulumi from "@pulumi/pulumi";
import * as aws from "@pulumi/aws";
import { gzipSync } from "zlib";
import { stringify } from "yaml";
import { WIDE_CIDR_CEILING, type PairConfig } from "../lib/config/stack-config";
import { parseCidr } from "../lib/config/cidr";
import { Dns, internalName } from "./dns";
import {
  DEFAULT_BOOT_SECONDS,
  DEFAULT_TTL_SECONDS,
  HEALTH_CHECK_INTERVAL_SECONDS,
  Switchover,
  estimateRtoSeconds,
  ssmPrefix,
} from "./pair-defaults";
import { hastackLibWriteFile, renderServerFile, userDataFile } from "./server-files";
import * as tls from "@pulumi/tls";

export const Role = { Primary: "primary", Standby: "standby" } as const;
export type Role = (typeof Role)[keyof typeof Role];
export const ROLES: readonly Role[] = [Role.Primary, Role.Standby];

export function otherRole(role: Role): Role {
  return role === Role.Primary ? Role.Standby : Role.Primary;
}

// Defaults and RTO arithmetic live in pair-defaults.ts (no Pulumi import), shared with lib/impact.
export {
  HEALTH_CHECK_INTERVAL_SECONDS,
  OPERATOR_RESPONSE_SECONDS,
  Switchover,
  estimateRtoSeconds,
} from "./pair-defaults";
/** Port of the hastack health agent that Route 53 probes in dns mode (see renderHealthAgent). */
export const HEALTH_AGENT_PORT = 9780;
/** SSH and node_exporter: open on every server, from the admin CIDRs only. */
export const ADMIN_PORTS = [22, 9100] as const;
/** Where the data volume is mounted on every server. */
export const DATA_MOUNT = "/srv/data";

/**
 * dialErrorLimit of a remote command on a pair's server. At first boot sshd answers with the
 * image's host key until runcmd installs the pinned one, after the package installs (the
 * provider checks the key inside ssh.Dial, so each of those handshakes is a dial error), and a
 * busy first boot takes minutes. The provider waits 0.1 s growing 1.5× up to 5 s between dials:
 * 200 dials are about 16 minutes, the 900 s the commands themselves allow the first boot. 40
 * gave about 2.6 minutes (found by the stack rehearsal, issue 11).
 */
export const FIRST_BOOT_DIAL_ERROR_LIMIT = 200;

/** A port clients use. */
export interface ServicePort {
  protocol: "tcp" | "udp";
  fromPort: number;
  /** Last port of a range. Defaults to fromPort. */
  toPort?: number;
  description: string;
  /** Allowed sources. Defaults to 0.0.0.0/0 when no sourceSecurityGroupIds are given either. */
  cidrs?: string[];
  /** Security groups allowed (e.g. the PBX for MySQL). Defaults to none. */
  sourceSecurityGroupIds?: pulumi.Input<string>[];
  /** Name in the stack outputs' port list (e.g. "smtp"). Defaults to not listed. */
  name?: string;
  /** How monitoring probes it. Defaults to not probed. */
  probe?: "smtp_banner" | "imaps" | "tcp" | "mysql" | "sip_tcp" | "http";
}

export interface HealthCheckSpec {
  /** What Route 53 probes on the service itself (eip mode) or what the agent probes (dns mode). */
  type: "TCP" | "HTTP";
  port: number;
  /** For HTTP. Defaults to "/". */
  resourcePath?: string;
  failureThreshold: number;
}

/** Service-specific cloud-init content; renderCloudConfig adds what every server needs. */
export interface CloudConfigParts {
  hostname: string;
  fqdn: string;
  packages?: string[];
  writeFiles?: { path: string; content: string; permissions?: string; owner?: string }[];
  runcmd?: (string | string[])[];
  /** The local TCP port the health agent probes; set by ServerPair in dns mode. Defaults to no agent. */
  healthAgent?: { servicePort: number; failureThreshold: number };
  /**
   * SSM parameters of this server's host key and of its peer's known_hosts line, installed
   * first at boot (ServerPair sets them). Defaults to none (the image's own host keys).
   */
  hostKey?: { parameter: string; knownHostsParameter: string };
}

export interface ServerPairArgs {
  /** Service name used in tags, SSM paths and outputs: "mail", "pbx", "mysql", "nas". */
  service: string;
  /** Which side serves. */
  active: Role;
  switchover: Switchover;
  vpcId: pulumi.Input<string>;
  /** One subnet per side, in different AZs. */
  subnets: Record<Role, { id: pulumi.Input<string>; az: string }>;
  /** Pinned AMI; changes are ignored on existing servers (a new AMI never replaces a server). */
  ami: string;
  instanceType: string;
  /** Defaults to 20. */
  rootVolumeGb?: number;
  dataVolumeGb: number;
  /** EC2 key pair for SSH. Defaults to none (SSM or baked keys). */
  keyName?: string;
  /**
   * Per-side cloud-init parts; ServerPair renders them (adding the data-volume mount and, in
   * dns mode, the fencing health agent). Give either this or userData.
   */
  cloudConfig?: Record<Role, CloudConfigParts>;
  /** Per-side user-data rendered by the caller (eip mode only: dns mode needs the agent). */
  userData?: Record<Role, pulumi.Input<string>>;
  servicePorts: ServicePort[];
  /**
   * TCP admin ports, reachable only from adminCidrs; SSH and node_exporter (Prometheus scrapes
   * from the admin network, docs/outputs.md) are always among them. Defaults to [22, 9100].
   */
  adminPorts?: number[];
  adminCidrs: string[];
  /** TCP ports open between the two servers (replication, sync). Defaults to [22]. */
  peerPorts?: number[];
  /**
   * What the servers reach beyond BASE_EGRESS, the peer ports and the services whose ingress
   * names this pair's group (those declare their own egress here): SMTP out, SIP to trunks.
   * Defaults to none.
   */
  egress?: EgressPort[];
  /** The customer-managed key of the stack's SecureStrings (PairPlacement). Defaults to none. */
  secretsKeyArn?: pulumi.Input<string>;
  /** The stack's SSM root (PairPlacement.ssmRoot). Defaults to /hastack. */
  ssmRoot?: string;
  /** The customer-managed key of the volumes (PairPlacement). Defaults to aws/ebs. */
  volumeKeyArn?: pulumi.Input<string>;
  healthCheck: HealthCheckSpec;
  /** Record TTL of the switch records, at most 60. Defaults to 60. */
  ttl?: number;
  /** Seconds until the service answers after an instance start. Defaults to 180. */
  bootSeconds?: number;
  dns: Dns;
  /** FQDN clients use, e.g. "mail.example.co.id". */
  serviceName: string;
  /** FQDNs of per-server A records, e.g. mx1/mx2. Defaults to none. */
  serverNames?: Record<Role, string>;
  /**
   * Set each server EIP's reverse DNS (PTR) to its serverNames entry — what receiving mail
   * servers check. Needs serverNames. Defaults to false.
   */
  reverseDns?: boolean;
  /**
   * While a migration keeps clients on an old server: the public service name's PRIMARY
   * record answers with this address, without a health check (the old server is not ours to
   * probe). Still the same two failover records, so moving clients later is a record update.
   * Defaults to none.
   */
  serviceAddressOverride?: pulumi.Input<string>;
  /**
   * Leave the switch resources to a later `declareSwitch({ dependsOn })`, so they can wait for
   * role-change commands (MySQL promotes before its name moves). Defaults to false.
   */
  deferSwitch?: boolean;
}

/**
 * Where a service's pair runs: what every service component takes besides its own config
 * (index.ts builds it once from the stack config).
 */
export interface PairPlacement {
  /** hastack:domain: every record lives in it. */
  domain: string;
  dns: Dns;
  /** The VPC and one subnet per side (different AZs). */
  network: {
    vpcId: pulumi.Input<string>;
    subnets: Record<Role, { id: pulumi.Input<string>; az: string }>;
  };
  /** Pinned AMI (hastack:ami); the service's own `ami` wins. */
  ami: string;
  /** hastack:adminCidrs: SSH, node_exporter and admin ports only from these. */
  adminCidrs: string[];
  /** EC2 key pair. Defaults to none. */
  keyName?: string;
  /**
   * ARN of the customer-managed key the stack's SecureStrings use (SecretsKey); each role may
   * decrypt with it only its own prefix. Defaults to none (the account's aws/ssm key).
   */
  secretsKeyArn?: pulumi.Input<string>;
  /**
   * Parent of every service's SSM prefix (`<ssmRoot>/<service>`): index.ts passes
   * hastack:ssmRoot, else `/hastack/<stack>`. Defaults to /hastack (a component built alone).
   */
  ssmRoot?: string;
  /**
   * ARN of the customer-managed key the data volumes and root disks are created under
   * (VolumeKey). A live volume keeps its key (changes of it are ignored). Defaults to aws/ebs.
   */
  volumeKeyArn?: pulumi.Input<string>;
}

/**
 * The ServerPair arguments a service's config object and placement decide, spelled once so the
 * four services cannot drift apart; each component adds what is its own (ports, user-data,
 * health check, names).
 */
export function pairBasics(
  service: string,
  cfg: PairConfig,
  placement: PairPlacement,
  switchover: Switchover,
): Pick<
  ServerPairArgs,
  | "service"
  | "active"
  | "switchover"
  | "vpcId"
  | "subnets"
  | "ami"
  | "instanceType"
  | "rootVolumeGb"
  | "dataVolumeGb"
  | "keyName"
  | "secretsKeyArn"
  | "ssmRoot"
  | "volumeKeyArn"
  | "adminCidrs"
  | "ttl"
  | "bootSeconds"
  | "dns"
> {
  return {
    service,
    active: cfg.active,
    switchover,
    vpcId: placement.network.vpcId,
    subnets: placement.network.subnets,
    ami: cfg.ami ?? placement.ami,
    instanceType: cfg.instanceType,
    rootVolumeGb: cfg.rootVolumeGb,
    dataVolumeGb: cfg.dataVolumeGb,
    keyName: placement.keyName,
    secretsKeyArn: placement.secretsKeyArn,
    ssmRoot: placement.ssmRoot,
    volumeKeyArn: placement.volumeKeyArn,
    adminCidrs: placement.adminCidrs,
    ttl: cfg.ttl,
    bootSeconds: cfg.bootSeconds,
    dns: placement.dns,
  };
}

/** Per-side facts for outputs. */
export interface SideSummary {
  instanceId: pulumi.Output<string>;
  privateIp: pulumi.Output<string>;
  publicIp: pulumi.Output<string>;
  az: string;
}

/** The monitoring and downtime-plan contract for one service (docs/outputs.md). */
export interface ServiceSummary {
  service: string;
  activeSide: Role;
  standbySide: Role;
  switchover: Switchover;
  dnsName: string;
  ttl: number;
  endpoint: pulumi.Output<string>;
  ports: { name: string; port: number; protocol: "tcp" | "udp"; probe: string }[];
  healthCheck: { type: string; port: number; intervalSeconds: number; failureThreshold: number };
  healthCheckIds: Record<Role, pulumi.Output<string>>;
  sides: Record<Role, SideSummary>;
  bootSeconds: number;
  rtoSeconds: number;
  rpoSeconds: number;
}

export class ServerPair extends pulumi.ComponentResource {
  public readonly service: string;
  public readonly activeSide: Role;
  public readonly switchover: Switchover;
  public readonly serviceName: string;
  /** SSM parameter path the servers may read secrets from: `<ssmRoot>/<service>`. */
  public readonly ssmPrefix: string;
  public readonly securityGroupId: pulumi.Output<string>;
  public readonly instances: Record<Role, aws.ec2.Instance>;
  public readonly dataVolumes: Record<Role, aws.ebs.Volume>;
  public readonly publicIps: Record<Role, pulumi.Output<string>>;
  public readonly privateIps: Record<Role, pulumi.Output<string>>;
  public readonly endpointIp: pulumi.Output<string>;
  public readonly healthCheckIds: Record<Role, pulumi.Output<string>>;
  /** `<service>.internal.<domain>`: follows `active` by private address. Undefined without the private zone. */
  public readonly internalServiceName?: string;
  /** Private names of the two servers (`mx1.internal.<domain>`). */
  public readonly internalServerNames?: Record<Role, string>;
  public readonly summary: ServiceSummary;
  /**
   * Each server's SSH host public key ("ssh-ed25519 AAAA…"), generated by the stack and installed
   * at first boot: what remote commands pin as `hostKey` (issue 13).
   */
  public readonly hostKeys: Record<Role, pulumi.Output<string>>;
  /**
   * One known_hosts line per server — every name it is reached by (the service names too, so a
   * client of the service such as the NAS pins both sides) and its key — for clients to pin.
   */
  public readonly knownHostsLines: pulumi.Output<string>;
  /** The servers' IAM role: a service adds its own scoped policies (mail: ACME DNS-01, issue 17). */
  public readonly role: aws.iam.Role;
  private pendingSwitch?: (dependsOn: pulumi.Input<pulumi.Resource>[]) => void;

  constructor(name: string, args: ServerPairArgs, opts?: pulumi.ComponentResourceOptions) {
    super("hastack:server:ServerPair", name, {}, opts);
    const ttl = args.ttl ?? DEFAULT_TTL_SECONDS;
    const bootSeconds = args.bootSeconds ?? DEFAULT_BOOT_SECONDS;
    const adminPorts = [...new Set([...ADMIN_PORTS, ...(args.adminPorts ?? [])])];
    const peerPorts = args.peerPorts ?? [22];
    throwIfInvalid(`ServerPair ${name}`, checkServerPairArgs(args));
    this.service = args.service;
    this.activeSide = args.active;
    this.switchover = args.switchover;
    this.serviceName = args.serviceName;
    this.ssmPrefix = ssmPrefix(args.ssmRoot, args.service);
    const tags = (role?: Role): Record<string, string> => ({
      "hastack:service": args.service,
      ...(role ? { "hastack:role": role, Name: `${args.service}-${role}` } : {}),
    });

    const sg = new aws.ec2.SecurityGroup(
      `${name}-sg`,
      {
        vpcId: args.vpcId,
        description: `hastack ${args.service}: service ports, admin from admin CIDRs, peer sync`,
        tags: tags(),
      },
      { parent: this },
    );
    this.securityGroupId = sg.id;
    for (const rule of ingressRules(args.servicePorts, adminPorts, args.adminCidrs, peerPorts)) {
      new aws.vpc.SecurityGroupIngressRule(
        `${name}-in-${rule.key}`,
        {
          securityGroupId: sg.id,
          ipProtocol: rule.protocol,
          fromPort: rule.fromPort,
          toPort: rule.toPort,
          cidrIpv4: rule.cidr,
          referencedSecurityGroupId: rule.fromPeer ? sg.id : rule.sourceSecurityGroupId,
          description: rule.description,
        },
        { parent: this },
      );
    }
    // Egress per need, never all-to-anywhere (issue 13): what every server needs, the peer
    // ports to the peer, and the service's own list; flows to another pair's group are declared
    // by the pair that admits them (below), so both ends come from one declaration.
    for (const rule of egressRules([...BASE_EGRESS, ...(args.egress ?? [])], peerPorts)) {
      new aws.vpc.SecurityGroupEgressRule(
        `${name}-out-${rule.key}`,
        {
          securityGroupId: sg.id,
          ipProtocol: rule.protocol,
          fromPort: rule.fromPort,
          toPort: rule.toPort,
          cidrIpv4: rule.cidr,
          referencedSecurityGroupId: rule.toPeer ? sg.id : undefined,
          description: rule.description,
        },
        { parent: this },
      );
    }
    // A client group admitted by a service port (the NAS, the PBX) may send to this group on
    // exactly that port: the egress twin of the ingress rule, on the client's group.
    for (const rule of clientEgressRules(args.servicePorts)) {
      new aws.vpc.SecurityGroupEgressRule(
        `${name}-client-out-${rule.key}`,
        {
          securityGroupId: rule.sourceSecurityGroupId,
          ipProtocol: rule.protocol,
          fromPort: rule.fromPort,
          toPort: rule.toPort,
          referencedSecurityGroupId: sg.id,
          description: `to hastack ${args.service}: ${rule.description}`,
        },
        { parent: this },
      );
    }
    // Route 53's health checkers come from AWS-published ranges (ip-ranges.json, listed per
    // checker region, so no region filter); only they reach the probed port: the fencing agent
    // in dns mode, the service's own health-check port in eip mode.
    const probedPort = args.switchover === "dns" ? HEALTH_AGENT_PORT : args.healthCheck.port;
    const checkers = aws.getIpRangesOutput(
      { services: ["route53_healthchecks"] },
      { parent: this },
    );
    const checkerSg = new aws.ec2.SecurityGroup(
      `${name}-health-sg`,
      {
        vpcId: args.vpcId,
        description: `hastack ${args.service}: Route 53 health checkers to the probed port`,
        ingress: [
          {
            protocol: "tcp",
            fromPort: probedPort,
            toPort: probedPort,
            cidrBlocks: checkers.cidrBlocks,
            description: "Route 53 health checkers",
          },
        ],
        tags: tags(),
      },
      { parent: this },
    );
    const securityGroupIds: pulumi.Input<string>[] = [sg.id, checkerSg.id];

    const role = new aws.iam.Role(
      `${name}-role`,
      {
        assumeRolePolicy: JSON.stringify({
          Version: "2012-10-17",
          Statement: [
            {
              Effect: "Allow",
              Principal: { Service: "ec2.amazonaws.com" },
              Action: "sts:AssumeRole",
            },
          ],
        }),
        tags: tags(),
      },
      { parent: this },
    );
    // ARNs with this stack's region and account, never `*:*`; decrypt with the stack's key only
    // through SSM and only for this service's prefix.
    const region = aws.getRegionOutput({}, { parent: this }).region;
    const account = aws.getCallerIdentityOutput({}, { parent: this }).accountId;
    new aws.iam.RolePolicy(
      `${name}-read-secrets`,
      {
        role: role.id,
        policy: pulumi
          .all([region, account, args.secretsKeyArn])
          .apply(([r, a, keyArn]) =>
            JSON.stringify(
              readSecretsPolicy({ region: r, account: a, prefix: this.ssmPrefix, keyArn }),
            ),
          ),
      },
      { parent: this },
    );
    const profile = new aws.iam.InstanceProfile(
      `${name}-profile`,
      { role: role.name, tags: tags() },
      { parent: this },
    );

    // Host keys generated by the stack (secret), kept in each server's SSM path and installed
    // at first boot, so no client ever has to trust the first key it sees.
    const hostKeyParameters = mapRoles((side) => ({
      parameter: `${this.ssmPrefix}/ssh-host-key/${side}`,
      knownHostsParameter: `${this.ssmPrefix}/ssh-known-hosts/${side}`,
    }));
    const hostKeys = mapRoles(
      (side) =>
        new tls.PrivateKey(`${name}-${side}-host-key`, { algorithm: "ED25519" }, { parent: this }),
    );
    for (const side of ROLES) {
      new aws.ssm.Parameter(
        `${name}-${side}-host-key`,
        {
          name: hostKeyParameters[side].parameter,
          type: "SecureString",
          keyId: args.secretsKeyArn,
          value: hostKeys[side].privateKeyOpenssh,
          description: `hastack: SSH host key of the ${args.service} ${side} (installed at first boot)`,
        },
        { parent: this },
      );
    }
    this.hostKeys = mapRoles((side) => hostKeys[side].publicKeyOpenssh.apply((k) => k.trim()));
    this.role = role;

    const userData = resolveUserData(args, hostKeyParameters);
    const instances = {} as Record<Role, aws.ec2.Instance>;
    const dataVolumes = {} as Record<Role, aws.ebs.Volume>;
    const eips = {} as Record<Role, aws.ec2.Eip>;
    const healthChecks = {} as Record<Role, aws.route53.HealthCheck>;
    const enis = {} as Record<Role, aws.ec2.NetworkInterface>;
    for (const side of ROLES) {
      const subnet = args.subnets[side];
      // Each server's primary interface carries one secondary private IP: the service EIP (eip
      // mode) binds to it, so it never displaces the server's own EIP on the primary IP. Both
      // modes get it, so changing `switchover` later never replaces a server.
      enis[side] = new aws.ec2.NetworkInterface(
        `${name}-${side}-eni`,
        {
          subnetId: subnet.id,
          securityGroups: securityGroupIds,
          privateIpsCount: 1,
          description: `hastack ${args.service} ${side}`,
          tags: tags(side),
        },
        { parent: this },
      );
      instances[side] = new aws.ec2.Instance(
        `${name}-${side}`,
        {
          ami: args.ami,
          instanceType: args.instanceType,
          primaryNetworkInterface: { networkInterfaceId: enis[side].id },
          iamInstanceProfile: profile.name,
          keyName: args.keyName,
          ...userDataInputs(userData[side]),
          metadataOptions: {
            httpTokens: "required",
            httpEndpoint: "enabled",
            httpPutResponseHopLimit: 1,
          },
          rootBlockDevice: {
            encrypted: true,
            kmsKeyId: args.volumeKeyArn,
            volumeType: "gp3",
            volumeSize: args.rootVolumeGb ?? 20,
            deleteOnTermination: true,
          },
          disableApiTermination: true,
          instanceInitiatedShutdownBehavior: "stop",
          tags: tags(side),
          volumeTags: tags(side),
        },
        {
          parent: this,
          protect: true,
          // user-data runs at first boot only; a changed AMI or user-data must never replace or
          // stop/start a live server. Config changes after boot go through reviewed commands.
          // A root disk's key is fixed at launch (a new one would replace the server): servers
          // made before the volume key keep aws/ebs (VolumeKey).
          ignoreChanges: ["ami", "userData", "userDataBase64", "rootBlockDevice.kmsKeyId"],
        },
      );
      dataVolumes[side] = new aws.ebs.Volume(
        `${name}-${side}-data`,
        {
          availabilityZone: subnet.az,
          size: args.dataVolumeGb,
          type: "gp3",
          encrypted: true,
          kmsKeyId: args.volumeKeyArn,
          tags: { ...tags(side), Name: `${args.service}-${side}-data`, "hastack:backup": "true" },
        },
        // A new key would replace the volume with an empty one: a live volume keeps its key
        // until the snapshot → copy → new-volume runbook moves it (VolumeKey, README Security).
        { parent: this, protect: true, retainOnDelete: true, ignoreChanges: ["kmsKeyId"] },
      );
      new aws.ec2.VolumeAttachment(
        `${name}-${side}-data-attach`,
        {
          deviceName: "/dev/sdf",
          volumeId: dataVolumes[side].id,
          instanceId: instances[side].id,
          stopInstanceBeforeDetaching: true,
        },
        { parent: this },
      );
      // The server's own address: stable across stop/start, named in SPF and PTR records.
      eips[side] = new aws.ec2.Eip(
        `${name}-${side}-eip`,
        {
          domain: "vpc",
          networkInterface: enis[side].id,
          associateWithPrivateIp: enis[side].privateIp,
          tags: tags(side),
        },
        { parent: this, protect: true, retainOnDelete: true },
      );
      healthChecks[side] = new aws.route53.HealthCheck(
        `${name}-${side}-hc`,
        healthCheckInputs(
          args.switchover,
          args.healthCheck,
          eips[side].publicIp,
          `${args.service}-${side}`,
        ),
        { parent: this },
      );
    }
    this.instances = instances;
    this.dataVolumes = dataVolumes;
    this.publicIps = mapRoles((side) => eips[side].publicIp);
    this.privateIps = mapRoles((side) => enis[side].privateIp);
    const floatingIps = mapRoles((side) =>
      pulumi
        .all([enis[side].privateIp, enis[side].privateIps])
        .apply(([primary, all]) => all.find((ip) => ip !== primary) ?? primary),
    );
    this.healthCheckIds = mapRoles((side) => healthChecks[side].id);

    if (args.serverNames) {
      for (const side of ROLES) {
        const forward = args.dns.record(this, `${name}-${side}-a`, {
          name: args.serverNames[side],
          type: "A",
          ttl: 300,
          records: [this.publicIps[side]],
        });
        if (args.reverseDns) {
          // AWS sets an EIP's PTR only once the forward record resolves to it.
          new aws.ec2.EipDomainName(
            `${name}-${side}-ptr`,
            { allocationId: eips[side].allocationId, domainName: args.serverNames[side] },
            { parent: this, dependsOn: [forward] },
          );
        }
      }
    }

    // Private twins of the names, for server-to-server traffic (replication, sync, backups,
    // CDR): it then arrives from private addresses, which security-group rules can name.
    const internal = args.dns.internalDomain !== undefined;
    this.internalServiceName = internal
      ? internalName(args.serviceName, args.dns.domain)
      : undefined;
    this.internalServerNames =
      internal && args.serverNames
        ? mapRoles((side) => internalName(args.serverNames![side], args.dns.domain))
        : undefined;
    if (this.internalServerNames) {
      for (const side of ROLES) {
        args.dns.record(this, `${name}-${side}-internal-a`, {
          name: this.internalServerNames[side],
          type: "A",
          ttl: 300,
          records: [this.privateIps[side]],
        });
      }
    }

    // Each side's known_hosts line for its peer: every name the peer is reached by, its key.
    const knownHostsLine = (side: Role, serviceNames: string[] = []): pulumi.Output<string> =>
      pulumi
        .all([
          pulumi.all([
            ...serviceNames,
            ...(this.internalServerNames ? [this.internalServerNames[side]] : []),
            ...(args.serverNames ? [args.serverNames[side]] : []),
            this.privateIps[side],
          ]),
          this.hostKeys[side],
        ])
        .apply(([n, key]) => `${n.join(",")} ${key}`);
    this.knownHostsLines = pulumi
      .all(
        ROLES.map((side) =>
          knownHostsLine(side, [
            ...(this.internalServiceName ? [this.internalServiceName] : []),
            args.serviceName,
          ]),
        ),
      )
      .apply((lines) => lines.join("\n"));
    for (const side of ROLES) {
      const peer = otherRole(side);
      new aws.ssm.Parameter(
        `${name}-${side}-known-hosts`,
        {
          name: hostKeyParameters[side].knownHostsParameter,
          type: "String",
          // Public data: insecureValue keeps it readable in previews (`value` is always secret).
          insecureValue: knownHostsLine(peer),
          description: `hastack: the ${args.service} ${peer}'s SSH host key, pinned by the ${side}`,
        },
        { parent: this },
      );
    }

    // The service EIP itself is no switch: phones and SIP trunks register to it, so it must
    // outlive any server. Only its association moves.
    const serviceEip =
      args.switchover === "eip"
        ? new aws.ec2.Eip(
            `${name}-service-eip`,
            { domain: "vpc", tags: { ...tags(), Name: `${args.service}-service` } },
            { parent: this, protect: true, retainOnDelete: true },
          )
        : undefined;
    if (serviceEip) {
      args.dns.record(this, `${name}-service-a`, {
        name: args.serviceName,
        type: "A",
        ttl,
        records: [serviceEip.publicIp],
      });
    }
    this.endpointIp = serviceEip ? serviceEip.publicIp : this.publicIps[args.active];

    // The switch: the only resources a flip of `active` may change.
    this.pendingSwitch = (dependsOn) => {
      const opts = { dependsOn };
      if (serviceEip) {
        new aws.ec2.EipAssociation(
          `${name}-service-eip-assoc`,
          {
            allocationId: serviceEip.allocationId,
            networkInterfaceId: enis[args.active].id,
            privateIpAddress: floatingIps[args.active],
            allowReassociation: true,
          },
          { parent: this, dependsOn },
        );
        if (this.internalServiceName) {
          args.dns.record(
            this,
            `${name}-service-internal-a`,
            { name: this.internalServiceName, type: "A", ttl, records: [floatingIps[args.active]] },
            opts,
          );
        }
        return;
      }
      // Records are named by routing role, not by server: a flip rewrites each record's value
      // and health check in one UPSERT, so Route 53 never sees two PRIMARY records at once.
      const failoverPair = (
        suffix: string,
        fqdn: string,
        ips: Record<Role, pulumi.Output<string>>,
        override?: pulumi.Input<string>,
      ): void => {
        for (const rec of failoverRecords(args.active)) {
          const routing = rec.failover.toLowerCase();
          const overridden = override !== undefined && rec.failover === "PRIMARY";
          args.dns.record(
            this,
            `${name}${suffix}-failover-${routing}`,
            {
              name: fqdn,
              type: "A",
              ttl,
              records: [overridden ? override : ips[rec.side]],
              setIdentifier: `${args.service}-${routing}`,
              failover: rec.failover,
              healthCheckId: overridden ? undefined : this.healthCheckIds[rec.side],
            },
            opts,
          );
        }
      };
      failoverPair("", args.serviceName, this.publicIps, args.serviceAddressOverride);
      if (this.internalServiceName) {
        failoverPair("-internal", this.internalServiceName, this.privateIps);
      }
    };
    if (!args.deferSwitch) {
      this.declareSwitch();
    }

    this.summary = {
      service: args.service,
      activeSide: args.active,
      standbySide: otherRole(args.active),
      switchover: args.switchover,
      dnsName: args.serviceName,
      ttl,
      endpoint: args.switchover === "dns" ? pulumi.output(args.serviceName) : this.endpointIp,
      ports: args.servicePorts
        .filter((p) => p.name && p.probe)
        .map((p) => ({ name: p.name!, port: p.fromPort, protocol: p.protocol, probe: p.probe! })),
      healthCheck: {
        type: args.switchover === "dns" ? "HTTP" : args.healthCheck.type,
        port: args.switchover === "dns" ? HEALTH_AGENT_PORT : args.healthCheck.port,
        intervalSeconds: HEALTH_CHECK_INTERVAL_SECONDS,
        failureThreshold: args.healthCheck.failureThreshold,
      },
      healthCheckIds: this.healthCheckIds,
      sides: mapRoles((side) => ({
        instanceId: instances[side].id,
        privateIp: this.privateIps[side],
        publicIp: this.publicIps[side],
        az: args.subnets[side].az,
      })),
      bootSeconds,
      rtoSeconds: estimateRtoSeconds({
        switchover: args.switchover,
        ttl,
        failureThreshold: args.healthCheck.failureThreshold,
      }),
      rpoSeconds: 0,
    };
    this.registerOutputs({
      activeSide: this.activeSide,
      endpointIp: this.endpointIp,
      securityGroupId: this.securityGroupId,
      healthCheckIds: this.healthCheckIds,
    });
  }

  /**
   * Declares the switch resources (failover records, or the service EIP association and the
   * internal name). With `deferSwitch`, a component calls this once its role-change steps exist,
   * so traffic moves only after them — and not at all when a step refuses.
   */
  declareSwitch(opts: { dependsOn?: pulumi.Input<pulumi.Resource>[] } = {}): void {
    if (!this.pendingSwitch) {
      throw new Error(`ServerPair ${this.service}: the switch is declared already`);
    }
    const declare = this.pendingSwitch;
    this.pendingSwitch = undefined;
    declare(opts.dependsOn ?? []);
  }
}

/** One problem with a component's arguments, as pulumi-eks reports them. */
export interface ArgProblem {
  /** The argument, e.g. `subnets.standby.az`. */
  propertyPath: string;
  reason: string;
}

/**
 * Every problem with a component's arguments, thrown once. A RunError, so `pulumi up` and the
 * offline synth print the list without a stack trace; `errors` keeps each problem apart, with
 * the same shape as pulumi.InputPropertiesError's.
 */
export class ComponentArgsError extends pulumi.RunError {
  constructor(
    public readonly component: string,
    public readonly errors: ArgProblem[],
  ) {
    super(
      `${component}: invalid arguments:\n` +
        errors.map((e) => `  - ${e.propertyPath}: ${e.reason}`).join("\n"),
    );
  }
}

/** Throws a ComponentArgsError listing every problem; does nothing when there is none. */
export function throwIfInvalid(component: string, problems: ArgProblem[]): void {
  if (problems.length > 0) {
    throw new ComponentArgsError(component, problems);
  }
}

/** Problems with the arguments, each naming its argument; empty when they are fine. */
export function checkServerPairArgs(args: ServerPairArgs): ArgProblem[] {
  const problems: ArgProblem[] = [];
  const add = (propertyPath: string, reason: string): void => {
    problems.push({ propertyPath, reason });
  };
  if (args.subnets.primary.az === args.subnets.standby.az) {
    add(
      "subnets",
      `primary and standby must be in different availability zones (both ${args.subnets.primary.az})`,
    );
  }
  if ((args.ttl ?? 60) > 60) {
    add(
      "ttl",
      `switch record TTL must be at most 60 s so a failover is seen quickly, got ${args.ttl}`,
    );
  }
  if (args.cloudConfig === undefined && args.userData === undefined) {
    add("cloudConfig", "give cloudConfig (preferred) or userData");
  }
  if (args.switchover === "dns" && args.cloudConfig === undefined) {
    add("cloudConfig", "dns switchover needs cloudConfig so the fencing health agent is installed");
  }
  if (args.reverseDns && !args.serverNames) {
    add("serverNames", "reverseDns needs serverNames (the PTR points at the server's own name)");
  }
  if (args.adminCidrs.length === 0) {
    add("adminCidrs", "at least one admin CIDR is required");
  }
  // Parsed, not compared (issue 13): the config floor is checked before this; here the last
  // line holds for any caller — never wider than a /8, never unparsed text.
  for (const text of args.adminCidrs) {
    const parsed = parseCidr(text);
    if (!parsed.ok) {
      add("adminCidrs", `admin CIDR ${JSON.stringify(text)} must be ${parsed.reason}`);
    } else if (parsed.cidr.prefix < WIDE_CIDR_CEILING.prefix) {
      add("adminCidrs", `admin ports must not be open to ${text}`);
    }
  }
  return problems;
}

/**
 * The servers' only IAM permissions: read their own SSM prefix in this region and account, and
 * (with the stack's key) decrypt only those parameters, only through SSM.
 */
export function readSecretsPolicy(o: {
  region: string;
  account: string;
  prefix: string;
  keyArn?: string;
}): Record<string, unknown> {
  const parameters = `arn:aws:ssm:${o.region}:${o.account}:parameter${o.prefix}/*`;
  return {
    Version: "2012-10-17",
    Statement: [
      {
        Sid: "ReadOwnParameters",
        Effect: "Allow",
        Action: ["ssm:GetParameter", "ssm:GetParameters"],
        Resource: parameters,
      },
      ...(o.keyArn
        ? [
            {
              Sid: "DecryptOwnParameters",
              Effect: "Allow",
              Action: "kms:Decrypt",
              Resource: o.keyArn,
              Condition: {
                StringLike: { "kms:EncryptionContext:PARAMETER_ARN": parameters },
                StringEquals: { "kms:ViaService": `ssm.${o.region}.amazonaws.com` },
              },
            },
          ]
        : []),
    ],
  };
}

/** One port range a server may send to: to CIDRs, or to the peer (its own group). */
export interface EgressPort {
  protocol: "tcp" | "udp";
  fromPort: number;
  /** Last port of a range. Defaults to fromPort. */
  toPort?: number;
  cidrs: string[];
  description: string;
}

/**
 * What every server sends: HTTPS to AWS APIs (SSM, EC2) and Debian's mirrors, HTTP to the
 * mirrors (apt verifies signatures; Debian's AWS images name http mirrors), DNS to the Amazon
 * resolver and NTP to the Amazon Time Sync Service. AWS does not filter the last two (nor IMDS)
 * by security group at all; the rules state the intent and keep a rehearsal's firewall honest.
 */
export const BASE_EGRESS: EgressPort[] = [
  {
    protocol: "tcp",
    fromPort: 443,
    cidrs: ["0.0.0.0/0"],
    description: "HTTPS: AWS APIs, packages",
  },
  {
    protocol: "tcp",
    fromPort: 80,
    cidrs: ["0.0.0.0/0"],
    description: "HTTP: Debian mirrors (signed)",
  },
  {
    protocol: "udp",
    fromPort: 53,
    cidrs: ["169.254.169.253/32"],
    description: "DNS: Amazon resolver",
  },
  {
    protocol: "tcp",
    fromPort: 53,
    cidrs: ["169.254.169.253/32"],
    description: "DNS: Amazon resolver",
  },
  {
    protocol: "udp",
    fromPort: 123,
    cidrs: ["169.254.169.123/32"],
    description: "NTP: Amazon Time Sync",
  },
];

/** One security-group egress rule, flattened like IngressRule. */
export interface EgressRule {
  key: string;
  protocol: "tcp" | "udp";
  fromPort: number;
  toPort: number;
  cidr?: string;
  toPeer?: boolean;
  description: string;
}

/** One TCP rule per peer port, named by the port in both directions (ingress and egress). */
function peerRules(
  peerPorts: number[],
  where: string,
): { key: string; protocol: "tcp"; fromPort: number; toPort: number; description: string }[] {
  return peerPorts.map((port) => ({
    key: `peer-tcp${port}`,
    protocol: "tcp",
    fromPort: port,
    toPort: port,
    description: `peer: tcp ${port} ${where} (replication/sync)`,
  }));
}

/** One rule per (port range, destination); names from port and destination, not position. */
export function egressRules(ports: EgressPort[], peerPorts: number[]): EgressRule[] {
  const rules: EgressRule[] = [];
  for (const p of ports) {
    for (const cidr of p.cidrs) {
      rules.push({
        key: `${portRange(p)}-${cidr.replace(/[./]/g, "-")}`,
        protocol: p.protocol,
        fromPort: p.fromPort,
        toPort: p.toPort ?? p.fromPort,
        cidr,
        description: p.description,
      });
    }
  }
  for (const rule of peerRules(peerPorts, "to the other server")) {
    rules.push({ ...rule, toPeer: true });
  }
  return rules;
}

/** The egress twins of service ports that admit client security groups. */
export function clientEgressRules(servicePorts: ServicePort[]): {
  key: string;
  protocol: "tcp" | "udp";
  fromPort: number;
  toPort: number;
  sourceSecurityGroupId: pulumi.Input<string>;
  description: string;
}[] {
  return servicePorts.flatMap((p) =>
    (p.sourceSecurityGroupIds ?? []).map((sg, i) => ({
      key: `${portRange(p)}-sg${i}`,
      protocol: p.protocol,
      fromPort: p.fromPort,
      toPort: p.toPort ?? p.fromPort,
      sourceSecurityGroupId: sg,
      description: p.description,
    })),
  );
}

function portRange(p: { protocol: string; fromPort: number; toPort?: number }): string {
  return `${p.protocol}${p.fromPort}${p.toPort && p.toPort !== p.fromPort ? `-${p.toPort}` : ""}`;
}

/** Which side is PRIMARY in the failover record pair: the side named by `active`. */
export function failoverRecords(active: Role): { side: Role; failover: "PRIMARY" | "SECONDARY" }[] {
  return [
    { side: active, failover: "PRIMARY" },
    { side: otherRole(active), failover: "SECONDARY" },
  ];
}

/** One security-group ingress rule, flattened (one source per rule, as AWS stores them). */
export interface IngressRule {
  key: string;
  protocol: "tcp" | "udp";
  fromPort: number;
  toPort: number;
  cidr?: string;
  sourceSecurityGroupId?: pulumi.Input<string>;
  fromPeer?: boolean;
  description: string;
}

/**
 * Flattens service, admin and peer ports into one rule per (port range, source). Logical names
 * derive from port and source, not position, so adding a CIDR never renames other rules.
 */
export function ingressRules(
  servicePorts: ServicePort[],
  adminPorts: number[],
  adminCidrs: string[],
  peerPorts: number[],
): IngressRule[] {
  const rules: IngressRule[] = [];
  const range = (p: { protocol: string; fromPort: number; toPort?: number }): string =>
    `${p.protocol}${p.fromPort}${p.toPort && p.toPort !== p.fromPort ? `-${p.toPort}` : ""}`;
  const slug = (cidr: string): string => cidr.replace(/[./]/g, "-");
  for (const p of servicePorts) {
    const toPort = p.toPort ?? p.fromPort;
    const groups = p.sourceSecurityGroupIds ?? [];
    const cidrs = p.cidrs ?? (groups.length === 0 ? ["0.0.0.0/0"] : []);
    for (const cidr of cidrs) {
      rules.push({
        key: `${range(p)}-${slug(cidr)}`,
        protocol: p.protocol,
        fromPort: p.fromPort,
        toPort,
        cidr,
        description: p.description,
      });
    }
    groups.forEach((sg, i) =>
      rules.push({
        key: `${range(p)}-sg${i}`,
        protocol: p.protocol,
        fromPort: p.fromPort,
        toPort,
        sourceSecurityGroupId: sg,
        description: `${p.description} (client security group)`,
      }),
    );
  }
  for (const port of adminPorts) {
    for (const cidr of adminCidrs) {
      rules.push({
        key: `admin-tcp${port}-${slug(cidr)}`,
        protocol: "tcp",
        fromPort: port,
        toPort: port,
        cidr,
        description: `admin: tcp ${port} from admin CIDR`,
      });
    }
  }
  for (const rule of peerRules(peerPorts, "between primary and standby")) {
    rules.push({ ...rule, fromPeer: true });
  }
  return rules;
}

function healthCheckInputs(
  switchover: Switchover,
  spec: HealthCheckSpec,
  ip: pulumi.Input<string>,
  label: string,
): aws.route53.HealthCheckArgs {
  const common = {
    ipAddress: ip,
    requestInterval: HEALTH_CHECK_INTERVAL_SECONDS,
    failureThreshold: spec.failureThreshold,
    tags: { Name: label, "hastack:service": label.split("-")[0] },
  };
  if (switchover === "dns") {
    // Probe the fencing agent, not the service: it latches a failure so a recovered primary
    // cannot take traffic back before its data is synced back (README: Failover and fallback).
    return { ...common, type: "HTTP", port: HEALTH_AGENT_PORT, resourcePath: "/health" };
  }
  return spec.type === "HTTP"
    ? { ...common, type: "HTTP", port: spec.port, resourcePath: spec.resourcePath ?? "/" }
    : { ...common, type: "TCP", port: spec.port };
}

/** EC2 refuses user-data over 16 KiB (before base64). */
export const USER_DATA_LIMIT_BYTES = 16 * 1024;

/**
 * Plain user-data when it fits EC2's limit; otherwise gzip-compressed as userDataBase64, which
 * cloud-init reads as is. Node writes gzip headers with mtime 0, so the bytes are deterministic.
 */
export function userDataInputs(userData: pulumi.Input<string>): {
  userData?: pulumi.Input<string>;
  userDataBase64?: pulumi.Input<string>;
} {
  if (typeof userData !== "string" || Buffer.byteLength(userData) <= USER_DATA_LIMIT_BYTES) {
    return { userData };
  }
  const packed = gzipSync(userData, { level: 9 });
  if (packed.length > USER_DATA_LIMIT_BYTES) {
    throw new Error(
      `user-data is ${packed.length} bytes even gzipped; EC2 allows ${USER_DATA_LIMIT_BYTES}: move files to SSM or S3`,
    );
  }
  return { userDataBase64: packed.toString("base64") };
}

function resolveUserData(
  args: ServerPairArgs,
  hostKey: Record<Role, { parameter: string; knownHostsParameter: string }>,
): Record<Role, pulumi.Input<string>> {
  const cloudConfig = args.cloudConfig;
  if (cloudConfig === undefined) {
    return args.userData!;
  }
  return mapRoles((side) =>
    renderCloudConfig({
      ...cloudConfig[side],
      hostKey: hostKey[side],
      healthAgent:
        args.switchover === "dns"
          ? {
              servicePort: args.healthCheck.port,
              failureThreshold: args.healthCheck.failureThreshold,
            }
          : undefined,
    }),
  );
}

function mapRoles<T>(f: (side: Role) => T): Record<Role, T> {
  return { primary: f(Role.Primary), standby: f(Role.Standby) };
}

/**
 * Renders `#cloud-config` user-data: host identity, the data volume formatted (only if blank)
 * and mounted at /srv/data, the service's parts, and the fencing health agent when asked.
 */
export function renderCloudConfig(parts: CloudConfigParts): string {
  const writeFiles = [
    {
      path: "/usr/local/sbin/hastack-mount-data",
      permissions: "0755",
      // Formats the data volume only when it holds no filesystem, then mounts it at DATA_MOUNT.
      content: userDataFile("common/hastack-mount-data.sh"),
    },
    ...secondaryIpFiles(),
    ...(parts.healthAgent ? renderHealthAgent(parts.healthAgent) : []),
    ...(parts.hostKey
      ? [
          {
            path: "/usr/local/sbin/hastack-install-host-key",
            permissions: "0755",
            content: userDataFile("common/hastack-install-host-key.sh"),
          },
          ...((parts.writeFiles ?? []).some((f) => f.path === hastackLibWriteFile().path)
            ? []
            : [hastackLibWriteFile()]),
        ]
      : []),
    ...(parts.writeFiles ?? []),
  ];
  const runcmd: (string | string[])[] = [
    // First: the pinned host key replaces the image's, before any remote command connects.
    ...(parts.hostKey
      ? [
          [
            "/usr/local/sbin/hastack-install-host-key",
            parts.hostKey.parameter,
            parts.hostKey.knownHostsParameter,
          ],
        ]
      : []),
    ["/usr/local/sbin/hastack-mount-data"],
    ["systemctl", "enable", "--now", "hastack-secondary-ips.service"],
    ...(parts.healthAgent
      ? [
          ["systemctl", "daemon-reload"],
          [
            "systemctl",
            "enable",
            "--now",
            "hastack-health-agent.service",
            "hastack-fence-on-boot.service",
          ],
        ]
      : []),
    ...(parts.runcmd ?? []),
    // Marks first boot done: from now on a reboot fences the server (see the health agent).
    ["touch", "/var/lib/hastack/provisioned"],
  ];
  const doc = {
    hostname: parts.hostname,
    fqdn: parts.fqdn,
    prefer_fqdn_over_hostname: true,
    manage_etc_hosts: true,
    package_update: true,
    packages: [...(parts.healthAgent ? ["python3"] : []), ...(parts.packages ?? [])],
    write_files: writeFiles,
    runcmd,
  };
  return "#cloud-config\n" + stringify(doc, { lineWidth: 0 });
}

/**
 * The health agent Route 53 probes in dns mode, and its fence. It answers 200 only while the
 * service port answers locally and the server is not fenced. It fences (latches unhealthy)
 * after `failureThreshold` consecutive local failures — the same count Route 53 needs to fail
 * over — and on every boot after the first. Only `hastack-unfence`, run by the operator after
 * the data has been synced back, clears it: a recovered primary never takes traffic back alone.
 */
export function renderHealthAgent(o: {
  servicePort: number;
  failureThreshold: number;
}): { path: string; content: string; permissions: string }[] {
  return [
    {
      path: "/usr/local/sbin/hastack-health-agent",
      permissions: "0755",
      content: userDataFile("common/hastack-health-agent.py"),
    },
    {
      path: "/etc/default/hastack-health-agent",
      permissions: "0644",
      content: renderServerFile("common/hastack-health-agent.env", {
        AGENT_PORT: HEALTH_AGENT_PORT,
        SERVICE_PORT: o.servicePort,
        FAIL_LIMIT: o.failureThreshold,
      }),
    },
    {
      path: "/etc/systemd/system/hastack-health-agent.service",
      permissions: "0644",
      content: userDataFile("common/hastack-health-agent.service"),
    },
    {
      path: "/etc/systemd/system/hastack-fence-on-boot.service",
      permissions: "0644",
      content: userDataFile("common/hastack-fence-on-boot.service"),
    },
    {
      path: "/usr/local/sbin/hastack-unfence",
      permissions: "0755",
      content: userDataFile("common/hastack-unfence.sh"),
    },
  ];
}

/**
 * EC2's DHCP hands out only the primary private IP; the secondary one (where the service EIP
 * lands in eip mode) is read from the instance metadata (IMDSv2) and added at every boot.
 */
function secondaryIpFiles(): { path: string; content: string; permissions: string }[] {
  return [
    {
      path: "/usr/local/sbin/hastack-secondary-ips",
      permissions: "0755",
      content: userDataFile("common/hastack-secondary-ips.sh"),
    },
    {
      path: "/etc/systemd/system/hastack-secondary-ips.service",
      permissions: "0644",
      content: userDataFile("common/hastack-secondary-ips.service"),
    },
  ];
}
