// The PBX pair: Asterisk (FreePBX, Elastix or plain, `hastack:pbx.flavour`) on a primary and a
// standby server. What a call leaves behind is kept off the single server: call-detail records
// go to the MySQL pair through ODBC, FreePBX's configuration database lives there too (issue
// 16), and the rest of the flavour's replicated set (components/pbx-replicated-set.ts: config,
// spool, /var/lib/asterisk, astdb and other SQLite databases copied consistently…) is pushed
// from the active server to the other one every `syncIntervalMinutes` — the PBX RPO. The switch
// is an Elastic IP by default (issue 5): SIP trunks and phones register to an IP address, and
// Route 53 cannot probe SIP over UDP, so the health check is TCP 5060. Before the address moves,
// the switch activates the new server (hastack-pbx-activate: installs the shipped databases
// with Asterisk stopped; FreePBX: `fwconsole reload`), so phones re-register to current config.
import * as pulumi from "@pulumi/pulumi";
import * as aws from "@pulumi/aws";
import * as tls from "@pulumi/tls";
import * as random from "@pulumi/random";
import * as command from "@pulumi/command";
import type { PbxConfig } from "../lib/config/stack-config";
import {
  FREEPBX_DATABASE,
  PBX_COPIES_DIR,
  PbxFlavour,
  ReplicatedItem,
  SyncPlan,
  databasesOnMysqlPair,
  replicatedSet,
  syncPlan,
} from "./pbx-replicated-set";
import { peerName } from "./dns";
import {
  CloudConfigParts,
  otherRole,
  pairBasics,
  PairPlacement,
  Role,
  ROLES,
  ServerPair,
  EgressPort,
  ServicePort,
  ServiceSummary,
  throwIfInvalid,
  ArgProblem,
  FIRST_BOOT_DIAL_ERROR_LIMIT,
} from "./server-pair";
import { DEFAULT_SWITCHOVER, ssmPrefix as servicePrefix } from "./pair-defaults";
import {
  IS_ACTIVE_SCRIPT_PATH,
  IS_ACTIVE_SCRIPT_SOURCE,
  SSH_KEYS_SCRIPT_PATH,
  SSH_KEYS_SCRIPT_SOURCE,
  TEXTFILE_DIR,
  renderSshKeysEnv,
  timerSchedule,
} from "./backup-jobs";
import * as path from "path";
import {
  envFile,
  hastackLibWriteFile,
  renderServerFile,
  serverFile,
  shellQuote,
} from "./server-files";

/** Connection name shared by res_odbc, odbc.ini and cdr_adaptive_odbc (distinct from FreePBX's own). */
export const CDR_CONNECTION = "hastack-cdr";
/** The MariaDB account Asterisk writes CDRs with. */
export const CDR_DB_USER = "asteriskcdr";
/** Where the MySQL pair reads that account's password. */
export function cdrPasswordParameterForMysql(ssmRoot: string | undefined): string {
  return `${servicePrefix(ssmRoot, "mysql")}/cdr-user-password`;
}
/** Where the boot script writes `password => …` (outside /etc/asterisk, so sync and backups never copy it). */
export const CDR_PASSWORD_INCLUDE = "/etc/hastack/pbx/res_odbc_password.conf";
/** The ODBC driver name Debian's odbc-mariadb registers. */
export const ODBC_DRIVER_NAME = "MariaDB Unicode";
/** Install paths of the sync pieces. */
export const PBX_SYNC_SCRIPT_PATH = "/usr/local/sbin/hastack-pbx-sync";
export const PBX_SYNC_ENV_PATH = "/etc/hastack/pbx-sync.env";
export const PBX_SYNC_KEY_PATH = "/root/.ssh/hastack_pbx_sync";
/**
 * Seconds until phones and trunks have re-registered with the newly active server after the
 * switch: the registration refresh interval the phones are provisioned with (FreePBX endpoint
 * "expiration" 300 s; README). Calls out work at once; calls in wait for this.
 */
export const SIP_REREGISTER_SECONDS = 300;

/** Arguments of PbxPair. Everything it needs is explicit: it reads no config itself. */
export interface PbxPairArgs extends PairPlacement {
  /** The parsed `hastack:pbx` object (active side, sizes, RTP range, trunk CIDRs, sync interval). */
  config: PbxConfig;
  /** AWS region of the stack (the boot scripts read SSM there). */
  region: string;
  /** Office networks whose phones talk SIP and RTP to the PBX. */
  officeCidrs: string[];
  /** FQDN of the MySQL pair's endpoint, e.g. db.example.co.id. */
  databaseEndpoint: string;
  /** Defaults to 3306. */
  databasePort?: number;
  /** CDR database on the MySQL pair. Defaults to asteriskcdrdb. */
  cdrDatabase?: string;
  /** Security groups allowed to pull backups over SSH (the NAS). Defaults to none. */
  backupClientSecurityGroupIds?: pulumi.Input<string>[];
  /** SNS topic ARNs in us-east-1 the health-check alarms notify. Defaults to none. */
  alarmActions?: pulumi.Input<string>[];
  /** A us-east-1 provider to share (where Route 53 metrics live). Defaults to one of its own. */
  alarmProvider?: aws.Provider;
  /** SSH user of the activation command. Defaults to admin (Debian's cloud user). */
  sshUser?: string;
  /**
   * Private key (secret) the activation command logs in with. Defaults to none: then no command
   * is declared and `hastack-pbx-activate` must be run by hand before a switch (a warning says so).
   */
  sshPrivateKey?: pulumi.Input<string>;
}

export class PbxPair extends pulumi.ComponentResource {
  public readonly pair: ServerPair;
  /** The PBX's security group: the MySQL pair allows 3306 from it for CDRs. */
  public readonly securityGroupId: pulumi.Output<string>;
  /** The CDR account name and its password (secret) for the MySQL pair to create. */
  public readonly cdrDbUser: string;
  public readonly cdrDbPassword: pulumi.Output<string>;
  /** SSM parameter holding the CDR password (SecureString). */
  public readonly cdrDbPasswordParameter: string;
  /** ServiceSummary with PBX RPO (sync interval) and RTO (switch + re-registration). */
  public readonly summary: ServiceSummary;
  /** What the pair replicates (the flavour's table, components/pbx-replicated-set.ts). */
  public readonly replicatedSet: ReplicatedItem[];
  /** Databases that live on the MySQL pair (it must create them; the NAS dumps them). */
  public readonly databasesOnMysqlPair: string[];
  /** FreePBX's account on the MySQL pair, its password (secret) and grants; undefined unless its database lives there. */
  public readonly freepbxDbAccount?: {
    user: string;
    database: string;
    password: pulumi.Output<string>;
    privileges: string;
  };
  /**
   * The account FreePBX's CDR reports read the CDR database with (CDRDBUSER in freepbx.conf):
   * SELECT only, so the web UI can never change a call record. Undefined unless freepbx.conf is
   * rendered (FreePBX with its database on the MySQL pair).
   */
  public readonly freepbxCdrDbAccount?: {
    user: string;
    database: string;
    password: pulumi.Output<string>;
    privileges: string;
  };
  /** The activation commands by side (the one for the inactive side runs nothing); empty without an SSH key. */
  public readonly activateCommands: Partial<Record<Role, command.remote.Command>>;

