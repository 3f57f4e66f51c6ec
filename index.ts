// hastack: the program. It reads and validates the whole stack config (before declaring any
// resource), composes the components and returns the stack outputs that monitoring and the
// downtime plan read. Nothing else lives here.
import * as pulumi from "@pulumi/pulumi";
import {
  CONFIG_KEYS,
  ConfigError,
  ConfigProblem,
  NAMESPACE,
  parseStackConfig,
  StackConfig,
} from "./lib/config/stack-config";
import * as aws from "@pulumi/aws";
import { Alarms } from "./components/monitoring";
import { Dns, internalName } from "./components/dns";
import { MysqlPair } from "./components/mysql";
import { NasBackups } from "./components/nas";
import { PbxPair } from "./components/pbx";
import { databasesOnMysqlPair, replicatedSet } from "./components/pbx-replicated-set";
import { Network } from "./components/network";
import { SecretsKey } from "./components/secrets-key";
import { VolumeKey } from "./components/volume-key";
import { Role } from "./components/server-pair";
import { resolveSsmRoot } from "./lib/config/ssm-root";
import {
  checkDkimRotation,
  checkMigrationStep,
  dkimState,
  DkimState,
  MailPair,
} from "./components/mail";

export = async (): Promise<Record<string, unknown>> => {
  const cfg = readConfig();
  // The migration may move one phase per update: compare with what the last update applied
  // before declaring anything (a refused move must not leave a half-made change).
  const previous = await previousOutputs();
  const previousPhase = previous?.services?.mail?.migrationPhase;
  checkMigrationStep(previousPhase, cfg.mail.migration.phase);
  // Every SSM path under the stack's root, so two stacks in one account never collide; an
  // existing stack's root never moves by itself (that would replace every parameter).
  const ssmRoot = configChecked(() =>
    resolveSsmRoot({
      configured: cfg.ssmRoot,
      stack: pulumi.getStack(),
      previous: previous ? { exists: true, ssmRoot: previous.ssmRoot } : undefined,
    }),
  );
  // A DKIM key rotation likewise moves one step per update (issue 17).
  const previousDkim = previous?.services?.mail?.dkim;
  checkDkimRotation(previousDkim, dkimState(cfg.mail.dkim));
  const sshPrivateKey = cfg.sshPrivateKey
    ? new pulumi.Config(NAMESPACE).requireSecret("sshPrivateKey")
    : undefined;

  const network = new Network("network", {
    existing: "subnets" in cfg.network ? cfg.network : undefined,
    create: "subnets" in cfg.network ? undefined : cfg.network,
  });
  const dns = new Dns("dns", {
    domain: cfg.domain,
    zoneId: cfg.zone.id,
    zoneName: cfg.zone.name,
    create: cfg.zone.create,
    internalVpcId: network.vpcId,
  });
  const placement = (service: Service): ServicePlacement => {
    const azs = cfg[service].azs ?? {
      primary: network.subnets[0].az,
      standby: network.subnets[1].az,
    };
    return {
      vpcId: network.vpcId,
      subnets: { primary: network.subnetIn(azs.primary), standby: network.subnetIn(azs.standby) },
    };
  };
  // Every SecureString of the stack under one customer key; each role decrypts only its prefix.
  const secrets = new SecretsKey("secrets");
  // Volumes and root disks under the stack's key: their snapshots can be copied to another
  // region or account (a live volume keeps the key it was made with).
  const volumes = new VolumeKey("volumes", {
    copyRegions: cfg.nas.awsBackup.copyToRegion ? [cfg.nas.awsBackup.copyToRegion] : [],
  });
  const common = {
    domain: cfg.domain,
    dns,
    ami: cfg.ami,
    region: cfg.region,
    adminCidrs: cfg.adminCidrs,
    keyName: cfg.keyName,
    secretsKeyArn: secrets.arn,
    volumeKeyArn: volumes.arn,
    ssmRoot,
  };
  // Route 53 health-check metrics exist only in us-east-1: alarms and their topic live there.
  const usEast1 = new aws.Provider("us-east-1", { region: "us-east-1" });
  const alerts = new Alarms("alerts", {
    healthChecks: {},
    emails: cfg.alerts.emails,
    provider: usEast1,
  });

  // The PBX's replicated set (issue 16): FreePBX's database may live on the MySQL pair, which
  // then creates it and the NAS dumps it with the others.
  const pbxSet = replicatedSet(cfg.pbx.flavour, cfg.pbx.configDatabase);
  const mysqlDatabases = [
    ...cfg.mysql.databases,
    ...databasesOnMysqlPair(pbxSet).filter((d) => !cfg.mysql.databases.includes(d)),
  ];
  const nas = new NasBackups("nas", {
    ...common,
    config: cfg.nas,
    network: placement("nas"),
    sources: {
      mailHostname: cfg.mail.hostname,
      mysqlHostname: cfg.mysql.hostname,
      pbxHostname: cfg.pbx.hostname,
      databases: mysqlDatabases,
      pbxSet,
    },
  });
  const pbx = new PbxPair("pbx", {
    ...common,
    config: cfg.pbx,
    network: placement("pbx"),
    officeCidrs: cfg.officeCidrs,
    databaseEndpoint: internalName(`${cfg.mysql.hostname}.${cfg.domain}`, cfg.domain),
    backupClientSecurityGroupIds: [nas.securityGroupId],
    alarmActions: [alerts.topicArn],
    alarmProvider: usEast1,
    sshUser: cfg.sshUser,
    sshPrivateKey,
  });
  const mysql = new MysqlPair("mysql", {
    ...common,
    config: { ...cfg.mysql, databases: mysqlDatabases },
    network: placement("mysql"),
    clientSecurityGroupIds: [pbx.securityGroupId, nas.securityGroupId],
    // Application accounts accept connections from the VPC's private range only (issue 13).
    clientCidr:
      "vpcCidr" in cfg.network
        ? cfg.network.vpcCidr
        : aws.ec2.getVpcOutput({ id: cfg.network.vpcId }).cidrBlock,
    accounts: [
      {
        user: pbx.cdrDbUser,
        database: "asteriskcdrdb",
        password: pbx.cdrDbPassword,
        privileges: "SELECT, INSERT",
      },
      {
        user: nas.dbBackupUser,
        database: "*",
        password: nas.dbBackupPassword,
        privileges: "SELECT, SHOW VIEW, TRIGGER, LOCK TABLES, EVENT, RELOAD, BINLOG MONITOR",
      },
      ...(pbx.freepbxDbAccount ? [pbx.freepbxDbAccount] : []),
      ...(pbx.freepbxCdrDbAccount ? [pbx.freepbxCdrDbAccount] : []),
    ],
    sshUser: cfg.sshUser,
    sshPrivateKey,
  });
  const mail = new MailPair("mail", {
    config: cfg.mail,
    domain: cfg.domain,
    dns,
    network: placement("mail"),
    ami: cfg.ami,
    adminCidrs: cfg.adminCidrs,
    keyName: cfg.keyName,
    secretsKeyArn: secrets.arn,
    volumeKeyArn: volumes.arn,
    ssmRoot,
    previousPhase,
    previousDkim,
    sshUser: cfg.sshUser,
    sshPrivateKey,
    backupClientSecurityGroupIds: [nas.securityGroupId],
  });
  // The NAS pulls from mail and the PBX over SSH: it pins their stack-generated host keys.
  nas.pinSourceHostKeys([mail.pair.knownHostsLines, pbx.pair.knownHostsLines]);
  alerts.watch({
    "mail-primary": mail.pair.healthCheckIds.primary,
    "mail-standby": mail.pair.healthCheckIds.standby,
    "mysql-primary": mysql.pair.healthCheckIds.primary,
    "mysql-standby": mysql.pair.healthCheckIds.standby,
    "nas-primary": nas.pair.healthCheckIds.primary,
    "nas-standby": nas.pair.healthCheckIds.standby,
  });

  return {
    region: cfg.region,
    domain: cfg.domain,
    ssmRoot,
    zoneId: dns.zoneId,
    services: { mail: mail.summary, pbx: pbx.summary, mysql: mysql.summary, nas: nas.summary },
    nas: nas.outputs,
    mail: mail.operations,
    alertsTopicArn: alerts.topicArn,
    contacts: cfg.contacts,
  };
};

