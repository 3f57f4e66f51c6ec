// The MySQL/MariaDB pair (issue 4): a ServerPair running the database with GTID replication
// primary → standby, semi-synchronous by default so every acknowledged commit exists on both
// servers. A failover or fallback is a reviewed stack update: flipping `hastack:mysql.active`
// moves db.<domain> (the pair's switch records) and runs the rendered role-change scripts
// through remote commands — the same scripts `npm run rehearse -- mysql` runs on loopback
// (components/mysql-scripts.ts). Instances, volumes and security groups never change on a flip.
import * as pulumi from "@pulumi/pulumi";
import * as aws from "@pulumi/aws";
import * as random from "@pulumi/random";
import * as command from "@pulumi/command";
import * as tls from "@pulumi/tls";
import type { MysqlConfig } from "../lib/config/stack-config";
import {
  BOOT_ROLE_PATH,
  Engine,
  MysqlSettings,
  PROVISION_PATH,
  replicationPasswordParameter,
  tlsParameterPrefix,
  ReplicationMode,
  SSHD_ACCEPT_ENV,
  STAGING_DIR,
  ScriptEnvName,
  ScriptName,
  accountPasswordEnv,
  mysqlRpoSeconds,
  mysqlRtoSeconds,
  remoteShell,
  renderBootRoleDropIn,
  renderProvisionScript,
  renderRoleConfig,
  renderScript,
  renderServerConfig,
  replicationMode,
  mysqlSettings,
  mysqlClientHost,
  DIALECTS,
} from "./mysql-scripts";
import {
  CloudConfigParts,
  otherRole,
  pairBasics,
  PairPlacement,
  Role,
  ROLES,
  ServerPair,
  ServicePort,
  ServiceSummary,
  FIRST_BOOT_DIAL_ERROR_LIMIT,
} from "./server-pair";
import { DEFAULT_SWITCHOVER, ssmPrefix } from "./pair-defaults";
import { hastackLibWriteFile } from "./server-files";

export const MYSQL_PORT = 3306;

/** An application account created on both servers (e.g. the PBX's CDR writer). */
export interface MysqlAccount {
  user: string;
  /** Database the grant applies to, or "*" for all (e.g. a backup account). */
  database: string;
  /** Secret. */
  password: pulumi.Input<string>;
  /** Defaults to "ALL PRIVILEGES" on that database. */
  privileges?: string;
}

/** Arguments of MysqlPair. Everything it needs is explicit: it reads no config itself. */
export interface MysqlPairArgs extends PairPlacement {
  /** The parsed `hastack:mysql` object. */
  config: MysqlConfig;
  /** AWS region of the stack (the servers read SSM there). */
  region: string;
  /** Security groups whose members may connect to 3306 (the PBX, applications). */
  clientSecurityGroupIds: pulumi.Input<string>[];
  /**
   * The VPC's private range (IPv4 CIDR): application accounts accept connections from there
   * only, never from any host ('%'), so a leaked password is useless outside the VPC.
   */
  clientCidr: pulumi.Input<string>;
  /** Application accounts to create on both servers. Defaults to none. */
  accounts?: MysqlAccount[];
  /** SSH user of the role-change commands. Defaults to admin (Debian's cloud user). */
  sshUser?: string;
  /**
   * Private key (secret) the role-change commands log in with. Defaults to none: then no
   * command is declared and the scripts must be run by hand (a warning says so).
   */
  sshPrivateKey?: pulumi.Input<string>;
}

/** The stack-output summary: the pair's, plus the engine and the replication mode. */
export type MysqlSummary = ServiceSummary & { engine: Engine; replication: ReplicationMode };