  constructor(name: string, args: PbxPairArgs, opts?: pulumi.ComponentResourceOptions) {
    super("hastack:pbx:PbxPair", name, {}, opts);
    throwIfInvalid(`PbxPair ${name}`, checkPbxArgs(args));
    const cfg = args.config;
    const switchover = cfg.switchover ?? DEFAULT_SWITCHOVER.pbx;
    const databasePort = args.databasePort ?? 3306;
    const cdrDatabase = args.cdrDatabase ?? "asteriskcdrdb";
    const serviceName = `${cfg.hostname}.${args.domain}`;
    const serverNames = {
      primary: `${cfg.serverNames.primary}.${args.domain}`,
      standby: `${cfg.serverNames.standby}.${args.domain}`,
    };
    const ssmPrefix = servicePrefix(args.ssmRoot, "pbx");
    const flavour = cfg.flavour;
    this.replicatedSet = replicatedSet(flavour, cfg.configDatabase);
    this.databasesOnMysqlPair = databasesOnMysqlPair(this.replicatedSet);
    const voiceCidrs = [...cfg.sipTrunkCidrs, ...args.officeCidrs];
    if (voiceCidrs.length === 0) {
      pulumi.log.warn(
        "hastack:pbx.sipTrunkCidrs and hastack:officeCidrs are both empty: no phone or trunk can reach SIP/RTP",
        this,
      );
    }

    this.cdrDbUser = CDR_DB_USER;
    this.cdrDbPasswordParameter = `${ssmPrefix}/cdr-db-password`;
    // Alphanumeric: it lands in an Asterisk config line and an ODBC connect string unquoted.
    const cdrPassword = new random.RandomPassword(
      `${name}-cdr-db-password`,
      { length: 32, special: false },
      { parent: this },
    );
    this.cdrDbPassword = pulumi.secret(cdrPassword.result);
    new aws.ssm.Parameter(
      `${name}-cdr-db-password`,
      {
        name: this.cdrDbPasswordParameter,
        type: "SecureString",
        keyId: args.secretsKeyArn,
        value: cdrPassword.result,
        description: "hastack: password of the Asterisk CDR account on the MySQL pair",
      },
      { parent: this },
    );
    // The same secret where the MySQL servers may read it (ServerPair grants each pair only its
    // own prefix): they create the account with it.
    new aws.ssm.Parameter(
      `${name}-cdr-db-password-mysql`,
      {
        name: cdrPasswordParameterForMysql(args.ssmRoot),
        type: "SecureString",
        keyId: args.secretsKeyArn,
        value: cdrPassword.result,
        description: `hastack: password of the MariaDB account ${CDR_DB_USER} (PBX CDRs), for the MySQL pair`,
      },
      { parent: this },
    );

    // FreePBX's configuration database on the MySQL pair: its own account, its password from
    // @pulumi/random, delivered to the PBX servers only as a SecureString.
    let freepbxDb: FreepbxDbSettings | undefined;
    if (this.databasesOnMysqlPair.includes(FREEPBX_DATABASE)) {
      const freepbxPassword = new random.RandomPassword(
        `${name}-freepbx-db-password`,
        // Alphanumeric: the account script refuses anything SQL or PHP would need quoted.
        { length: 32, special: false },
        { parent: this },
      );
      new aws.ssm.Parameter(
        `${name}-freepbx-db-password`,
        {
          name: `${ssmPrefix}/freepbx-db-password`,
          type: "SecureString",
          keyId: args.secretsKeyArn,
          value: freepbxPassword.result,
          description: `hastack: password of FreePBX's MariaDB account ${FREEPBX_DB_USER} on the MySQL pair`,
        },
        { parent: this },
      );
      this.freepbxDbAccount = {
        user: FREEPBX_DB_USER,
        database: FREEPBX_DATABASE,
        password: pulumi.secret(freepbxPassword.result),
        privileges: FREEPBX_DB_PRIVILEGES,
      };
      // FreePBX's CDR reports read the CDR database with an account of their own, read-only:
      // the web UI never holds a password that could change a call record (issue 16).
      const cdrReportPassword = new random.RandomPassword(
        `${name}-freepbx-cdr-db-password`,
        { length: 32, special: false },
        { parent: this },
      );
      new aws.ssm.Parameter(
        `${name}-freepbx-cdr-db-password`,
        {
          name: `${ssmPrefix}/freepbx-cdr-db-password`,
          type: "SecureString",
          keyId: args.secretsKeyArn,
          value: cdrReportPassword.result,
          description: `hastack: password of FreePBX's read-only CDR report account ${FREEPBX_CDR_DB_USER} on the MySQL pair`,
        },
        { parent: this },
      );
      this.freepbxCdrDbAccount = {
        user: FREEPBX_CDR_DB_USER,
        database: cdrDatabase,
        password: pulumi.secret(cdrReportPassword.result),
        privileges: FREEPBX_CDR_DB_PRIVILEGES,
      };
      freepbxDb = {
        host: args.databaseEndpoint,
        port: databasePort,
        passwordParameter: `${ssmPrefix}/freepbx-db-password`,
        cdrDatabase,
        cdrPasswordParameter: `${ssmPrefix}/freepbx-cdr-db-password`,
      };
    }

    // The key the active PBX pushes to the other with; each side authorizes it write-only.
    const syncKey = new tls.PrivateKey(
      `${name}-sync-key`,
      { algorithm: "ED25519" },
      { parent: this },
    );
    new aws.ssm.Parameter(
      `${name}-sync-key-private`,
      {
        name: `${ssmPrefix}/sync-ssh-private-key`,
        type: "SecureString",
        keyId: args.secretsKeyArn,
        value: syncKey.privateKeyOpenssh,
        description: "hastack: private key of the PBX config/recordings sync",
      },
      { parent: this },
    );
    new aws.ssm.Parameter(
      `${name}-sync-key-public`,
      {
        name: `${ssmPrefix}/sync-ssh-public-key`,
        type: "String",
        value: syncKey.publicKeyOpenssh,
        description: "hastack: public key of the PBX config/recordings sync",
      },
      { parent: this },
    );

    const cloudConfig = {} as Record<Role, CloudConfigParts>;
    for (const side of ROLES) {
      cloudConfig[side] = pbxCloudConfigParts({
        role: side,
        hostname: cfg.serverNames[side],
        fqdn: serverNames[side],
        serviceName,
        // Server-to-server traffic by private address (SG rules name the peer's group).
        peer: peerName(args.dns, serverNames[otherRole(side)]),
        region: args.region,
        ssmPrefix,
        databaseEndpoint: args.databaseEndpoint,
        databasePort,
        cdrDatabase,
        syncIntervalMinutes: cfg.syncIntervalMinutes,
        rtpPorts: cfg.rtpPorts,
        instanceType: cfg.instanceType,
        installer: cfg.installer,
        flavour,
        replicatedSet: this.replicatedSet,
        freepbxDb,
      });
    }

    this.pair = new ServerPair(
      `${name}-pair`,
      {
        ...pairBasics("pbx", cfg, args, switchover),
        cloudConfig,
        servicePorts: pbxServicePorts({
          rtpPorts: cfg.rtpPorts,
          voiceCidrs,
          backupClientSecurityGroupIds: args.backupClientSecurityGroupIds,
        }),
        adminPorts: PBX_ADMIN_PORTS,
        peerPorts: [22],
        // SIP and RTP back to the trunks and office phones that may reach it, nowhere else.
        egress: pbxEgress({ rtpPorts: cfg.rtpPorts, voiceCidrs }),
        healthCheck: {
          type: "TCP",
          port: 5060,
          failureThreshold: cfg.healthCheck.failureThreshold,
        },
        serviceName,
        serverNames,
        // The address moves only after the new server is activated (databases installed,
        // FreePBX reloaded): phones re-register to current config, and a failed activation
        // leaves the address where it was.
        deferSwitch: true,
      },
      { parent: this },
    );
    this.securityGroupId = this.pair.securityGroupId;

    this.activateCommands = {};
    if (args.sshPrivateKey === undefined) {
      pulumi.log.warn(
        "hastack:sshPrivateKey is not set: the PBX pair declares no activation command; before " +
          `flipping hastack:pbx.active run on the newly active server: sudo ${PBX_ACTIVATE_COMMAND}`,
        this,
      );
    } else {
      const privateKey = pulumi.secret(args.sshPrivateKey);
      for (const side of ROLES) {
        // Only the side becoming active runs it: a failover never dials the (dead) primary.
        const runs = cfg.active === side;
        this.activateCommands[side] = new command.remote.Command(
          `${name}-activate-${side}`,
          {
            connection: {
              host: this.pair.publicIps[side],
              user: args.sshUser ?? "admin",
              privateKey,
              // The server's stack-generated key (ServerPair.hostKeys): never trust on first use.
              hostKey: this.pair.hostKeys[side],
              dialErrorLimit: FIRST_BOOT_DIAL_ERROR_LIMIT,
            },
            // Without `create` the provider runs nothing and never dials the host. The script
            // and its env arrive on stdin: a server booted before this version has neither on
            // disk (user-data runs at first boot only).
            create: runs
              ? `cloud-init status --wait >/dev/null 2>&1; sudo -n ${PBX_ACTIVATE_REMOTE_COMMAND}`
              : undefined,
            stdin: runs
              ? renderPbxActivateRemoteScript({
                  envPath: PBX_ACTIVATE_ENV_PATH,
                  env: renderPbxActivateEnv({
                    flavour,
                    plan: syncPlan(this.replicatedSet),
                  }),
                })
              : undefined,
            // Re-runs exactly when `active` changes (and on a replaced server).
            triggers: [cfg.active, this.pair.instances[side].id],
          },
          { parent: this },
        );
      }
    }
    this.pair.declareSwitch({
      dependsOn: Object.values(this.activateCommands).filter(
        (c): c is command.remote.Command => c !== undefined,
      ),
    });

    for (const srv of sipSrvRecords(args.domain, serviceName)) {
      args.dns.record(this, `${name}-srv-${srv.label}`, {
        name: srv.name,
        type: "SRV",
        ttl: 300,
        records: [srv.value],
      });
    }

    // Route 53 publishes health-check metrics only in us-east-1, so the alarm lives there too
    // (and so must any SNS topic it notifies).
    const usEast1 =
      args.alarmProvider ??
      new aws.Provider(`${name}-us-east-1`, { region: "us-east-1" }, { parent: this });
    for (const side of ROLES) {
      new aws.cloudwatch.MetricAlarm(
        `${name}-${side}-health-alarm`,
        {
          alarmDescription: `hastack pbx ${side} (${serverNames[side]}): Route 53 TCP 5060 health check failing`,
          namespace: "AWS/Route53",
          metricName: "HealthCheckStatus",
          dimensions: { HealthCheckId: this.pair.healthCheckIds[side] },
          statistic: "Minimum",
          period: 60,
          evaluationPeriods: 2,
          threshold: 1,
          comparisonOperator: "LessThanThreshold",
          // No data means Route 53 stopped reporting: treat as down, never as fine.
          treatMissingData: "breaching",
          alarmActions: args.alarmActions ?? [],
          okActions: args.alarmActions ?? [],
          tags: { "hastack:service": "pbx", "hastack:role": side },
        },
        { parent: this, provider: usEast1 },
      );
    }

    const pairSummary = this.pair.summary;
    this.summary = {
      ...pairSummary,
      rtoSeconds: pbxRtoSeconds(pairSummary.rtoSeconds),
      rpoSeconds: cfg.syncIntervalMinutes * 60,
    };
    this.registerOutputs({
      securityGroupId: this.securityGroupId,
      endpoint: this.summary.endpoint,
      rtoSeconds: this.summary.rtoSeconds,
      rpoSeconds: this.summary.rpoSeconds,
    });
  }
}