type Service = "mail" | "pbx" | "mysql" | "nas";

/** What the previous outputs tell this program (the fields it reads). */
interface PreviousOutputs {
  services?: { mail?: { migrationPhase?: number; dkim?: DkimState } };
  /** Absent on a stack last updated before per-stack SSM paths (issue 10). */
  ssmRoot?: string;
}

/**
 * The stack's own outputs from its last update, through a reference to itself (offline synth
 * serves them from --previous). A new stack has none.
 */
async function previousOutputs(): Promise<PreviousOutputs | undefined> {
  const self = new pulumi.StackReference("previous-state", {
    name: `${pulumi.getOrganization()}/${pulumi.getProject()}/${pulumi.getStack()}`,
  });
  const output = (key: string): Promise<unknown> =>
    new Promise<unknown>((resolve) => self.getOutput(key).apply((v) => resolve(v)));
  const [services, ssmRoot] = await Promise.all([output("services"), output("ssmRoot")]);
  return services === undefined
    ? undefined
    : ({ services, ssmRoot: typeof ssmRoot === "string" ? ssmRoot : undefined } as PreviousOutputs);
}

/** Runs a config check; its ConfigError fails the update with the message, no stack trace. */
function configChecked<T>(check: () => T): T {
  try {
    return check();
  } catch (e) {
    throw e instanceof ConfigError ? new pulumi.RunError(e.message) : e;
  }
}
interface ServicePlacement {
  vpcId: pulumi.Input<string>;
  subnets: Record<Role, { id: pulumi.Input<string>; az: string }>;
}