export class MysqlPair extends pulumi.ComponentResource {
  public readonly pair: ServerPair;
  public readonly engine: Engine;
  public readonly replication: ReplicationMode;
  /** FQDN clients use (follows `active`). */
  public readonly endpoint: string;
  public readonly securityGroupId: pulumi.Output<string>;
  /** SSM SecureString with the replication password. */
  public readonly replicationPasswordParameter: string;
  /** SSM String naming the active side: the servers' boot-role reads it before every start. */
  public readonly activeSideParameter: string;
  /** The remote commands by step key (ROLE_STEPS); empty without an SSH key. */
  public readonly commands: Record<string, command.remote.Command>;
  public readonly summary: MysqlSummary;

  constructor(name: string, args: MysqlPairArgs, opts?: pulumi.ComponentResourceOptions) {
    super("hastack:mysql:MysqlPair", name, {}, opts);
    const cfg = args.config;
    const switchover = cfg.switchover ?? DEFAULT_SWITCHOVER.mysql;
    const sshUser = args.sshUser ?? "admin";
    const accounts = args.accounts ?? [];
    const problems = checkMysqlPairArgs(args);
    if (problems.length > 0) {
      throw new Error(`MysqlPair ${name}: ${problems.join("; ")}`);
    }
    this.engine = cfg.engine;
    this.replication = replicationMode(cfg.semiSync);
    this.endpoint = `${cfg.hostname}.${args.domain}`;
    const prefix = ssmPrefix(args.ssmRoot, "mysql");
    this.replicationPasswordParameter = replicationPasswordParameter(prefix);
    this.activeSideParameter = `${prefix}/active-side`;
    const settings = mysqlSettings(cfg, accounts, prefix);

    // Alphanumeric: the scripts refuse anything that would need quoting in SQL or an option file.
    const password = new random.RandomPassword(
      `${name}-replication-password`,
      { length: 32, special: false },
      { parent: this },
    );
    const replicationPassword = pulumi.secret(password.result);
    new aws.ssm.Parameter(
      `${name}-replication-password`,
      {
        name: this.replicationPasswordParameter,
        type: "SecureString",
        keyId: args.secretsKeyArn,
        value: replicationPassword,
        description: "hastack: password of the MySQL pair's replication account (hastack_repl)",
      },
      { parent: this },
    );
    // The stack's intent, read by each server before every database start: after a failover
    // the old primary comes back read-only (and truncates its unacknowledged tail) instead of
    // taking writes. Part of the switch: it changes with `active`.
    const activeSide = new aws.ssm.Parameter(
      `${name}-active-side`,
      {
        name: this.activeSideParameter,
        type: "String",
        // insecureValue: the provider treats `value` as secret; this one is public and a
        // reviewer should see it change in the preview.
        insecureValue: cfg.active,
        description: "hastack: which side of the MySQL pair is active (hastack:mysql.active)",
      },
      { parent: this },
    );

    // TLS for replication and the bootstrap dump (issue 13): one CA and one certificate for the
    // pair, generated by the stack (@pulumi/tls; the private keys stay secret in state) and
    // handed to the servers as SSM SecureStrings under the pair's path, which only its instance
    // role reads; provisioning installs them at first boot. The simplest sound design: no
    // first-boot race over which server creates the CA, both trust exactly one CA, and renewal
    // is a reviewed stack update. The certificate names the pair, not the peer's IP: replicas
    // verify the CA (MASTER_SSL_CA), not the host name.
    const caKey = new tls.PrivateKey(
      `${name}-tls-ca`,
      { algorithm: "ECDSA", ecdsaCurve: "P256" },
      { parent: this },
    );
    const caCert = new tls.SelfSignedCert(
      `${name}-tls-ca`,
      {
        privateKeyPem: caKey.privateKeyPem,
        isCaCertificate: true,
        validityPeriodHours: 10 * 365 * 24,
        allowedUses: ["cert_signing", "crl_signing"],
        subject: { commonName: `hastack ${this.endpoint} replication CA` },
      },
      { parent: this },
    );
    const serverKey = new tls.PrivateKey(
      `${name}-tls-server`,
      { algorithm: "ECDSA", ecdsaCurve: "P256" },
      { parent: this },
    );
    const serverCsr = new tls.CertRequest(
      `${name}-tls-server`,
      {
        privateKeyPem: serverKey.privateKeyPem,
        subject: { commonName: this.endpoint },
        dnsNames: [this.endpoint, ...ROLES.map((side) => `${cfg.hostname}-${side}.${args.domain}`)],
      },
      { parent: this },
    );
    const serverCert = new tls.LocallySignedCert(
      `${name}-tls-server`,
      {
        certRequestPem: serverCsr.certRequestPem,
        caPrivateKeyPem: caKey.privateKeyPem,
        caCertPem: caCert.certPem,
        validityPeriodHours: 5 * 365 * 24,
        allowedUses: ["digital_signature", "key_encipherment", "server_auth", "client_auth"],
      },
      { parent: this },
    );
    const tlsParameters = (
      [
        ["ca", caCert.certPem, "the CA certificate"],
        ["cert", serverCert.certPem, "the server certificate"],
        ["key", serverKey.privateKeyPem, "the server certificate's private key"],
      ] as const
    ).map(
      ([suffix, value, what]) =>
        new aws.ssm.Parameter(
          `${name}-tls-${suffix}`,
          {
            name: `${tlsParameterPrefix(prefix)}-${suffix}`,
            type: "SecureString",
            keyId: args.secretsKeyArn,
            value: pulumi.secret(value),
            description: `hastack: MySQL pair replication TLS, ${what}`,
          },
          { parent: this },
        ),
    );

    const cloudConfig = {} as Record<Role, CloudConfigParts>;
    for (const side of ROLES) {
      cloudConfig[side] = mysqlCloudConfigParts({
        side,
        hostname: `${cfg.hostname}-${side}`,
        fqdn: `${cfg.hostname}-${side}.${args.domain}`,
        settings,
        region: args.region,
        activeSideParameter: this.activeSideParameter,
      });
    }
    this.pair = new ServerPair(
      `${name}-pair`,
      {
        ...pairBasics("mysql", cfg, args, switchover),
        cloudConfig,
        servicePorts: mysqlServicePorts(args.clientSecurityGroupIds),
        // Replication and the bootstrap dump; nothing else between the two servers.
        peerPorts: [MYSQL_PORT],
        healthCheck: {
          type: "TCP",
          port: MYSQL_PORT,
          failureThreshold: cfg.healthCheck.failureThreshold,
        },
        serviceName: this.endpoint,
        // The endpoint moves only after the role steps: promote first, then point clients at
        // the new primary — and not at all when a step refuses (e.g. the standby lags).
        deferSwitch: true,
      },
      // The servers read the active side and the TLS material from SSM at first boot.
      { parent: this, dependsOn: [activeSide, ...tlsParameters] },
    );
    this.securityGroupId = this.pair.securityGroupId;

    this.commands = {};
    if (args.sshPrivateKey === undefined) {
      pulumi.log.warn(
        "hastack:sshPrivateKey is not set: the MySQL pair declares no setup/bootstrap/failover/fallback " +
          "commands; run the hastack-mysql scripts on the servers by hand (see README)",
        this,
      );
    } else {
      const privateKey = pulumi.secret(args.sshPrivateKey);
      const accountEnv: Record<string, pulumi.Input<string>> = {};
      accounts.forEach((a, i) => {
        accountEnv[accountPasswordEnv(i)] = pulumi.secret(a.password);
      });
      for (const step of ROLE_STEPS) {
        const env: Partial<Record<ScriptEnvName, pulumi.Input<string>>> = {
          HASTACK_PEER_HOST: this.pair.privateIps[otherRole(step.host)],
          HASTACK_PEER_PORT: String(MYSQL_PORT),
          HASTACK_REPL_PASSWORD: replicationPassword,
          HASTACK_AWS_REGION: args.region,
          HASTACK_SIDE: step.host,
          HASTACK_CLIENT_HOST: pulumi.output(args.clientCidr).apply(mysqlClientHost),
          // First boot installs the packages before the server answers.
          ...(step.runsWhen === undefined ? { HASTACK_WAIT_SECONDS: "900" } : {}),
        };
        const runs = step.runsWhen === undefined || step.runsWhen === cfg.active;
        this.commands[step.key] = new command.remote.Command(
          `${name}-${step.key}`,
          {
            connection: {
              host: this.pair.publicIps[step.host],
              user: sshUser,
              privateKey,
              // The server's stack-generated key (ServerPair.hostKeys): never trust on first use.
              hostKey: this.pair.hostKeys[step.host],
              dialErrorLimit: FIRST_BOOT_DIAL_ERROR_LIMIT,
            },
            // Constant text: the script arrives on stdin, its parameters (and the password) in
            // the environment, so neither is in the command line or the provider's error text.
            // Without `create` the provider runs nothing and never dials the host.
            create: runs
              ? `cloud-init status --wait >/dev/null 2>&1; ${remoteShell(accounts.length)}`
              : undefined,
            stdin: runs ? renderScript(step.script, settings) : undefined,
            environment: pulumi.secret({
              ...env,
              ...(step.script === "setup" ? accountEnv : {}),
            } as Record<string, pulumi.Input<string>>),
            // Setup and bootstrap must not re-run on a flip (the primary may be down); the role
            // steps re-run exactly when `active` changes (and on a replaced server).
            triggers:
              step.runsWhen === undefined
                ? [this.pair.instances[step.host].id]
                : [cfg.active, this.pair.instances[step.host].id],
          },
          { parent: this, dependsOn: step.after.map((k) => this.commands[k]) },
        );
      }
    }
    this.pair.declareSwitch({
      dependsOn: ROLE_STEPS.filter((step) => step.runsWhen !== undefined)
        .map((step) => this.commands[step.key])
        .filter((c) => c !== undefined),
    });

    const pairSummary = this.pair.summary;
    this.summary = {
      ...pairSummary,
      engine: this.engine,
      replication: this.replication,
      rpoSeconds: mysqlRpoSeconds(cfg.semiSync, cfg.maxFailoverLagSeconds),
      rtoSeconds: mysqlRtoSeconds({
        switchover,
        pairRtoSeconds: pairSummary.rtoSeconds,
        maxFailoverLagSeconds: cfg.maxFailoverLagSeconds,
      }),
    };
    this.registerOutputs({
      endpoint: this.summary.endpoint,
      activeSide: this.summary.activeSide,
      engine: this.engine,
      replication: this.replication,
      rpoSeconds: this.summary.rpoSeconds,
      rtoSeconds: this.summary.rtoSeconds,
    });
  }
}