/** Problems with PbxPair's arguments, each naming its argument; empty when they are fine. */
export function checkPbxArgs(args: PbxPairArgs): ArgProblem[] {
  const problems: ArgProblem[] = [];
  const port = args.databasePort ?? 3306;
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    problems.push({ propertyPath: "databasePort", reason: `must be a TCP port, got ${port}` });
  }
  const { from, to } = args.config.rtpPorts;
  if (!(
    Number.isInteger(from) &&
    Number.isInteger(to) &&
    1024 <= from &&
    from <= to &&
    to <= 65535
  )) {
    problems.push({
      propertyPath: "config.rtpPorts",
      reason: `must be a range of unprivileged UDP ports with from <= to, got ${from}-${to}`,
    });
  }
  const minutes = args.config.syncIntervalMinutes;
  if (!Number.isInteger(minutes) || minutes < 1) {
    problems.push({
      propertyPath: "config.syncIntervalMinutes",
      reason: `must be a whole number of minutes >= 1 (a systemd timer fires on it), got ${minutes}`,
    });
  }
  if (!/^[a-z0-9.-]+$/.test(args.databaseEndpoint)) {
    problems.push({
      propertyPath: "databaseEndpoint",
      reason: `must be a host name (it lands in odbc.ini), got ${JSON.stringify(args.databaseEndpoint)}`,
    });
  }
  return problems;
}