/**
 * Reads every `hastack:*` key (and aws:region) and validates them in one go. Throws a RunError
 * — printed without a stack trace — listing every problem by its full key.
 */
function readConfig(): StackConfig {
  const raw: Record<string, unknown> = {};
  const problems: ConfigProblem[] = [];
  for (const [fullKey, value] of Object.entries(pulumi.runtime.allConfig())) {
    const [ns, key] = fullKey.split(":", 2);
    if (ns === "aws" && key === "region") {
      raw.region = value;
    } else if (ns === NAMESPACE && (CONFIG_KEYS as readonly string[]).includes(key)) {
      raw[key] = parseValue(value);
    } else if (ns === NAMESPACE) {
      problems.push({
        key: fullKey,
        message: `is not a known key (known: ${CONFIG_KEYS.join(", ")})`,
      });
    }
  }
  let cfg: StackConfig | undefined;
  try {
    cfg = parseStackConfig(raw, { isSecret: isConfigSecret });
  } catch (e) {
    if (!(e instanceof ConfigError)) {
      throw e;
    }
    problems.unshift(...e.problems);
  }
  if (problems.length > 0 || cfg === undefined) {
    throw new pulumi.RunError(new ConfigError(problems).message);
  }
  return cfg;
}

/** Whether a key was stored with `--secret` (the SDK knows; its typings do not export it). */
function isConfigSecret(fullKey: string): boolean {
  const runtime = pulumi.runtime as unknown as { isConfigSecret?: (k: string) => boolean };
  return runtime.isConfigSecret ? runtime.isConfigSecret(fullKey) : true;
}

/** The CLI passes objects and lists JSON-encoded; plain strings stay strings. */
function parseValue(value: string): unknown {
  try {
    return JSON.parse(value);
  } catch {
    return value;
  }
}