/** One remote command: which script, on which server, after which others, for which `active`. */
export interface RoleStep {
  key: string;
  script: ScriptName;
  host: Role;
  after: string[];
  /** The `active` value for which it runs; for the other value it runs nothing. Defaults to both. */
  runsWhen?: Role;
}

/**
 * The remote commands, the same set for either `active` value so a flip only updates them.
 * Setup (both servers) and bootstrap (standby) never change on a flip. The role steps carry
 * the script only for the `active` value they serve and nothing (no SSH connection at all)
 * for the other: a flip to standby runs the failover on the standby and touches nothing on the
 * possibly dead primary; a flip back runs the fallback on the primary, then the rejoin on the
 * standby (on the first deployment both find nothing to do).
 */
export const ROLE_STEPS: readonly RoleStep[] = [
  { key: "setup-primary", script: "setup", host: Role.Primary, after: [] },
  { key: "setup-standby", script: "setup", host: Role.Standby, after: [] },
  {
    key: "bootstrap",
    script: "bootstrap",
    host: Role.Standby,
    after: ["setup-primary", "setup-standby"],
  },
  {
    key: "failover",
    script: "failover",
    host: Role.Standby,
    after: ["bootstrap"],
    runsWhen: Role.Standby,
  },
  {
    key: "fallback",
    script: "fallback",
    host: Role.Primary,
    after: ["bootstrap"],
    runsWhen: Role.Primary,
  },
  {
    key: "rejoin",
    script: "rejoin",
    host: Role.Standby,
    after: ["fallback"],
    runsWhen: Role.Primary,
  },
];