/**
 * TCP ports only admin CIDRs reach: SSH alone. The FreePBX web UI (80/443) and the Asterisk
 * Manager Interface (5038) speak plain text or guessable logins and stay closed even to the
 * admins (issue 13): reach them through an SSH tunnel (README: Security).
 */
export const PBX_ADMIN_PORTS = [22];

/**
 * SIP (5060 UDP+TCP), SIP-TLS (5061 TCP) and the RTP range (UDP), each only from the trunk and
 * office CIDRs: an open SIP port is scanned within minutes and toll fraud follows. SSH from the
 * NAS's security group for backup pulls.
 */
export function pbxServicePorts(o: {
  rtpPorts: { from: number; to: number };
  voiceCidrs: string[];
  backupClientSecurityGroupIds?: pulumi.Input<string>[];
}): ServicePort[] {
  const ports: ServicePort[] = [
    {
      protocol: "udp",
      fromPort: 5060,
      description: "SIP (UDP) from trunks and offices",
      cidrs: o.voiceCidrs,
    },
    {
      protocol: "tcp",
      fromPort: 5060,
      description: "SIP (TCP) from trunks and offices",
      cidrs: o.voiceCidrs,
      name: "sip",
      probe: "sip_tcp",
    },
    {
      protocol: "tcp",
      fromPort: 5061,
      description: "SIP over TLS from trunks and offices",
      cidrs: o.voiceCidrs,
      name: "sips",
      probe: "tcp",
    },
    {
      protocol: "udp",
      fromPort: o.rtpPorts.from,
      toPort: o.rtpPorts.to,
      description: "RTP media from trunks and offices",
      cidrs: o.voiceCidrs,
    },
  ];
  if (o.backupClientSecurityGroupIds && o.backupClientSecurityGroupIds.length > 0) {
    ports.push({
      protocol: "tcp",
      fromPort: 22,
      description: "backup pulls (read-only rrsync) from the NAS",
      cidrs: [],
      sourceSecurityGroupIds: o.backupClientSecurityGroupIds,
    });
  }
  return ports;
}

/** SIP (UDP/TCP 5060, TLS 5061) and RTP out to the trunk and office CIDRs only. */
export function pbxEgress(o: {
  rtpPorts: { from: number; to: number };
  voiceCidrs: string[];
}): EgressPort[] {
  return [
    {
      protocol: "udp",
      fromPort: 5060,
      cidrs: o.voiceCidrs,
      description: "SIP (UDP) to trunks and offices",
    },
    {
      protocol: "tcp",
      fromPort: 5060,
      cidrs: o.voiceCidrs,
      description: "SIP (TCP) to trunks and offices",
    },
    {
      protocol: "tcp",
      fromPort: 5061,
      cidrs: o.voiceCidrs,
      description: "SIP over TLS to trunks and offices",
    },
    {
      protocol: "udp",
      fromPort: o.rtpPorts.from,
      toPort: o.rtpPorts.to,
      cidrs: o.voiceCidrs,
      description: "RTP media to trunks and offices",
    },
  ];
}

/** The SRV records phones and trunks can discover the PBX by: "priority weight port target". */
export function sipSrvRecords(
  domain: string,
  target: string,
): { label: string; name: string; value: string }[] {
  return [
    { label: "sip-udp", name: `_sip._udp.${domain}`, value: `10 100 5060 ${target}` },
    { label: "sip-tcp", name: `_sip._tcp.${domain}`, value: `10 100 5060 ${target}` },
    { label: "sips-tcp", name: `_sips._tcp.${domain}`, value: `10 100 5061 ${target}` },
  ];
}

/** PBX RTO: the pair's switch estimate plus phones and trunks re-registering to the new server. */
export function pbxRtoSeconds(pairRtoSeconds: number): number {
  return pairRtoSeconds + SIP_REREGISTER_SECONDS;
}

/** Debian multiarch triplet for an instance type: Graviton families (m7g, t4g…) are arm64. */
export function debianMultiarch(instanceType: string): string {
  return /^[a-z]+\d+[a-z]*g[a-z]*\./.test(instanceType) ? "aarch64-linux-gnu" : "x86_64-linux-gnu";
}

/** /etc/odbcinst.ini: the MariaDB Connector/ODBC driver from Debian's odbc-mariadb. */
export function renderOdbcinstIni(o: { instanceType: string }): string {
  return renderServerFile("pbx/odbcinst.ini", {
    DRIVER_NAME: ODBC_DRIVER_NAME,
    MULTIARCH: debianMultiarch(o.instanceType),
  });
}

/**
 * /etc/odbc.ini: the CDR DSN on the MySQL pair's endpoint name (which follows its failover).
 * No user or password here: Asterisk passes them from res_odbc.
 */
export function renderOdbcIni(o: { host: string; port: number; database: string }): string {
  return renderServerFile("pbx/odbc.ini", {
    CONNECTION: CDR_CONNECTION,
    DRIVER_NAME: ODBC_DRIVER_NAME,
    HOST: o.host,
    PORT: o.port,
    DATABASE: o.database,
  });
}

/**
 * The res_odbc connection. The password is not here: the last line includes the file the boot
 * script writes from the SSM SecureString (Asterisk's #include continues the current section).
 * negative_connection_cache: after a database failover the old connection is dead, so retry
 * soon, not never.
 */
export function renderResOdbcConf(o: { user: string }): string {
  return renderServerFile("pbx/res_odbc_hastack.conf", {
    CONNECTION: CDR_CONNECTION,
    USER: o.user,
    PASSWORD_INCLUDE: CDR_PASSWORD_INCLUDE,
  });
}

/** cdr_adaptive_odbc: every CDR to table `cdr`, Asterisk's `start` stored as FreePBX's `calldate`. */
export function renderCdrAdaptiveOdbcConf(): string {
  return renderServerFile("pbx/cdr_adaptive_odbc_hastack.conf", { CONNECTION: CDR_CONNECTION });
}

/** The file the boot script writes from SSM (exported for tests; never rendered with a real password). */
export function renderCdrPasswordInclude(password: string): string {
  return `password => ${password}\n`;
}

/**
 * The CDR table FreePBX's reporting reads (asteriskcdrdb.cdr), plus a surrogate primary key:
 * row-based replication on the MySQL pair needs one, and cdr_adaptive_odbc skips columns that
 * are not CDR variables, so Asterisk never writes it.
 */
export function renderCdrTableSql(database: string): string {
  const v = (col: string, len: number): string =>
    `  \`${col}\` varchar(${len}) NOT NULL DEFAULT '',`;
  const n = (col: string): string => `  \`${col}\` int NOT NULL DEFAULT 0,`;
  return [
    `CREATE DATABASE IF NOT EXISTS \`${database}\` CHARACTER SET utf8mb4;`,
    `CREATE TABLE IF NOT EXISTS \`${database}\`.\`cdr\` (`,
    "  `id` bigint unsigned NOT NULL AUTO_INCREMENT,",
    "  `calldate` datetime NOT NULL DEFAULT CURRENT_TIMESTAMP,",
    v("clid", 80),
    v("src", 80),
    v("dst", 80),
    v("dcontext", 80),
    v("channel", 80),
    v("dstchannel", 80),
    v("lastapp", 80),
    v("lastdata", 80),
    n("duration"),
    n("billsec"),
    v("disposition", 45),
    n("amaflags"),
    v("accountcode", 20),
    v("uniqueid", 32),
    v("userfield", 255),
    v("did", 50),
    v("recordingfile", 255),
    v("cnum", 80),
    v("cnam", 80),
    v("outbound_cnum", 80),
    v("outbound_cnam", 80),
    v("dst_cnam", 80),
    v("linkedid", 32),
    v("peeraccount", 80),
    n("sequence"),
    "  PRIMARY KEY (`id`),",
    "  KEY `calldate` (`calldate`),",
    "  KEY `dst` (`dst`),",
    "  KEY `accountcode` (`accountcode`),",
    "  KEY `uniqueid` (`uniqueid`)",
    ") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;",
    "",
  ].join("\n");
}

/** CDR variables Asterisk fills by name (cdr_adaptive_odbc matches them to columns). */
export const ASTERISK_CDR_VARIABLES = [
  "clid",
  "src",
  "dst",
  "dcontext",
  "channel",
  "dstchannel",
  "lastapp",
  "lastdata",
  "start",
  "answer",
  "end",
  "duration",
  "billsec",
  "disposition",
  "amaflags",
  "accountcode",
  "uniqueid",
  "userfield",
  "peeraccount",
  "linkedid",
  "sequence",
];
/** CDR variables FreePBX's dialplan sets (CDR(did) etc.). */
export const FREEPBX_CDR_VARIABLES = [
  "did",
  "recordingfile",
  "cnum",
  "cnam",
  "outbound_cnum",
  "outbound_cnam",
  "dst_cnam",
];

/** The sync env: what the active PBX pushes (the flavour's set), to whom, and how. */
export function renderPbxSyncEnv(o: {
  serviceName: string;
  peer: string;
  /** Role of the peer: the side label of the replication metric. */
  peerSide: string;
  /** What to push: syncPlan(replicatedSet(flavour)). */
  plan: SyncPlan;
  /** Defaults to / (production). */
  syncRoot?: string;
  /** Defaults to / (production). */
  peerRoot?: string;
  activeCheck?: "dns" | "always" | "never";
  rsyncRsh?: string;
  bwlimit?: number;
  /** node_exporter textfile collector directory. Defaults to Debian's. */
  textfileDir?: string;
  /** The consistent SQLite copier. Defaults to the installed hastack-pbx-sqlite-copy. */
  sqliteCopy?: string;
  /** Extra options of the local dump (e.g. a socket). Defaults to none (root over the default socket). */
  dumpOpts?: string;
}): string {
  return envFile({
    SERVICE_NAME: o.serviceName,
    ACTIVE_CHECK: o.activeCheck ?? "dns",
    PEER: o.peer,
    PEER_SIDE: o.peerSide,
    TEXTFILE_DIR: o.textfileDir ?? TEXTFILE_DIR,
    SYNC_ROOT: o.syncRoot ?? "/",
    PEER_ROOT: o.peerRoot ?? "/",
    SYNC_PATHS: o.plan.paths.join(" "),
    EXCLUDES: o.plan.excludes.join(" "),
    SQLITE_FILES: o.plan.sqlite.join(" "),
    DUMP_DATABASES: o.plan.dumps.join(" "),
    DUMP_OPTS: o.dumpOpts,
    COPIES_DIR: PBX_COPIES_DIR.replace(/^\/+/, ""),
    SQLITE_COPY: o.sqliteCopy ?? PBX_SQLITE_COPY_PATH,
    RSYNC_RSH:
      o.rsyncRsh ??
      // The peer's host key is pinned in /etc/ssh/ssh_known_hosts at first boot (ServerPair).
      `ssh -i ${PBX_SYNC_KEY_PATH} -o BatchMode=yes -o StrictHostKeyChecking=yes -o ConnectTimeout=20 -o ServerAliveInterval=30`,
    BWLIMIT: o.bwlimit,
  });
}

/** Install path of the consistent SQLite copier (server/pbx/hastack-pbx-sqlite-copy.sh). */
export const PBX_SQLITE_COPY_PATH = "/usr/local/sbin/hastack-pbx-sqlite-copy";
export const PBX_SQLITE_COPY_SOURCE = "pbx/hastack-pbx-sqlite-copy.sh";

/**
 * `hastack-pbx-activate ENV` (server/pbx/hastack-pbx-activate.sh), run by the switch on the
 * server becoming active, before the address moves: installs the consistent copies the other
 * PBX shipped (integrity-checked first, only while Asterisk is stopped, each only once), then
 * for FreePBX `fwconsole reload` regenerates /etc/asterisk from the configuration database.
 */
export const PBX_ACTIVATE_SOURCE = "pbx/hastack-pbx-activate.sh";
export const PBX_ACTIVATE_PATH = "/usr/local/sbin/hastack-pbx-activate";
export const PBX_ACTIVATE_ENV_PATH = "/etc/hastack/pbx-activate.env";
export const PBX_ACTIVATE_COMMAND = `${PBX_ACTIVATE_PATH} ${PBX_ACTIVATE_ENV_PATH}`;

/** What the switch's remote command runs: bash reading renderPbxActivateRemoteScript on stdin. */
export const PBX_ACTIVATE_REMOTE_COMMAND = `/bin/bash -s ${PBX_ACTIVATE_ENV_PATH}`;

/**
 * The activation as the switch sends it: writes the env file, then runs hastack-pbx-activate's
 * own text with the env file as its argument (`bash -s ENV`), so it works on a server whose
 * user-data predates it. The same text cloud-init installs, nothing else.
 */
export function renderPbxActivateRemoteScript(o: { envPath: string; env: string }): string {
  const delimiter = "HASTACK_ACTIVATE_ENV";
  if (o.env.split("\n").includes(delimiter)) {
    throw new Error(`the activation env must not contain the line ${delimiter}`);
  }
  return [
    "set -euo pipefail",
    `mkdir -p ${shellQuote(path.posix.dirname(o.envPath))}`,
    `cat >${shellQuote(`${o.envPath}.new`)} <<'${delimiter}'`,
    `${o.env.replace(/\n$/, "")}`,
    delimiter,
    `mv -f ${shellQuote(`${o.envPath}.new`)} ${shellQuote(o.envPath)}`,
    serverFile(PBX_ACTIVATE_SOURCE),
  ].join("\n");
}