/** The scripts that run on the flip to `active` (in order). */
export function flipScripts(active: Role): string[] {
  return ROLE_STEPS.filter((s) => s.runsWhen === active).map((s) => `${s.script}@${s.host}`);
}

/** 3306 only from the declared client security groups: never a CIDR, never 0.0.0.0/0. */
export function mysqlServicePorts(clientSecurityGroupIds: pulumi.Input<string>[]): ServicePort[] {
  return [
    {
      protocol: "tcp",
      fromPort: MYSQL_PORT,
      description: "MySQL from client security groups",
      // Explicitly no CIDR: without client groups the port is open to nobody but the peer.
      cidrs: [],
      sourceSecurityGroupIds: clientSecurityGroupIds,
      name: "mysql",
      probe: "mysql",
    },
  ];
}

/**
 * One server's cloud-init parts. Independent of `active` (user-data is first-boot only and
 * must not change on a flip): the role comes from SSM at every start (boot-role).
 */
export function mysqlCloudConfigParts(o: {
  side: Role;
  hostname: string;
  fqdn: string;
  settings: MysqlSettings;
  region: string;
  activeSideParameter: string;
}): CloudConfigParts {
  const d = DIALECTS[o.settings.engine];
  return {
    hostname: o.hostname,
    fqdn: o.fqdn,
    packages: [...d.packages, "awscli", "curl"],
    writeFiles: [
      {
        path: `${STAGING_DIR}/60-hastack.cnf`,
        permissions: "0644",
        content: renderServerConfig({ ...o.settings, side: o.side }),
      },
      {
        // Read-only until boot-role has read the stack's intent.
        path: `${STAGING_DIR}/90-hastack-role.cnf`,
        permissions: "0644",
        content: renderRoleConfig(o.settings.engine, "passive", o.settings.semiSync),
      },
      {
        path: `${STAGING_DIR}/boot-role.conf`,
        permissions: "0644",
        content: renderBootRoleDropIn(o.settings.engine, o.side, o.activeSideParameter, o.region),
      },
      // The shared shell helpers boot-role sources (server/lib/hastack.sh).
      hastackLibWriteFile(),
      { path: BOOT_ROLE_PATH, permissions: "0755", content: renderScript("boot-role", o.settings) },
      {
        path: PROVISION_PATH,
        permissions: "0755",
        content: renderProvisionScript(o.settings.engine, o.settings.ssmPrefix),
      },
      {
        path: "/etc/ssh/sshd_config.d/60-hastack-env.conf",
        permissions: "0644",
        content: SSHD_ACCEPT_ENV,
      },
    ],
    runcmd: [[PROVISION_PATH]],
  };
}

/** Problems with the arguments, as sentences; empty when they are fine. */
export function checkMysqlPairArgs(args: MysqlPairArgs): string[] {
  const problems: string[] = [];
  const names = new Set<string>();
  for (const a of args.accounts ?? []) {
    if (!/^[A-Za-z0-9_]{1,32}$/.test(a.user)) {
      problems.push(`account user ${JSON.stringify(a.user)} must be 1-32 of [A-Za-z0-9_]`);
    }
    if (a.database !== "*" && !/^[A-Za-z0-9_]{1,64}$/.test(a.database)) {
      problems.push(
        `account ${a.user}: database ${JSON.stringify(a.database)} must be "*" or 1-64 of [A-Za-z0-9_]`,
      );
    }
    if (names.has(a.user)) {
      problems.push(`account ${a.user} is declared twice`);
    }
    names.add(a.user);
    if (a.user === "hastack_repl" || a.user === "root") {
      problems.push(`account name ${a.user} is reserved`);
    }
  }
  return problems;
}