/** How each flavour stops and starts Asterisk (FreePBX and Elastix wrap it in their own tools). */
export const ASTERISK_CONTROL: Record<PbxFlavour, { stop: string; start: string }> = {
  freepbx: { stop: "fwconsole stop", start: "fwconsole start" },
  elastix: { stop: "amportal stop", start: "amportal start" },
  asterisk: { stop: "systemctl stop asterisk", start: "systemctl start asterisk" },
};

/**
 * The web UI to stop while the shipped databases are installed and to start on the server taking
 * over, per flavour: Elastix's pages (httpd, CentOS) write its SQLite settings databases
 * (/var/www/db/*.db), so they must not run while those are replaced. FreePBX's web UI writes its
 * database on the MySQL pair (nothing installed under it) and plain Asterisk has none.
 */
export const WEB_CONTROL: Record<PbxFlavour, { stop: string; start: string } | undefined> = {
  freepbx: undefined,
  elastix: { stop: "service httpd stop", start: "service httpd start" },
  asterisk: undefined,
};

/** The activation's env: which copies to install, how to stop/start Asterisk, whether to reload FreePBX. */
export function renderPbxActivateEnv(o: {
  flavour: PbxFlavour;
  plan: SyncPlan;
  /** Defaults to / (production). */
  root?: string;
  /** Defaults to the flavour's (ASTERISK_CONTROL). */
  asteriskStop?: string;
  /** Defaults to the flavour's (ASTERISK_CONTROL). */
  asteriskStart?: string;
  /** Defaults to the flavour's (WEB_CONTROL; none for FreePBX and plain Asterisk). */
  webStop?: string;
  /** Defaults to the flavour's (WEB_CONTROL). */
  webStart?: string;
  /** FreePBX's CLI. Defaults to fwconsole (on PATH). */
  fwconsole?: string;
  /** Client that loads a shipped dump, with its options. Defaults to mariadb (root over the socket). */
  dbClient?: string;
}): string {
  const control = ASTERISK_CONTROL[o.flavour];
  return envFile({
    FLAVOUR: o.flavour,
    ROOT: o.root ?? "/",
    COPIES_DIR: PBX_COPIES_DIR.replace(/^\/+/, ""),
    SQLITE_FILES: o.plan.sqlite.join(" "),
    DUMP_DATABASES: o.plan.dumps.join(" "),
    ASTERISK_STOP: o.asteriskStop ?? control.stop,
    ASTERISK_START: o.asteriskStart ?? control.start,
    WEB_STOP: o.webStop ?? WEB_CONTROL[o.flavour]?.stop ?? "",
    WEB_START: o.webStart ?? WEB_CONTROL[o.flavour]?.start ?? "",
    FWCONSOLE: o.fwconsole ?? "fwconsole",
    DB_CLIENT: o.dbClient ?? "mariadb",
  });
}

/** FreePBX's account on the MySQL pair (FreePBX's own default name). */
export const FREEPBX_DB_USER = "freepbxuser";
/**
 * What FreePBX needs on its own schema and nothing more (the grant is on `asterisk`.* only, from
 * the VPC's range, like every application account):
 *  - SELECT, INSERT, UPDATE, DELETE: the web UI and fwconsole read and write the configuration;
 *  - CREATE, ALTER, DROP, INDEX: module install/upgrade creates and migrates its tables
 *    (FreePBX's module.xml/Doctrine table definitions), uninstall drops them;
 *  - CREATE TEMPORARY TABLES: modules' upgrade steps and reports stage rows in temporary tables;
 *  - LOCK TABLES: FreePBX's backup module and the first adoption of a local database
 *    (hastack-pbx-freepbx-db) take and load a dump that locks the tables it writes;
 *  - REFERENCES: foreign keys between module tables (MySQL 8 checks it; MariaDB records it).
 * Not granted: anything global (FILE, PROCESS, SUPER, RELOAD, READ_ONLY ADMIN: read_only fencing
 * must hold for it), GRANT OPTION, other schemas, stored routines, triggers, events, views —
 * FreePBX's schema uses none of them. test/server/mysql/freepbx-account.test.ts proves the set
 * on a real MariaDB: FreePBX-like schema work succeeds, the rest is refused.
 */
export const FREEPBX_DB_PRIVILEGES =
  "SELECT, INSERT, UPDATE, DELETE, CREATE, ALTER, DROP, INDEX, CREATE TEMPORARY TABLES, LOCK TABLES, REFERENCES";
/** FreePBX's CDR reports' account on the MySQL pair (CDRDBUSER): reads the CDR database only. */
export const FREEPBX_CDR_DB_USER = "freepbxcdr";
/**
 * The CDR reports only read call records (the CDR reports and CEL modules' queries); Asterisk
 * writes them with its own INSERT-only account (CDR_DB_USER). Nothing else: no write, no other
 * schema. test/server/pbx/freepbx-cdr-account.test.ts proves it on a real MariaDB.
 */
export const FREEPBX_CDR_DB_PRIVILEGES = "SELECT";
/** Where the boot script writes the CDR report account's password (root:asterisk 0640). */
export const FREEPBX_CDR_PASSWORD_FILE = "/etc/hastack/pbx/freepbx-cdr-db-password";
/** Where the boot script writes FreePBX's database password (root:asterisk 0640; never synced or backed up). */
export const FREEPBX_PASSWORD_FILE = "/etc/hastack/pbx/freepbx-db-password";

/** Where FreePBX's configuration database lives when it is on the MySQL pair. */
export interface FreepbxDbSettings {
  /** The MySQL pair's internal name (follows its failover). */
  host: string;
  port: number;
  /** SSM SecureString holding the password. */
  passwordParameter: string;
  /** The CDR database FreePBX's reports read (CDRDBNAME). */
  cdrDatabase: string;
  /** SSM SecureString holding the CDR report account's password. */
  cdrPasswordParameter: string;
}

/**
 * /etc/freepbx.conf pointing FreePBX at the MySQL pair (AMPDBHOST…). PHP, as FreePBX reads it;
 * the password is read from the root:asterisk file at run time, so it is in no rendered text.
 */
export function renderFreepbxConf(o: { host: string; port: number; cdrDatabase: string }): string {
  return renderServerFile("pbx/freepbx.conf", {
    USER: FREEPBX_DB_USER,
    PASSWORD_FILE: FREEPBX_PASSWORD_FILE,
    HOST: o.host,
    PORT: o.port,
    DATABASE: FREEPBX_DATABASE,
    CDR_USER: FREEPBX_CDR_DB_USER,
    CDR_PASSWORD_FILE: FREEPBX_CDR_PASSWORD_FILE,
    CDR_DATABASE: o.cdrDatabase,
  });
}

/** Install paths of the FreePBX database setup (server/pbx/hastack-pbx-freepbx-db.sh). */
export const PBX_FREEPBX_DB_SOURCE = "pbx/hastack-pbx-freepbx-db.sh";
export const PBX_FREEPBX_DB_PATH = "/usr/local/sbin/hastack-pbx-freepbx-db";
export const PBX_FREEPBX_DB_ENV_PATH = "/etc/hastack/pbx-freepbx-db.env";
export const PBX_FREEPBX_CONF_RENDERED = "/etc/hastack/pbx/freepbx.conf";
/** The unit that runs it, retried until FreePBX's account on the pair answers. */
export const PBX_FREEPBX_DB_UNIT = "hastack-pbx-freepbx-db.service";

/**
 * The FreePBX database setup as a systemd unit, not a runcmd line: at first boot the MySQL
 * pair's accounts are made by a remote command after its servers boot, possibly later than the
 * script's own retries; a runcmd failure is also invisible (cloud-init carries on). The unit
 * retries every 30 s until it succeeds and shows as activating meanwhile.
 */
export function renderFreepbxDbUnit(): { path: string; content: string } {
  return {
    path: `/etc/systemd/system/${PBX_FREEPBX_DB_UNIT}`,
    content: renderServerFile("pbx/hastack-pbx-freepbx-db.service", {
      ENV_FILE: PBX_FREEPBX_DB_ENV_PATH,
      SCRIPT_PATH: PBX_FREEPBX_DB_PATH,
    }),
  };
}

/** The FreePBX database setup's env. */
export function renderFreepbxDbEnv(o: {
  region: string;
  freepbxDb: FreepbxDbSettings;
  /** Only the primary adopts a local database into the empty schema at first boot. */
  adoptLocal: boolean;
}): string {
  return envFile({
    REGION: o.region,
    PASSWORD_PARAMETER: o.freepbxDb.passwordParameter,
    PASSWORD_FILE: FREEPBX_PASSWORD_FILE,
    CDR_PASSWORD_PARAMETER: o.freepbxDb.cdrPasswordParameter,
    CDR_PASSWORD_FILE: FREEPBX_CDR_PASSWORD_FILE,
    DB_HOST: o.freepbxDb.host,
    DB_PORT: o.freepbxDb.port,
    DB_USER: FREEPBX_DB_USER,
    DB_NAME: FREEPBX_DATABASE,
    RENDERED_CONF: PBX_FREEPBX_CONF_RENDERED,
    FREEPBX_CONF: "/etc/freepbx.conf",
    ADOPT_LOCAL: o.adoptLocal ? "yes" : "no",
  });
}

/** systemd service + timer: the sync every `minutes` (a no-op on the server that is not active). */
export function renderPbxSyncUnits(minutes: number): { path: string; content: string }[] {
  return [
    {
      path: "/etc/systemd/system/hastack-pbx-sync.service",
      content: renderServerFile("pbx/hastack-pbx-sync.service", {
        SYNC_SCRIPT_PATH: PBX_SYNC_SCRIPT_PATH,
        ENV_FILE: PBX_SYNC_ENV_PATH,
        TIMEOUT_SECONDS: Math.max(minutes * 60 * 4, 3600),
      }),
    },
    {
      path: "/etc/systemd/system/hastack-pbx-sync.timer",
      content: renderServerFile("pbx/hastack-pbx-sync.timer", {
        MINUTES: minutes,
        SCHEDULE: timerSchedule(minutes).join("\n"),
      }),
    },
  ];
}

/**
 * `hastack-pbx-sync sync|final|check ENV` (server/pbx/hastack-pbx-sync.sh).
 *  - sync: timer run; pushes only from the active server (the service name resolves to it), so
 *    after a failover the standby pushes back to the primary without anyone changing a file.
 *  - final: the reverse sync before a fallback (or a planned switch): push regardless of the
 *    active check, then `check`; fails unless the peer holds exactly what this server holds.
 *  - check: dry run; exit 3 when the peer differs.
 * --partial-dir keeps a half-sent recording so the next run resumes it; --delete-after removes
 * files deleted here only after everything else arrived, so an interrupted run never deletes.
 */
export const PBX_SYNC_SCRIPT_SOURCE = "pbx/hastack-pbx-sync.sh";

/** The FreePBX install step's config: skip when the AMI has Asterisk, else a pinned installer. */
export function renderPbxInstallEnv(installer?: { url: string; sha256: string }): string {
  return envFile({
    INSTALLER_URL: installer?.url ?? "",
    INSTALLER_SHA256: installer?.sha256 ?? "",
  });
}

/**
 * FreePBX-style install (server/pbx/hastack-pbx-install.sh). Debian 12 ships no Asterisk
 * package, so either the pinned AMI already carries Asterisk/FreePBX (preferred: nothing
 * downloaded at boot) or the configured installer (e.g. FreePBX 17's
 * sng_freepbx_debian_install.sh) is fetched and run only if its sha256 matches: an unpinned
 * script piped to a root shell is never run.
 */
export const PBX_INSTALL_SCRIPT_SOURCE = "pbx/hastack-pbx-install.sh";

/**
 * Installs the CDR connection into Asterisk (server/pbx/hastack-pbx-cdr-setup.sh): the
 * rendered files into /etc/asterisk, #include lines in res_odbc.conf and cdr_adaptive_odbc.conf
 * (FreePBX keeps those as include lists), and the password from the SSM SecureString into a
 * root:asterisk 0640 file outside /etc/asterisk. Retries while the parameter or Asterisk is not
 * there yet.
 */
export const PBX_CDR_SETUP_SCRIPT_SOURCE = "pbx/hastack-pbx-cdr-setup.sh";

/** Inputs of pbxCloudConfigParts: one side's view of the pair. */
export interface PbxCloudConfigInput {
  role: Role;
  hostname: string;
  fqdn: string;
  serviceName: string;
  /** The other server's name (sync target). */
  peer: string;
  region: string;
  ssmPrefix: string;
  databaseEndpoint: string;
  databasePort: number;
  cdrDatabase: string;
  syncIntervalMinutes: number;
  rtpPorts: { from: number; to: number };
  instanceType: string;
  installer?: { url: string; sha256: string };
  /** Defaults to freepbx. */
  flavour?: PbxFlavour;
  /** What the sync pushes and the activation installs. Defaults to the flavour's set. */
  replicatedSet?: ReplicatedItem[];
  /** FreePBX's database on the MySQL pair. Defaults to none (local or no such database). */
  freepbxDb?: FreepbxDbSettings;
}

/**
 * One PBX server's cloud-init parts: FreePBX install, ODBC/CDR config, SSH trust for the sync
 * and the NAS's read-only backup pulls, the sync timer. No secret is in here: the boot scripts
 * read them from SSM with the instance profile.
 */
export function pbxCloudConfigParts(i: PbxCloudConfigInput): CloudConfigParts {
  const flavour = i.flavour ?? "freepbx";
  const plan = syncPlan(i.replicatedSet ?? replicatedSet(flavour));
  const freepbxFiles = i.freepbxDb
    ? [
        {
          path: PBX_FREEPBX_CONF_RENDERED,
          permissions: "0644",
          content: renderFreepbxConf({
            host: i.freepbxDb.host,
            port: i.freepbxDb.port,
            cdrDatabase: i.freepbxDb.cdrDatabase,
          }),
        },
        {
          path: PBX_FREEPBX_DB_ENV_PATH,
          permissions: "0644",
          content: renderFreepbxDbEnv({
            region: i.region,
            freepbxDb: i.freepbxDb,
            adoptLocal: i.role === "primary",
          }),
        },
        {
          path: PBX_FREEPBX_DB_PATH,
          permissions: "0755",
          content: serverFile(PBX_FREEPBX_DB_SOURCE),
        },
        { ...renderFreepbxDbUnit(), permissions: "0644" },
      ]
    : [];
  return {
    hostname: i.hostname,
    fqdn: i.fqdn,
    // sqlite3: the consistent copies of astdb and Elastix's databases (SQLite's online backup).
    packages: [
      "rsync",
      "python3",
      "curl",
      "awscli",
      "unixodbc",
      "odbc-mariadb",
      "mariadb-client",
      "sqlite3",
    ],
    writeFiles: [
      // The shared shell library hastack-pbx-sync sources.
      hastackLibWriteFile(),
      {
        path: "/usr/local/sbin/hastack-pbx-install",
        permissions: "0755",
        content: serverFile(PBX_INSTALL_SCRIPT_SOURCE),
      },
      {
        path: "/etc/hastack/pbx-install.env",
        permissions: "0644",
        content: renderPbxInstallEnv(i.installer),
      },
      { path: "/etc/odbcinst.ini", permissions: "0644", content: renderOdbcinstIni(i) },
      {
        path: "/etc/odbc.ini",
        permissions: "0644",
        content: renderOdbcIni({
          host: i.databaseEndpoint,
          port: i.databasePort,
          database: i.cdrDatabase,
        }),
      },
      {
        path: "/etc/hastack/pbx/res_odbc_hastack.conf",
        permissions: "0644",
        content: renderResOdbcConf({ user: CDR_DB_USER }),
      },
      {
        path: "/etc/hastack/pbx/cdr_adaptive_odbc_hastack.conf",
        permissions: "0644",
        content: renderCdrAdaptiveOdbcConf(),
      },
      {
        path: "/etc/hastack/pbx/rtp_hastack.conf",
        permissions: "0644",
        content: renderServerFile("pbx/rtp_hastack.conf", {
          RTP_START: i.rtpPorts.from,
          RTP_END: i.rtpPorts.to,
        }),
      },
      {
        path: "/etc/hastack/pbx-cdr.env",
        permissions: "0644",
        content: envFile({
          REGION: i.region,
          PASSWORD_PARAMETER: `${i.ssmPrefix}/cdr-db-password`,
          PASSWORD_INCLUDE: CDR_PASSWORD_INCLUDE,
          DSN_HOST: i.databaseEndpoint,
        }),
      },
      {
        path: "/usr/local/sbin/hastack-pbx-cdr-setup",
        permissions: "0755",
        content: serverFile(PBX_CDR_SETUP_SCRIPT_SOURCE),
      },
      {
        path: IS_ACTIVE_SCRIPT_PATH,
        permissions: "0755",
        content: serverFile(IS_ACTIVE_SCRIPT_SOURCE),
      },
      {
        path: SSH_KEYS_SCRIPT_PATH,
        permissions: "0755",
        content: serverFile(SSH_KEYS_SCRIPT_SOURCE),
      },
      {
        path: "/etc/hastack/ssh-keys.env",
        permissions: "0644",
        content: renderSshKeysEnv({
          region: i.region,
          privateKey: { parameter: `${i.ssmPrefix}/sync-ssh-private-key`, path: PBX_SYNC_KEY_PATH },
          authorized: [
            // The other PBX pushes here; it may write, never read back.
            { parameter: `${i.ssmPrefix}/sync-ssh-public-key`, mode: "wo" },
            // The NAS pulls backups; it may read, never write.
            { parameter: `${i.ssmPrefix}/nas-backup-ssh-public-key`, mode: "ro" },
          ],
        }),
      },
      {
        path: PBX_SYNC_SCRIPT_PATH,
        permissions: "0755",
        content: serverFile(PBX_SYNC_SCRIPT_SOURCE),
      },
      {
        path: PBX_SYNC_ENV_PATH,
        permissions: "0644",
        content: renderPbxSyncEnv({
          serviceName: i.serviceName,
          peer: i.peer,
          peerSide: otherRole(i.role),
          plan,
        }),
      },
      {
        path: PBX_SQLITE_COPY_PATH,
        permissions: "0755",
        content: serverFile(PBX_SQLITE_COPY_SOURCE),
      },
      {
        path: PBX_ACTIVATE_PATH,
        permissions: "0755",
        content: serverFile(PBX_ACTIVATE_SOURCE),
      },
      {
        path: PBX_ACTIVATE_ENV_PATH,
        permissions: "0644",
        content: renderPbxActivateEnv({ flavour, plan }),
      },
      ...freepbxFiles,
      ...renderPbxSyncUnits(i.syncIntervalMinutes).map((u) => ({ ...u, permissions: "0644" })),
    ],
    runcmd: [
      ["/usr/local/sbin/hastack-pbx-install"],
      // rtp.conf: FreePBX manages it, so the range is included rather than overwritten.
      [
        "sh",
        "-c",
        "grep -qxF '#include \"/etc/hastack/pbx/rtp_hastack.conf\"' /etc/asterisk/rtp_custom.conf 2>/dev/null || echo '#include \"/etc/hastack/pbx/rtp_hastack.conf\"' >> /etc/asterisk/rtp_custom.conf",
      ],
      [SSH_KEYS_SCRIPT_PATH, "/etc/hastack/ssh-keys.env"],
      ["/usr/local/sbin/hastack-pbx-cdr-setup"],
      ["systemctl", "daemon-reload"],
      ["systemctl", "enable", "--now", "hastack-pbx-sync.timer"],
      // FreePBX reads its configuration database from the MySQL pair from now on: the unit
      // retries until the pair's account answers (--no-block: the boot does not wait for it).
      ...(i.freepbxDb ? [["systemctl", "enable", "--now", "--no-block", PBX_FREEPBX_DB_UNIT]] : []),
    ],
  };
}
