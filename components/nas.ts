/**
 * NAS backups: where every service's data is kept a second and third time, and how.
 *
 * ## Design decision: a ServerPair that pulls over rsync/SSH, not Amazon EFS
 *
 * Two designs were weighed (issue 5):
 *
 * - **Amazon EFS with replication.** Managed, encrypted with KMS, multi-AZ by itself, nothing to
 *   patch. But it is a mount target: every service server would mount it and push its own
 *   backups, so a compromised or ransomware-encrypted mail or PBX server could also overwrite or
 *   delete its backups. EFS replication is one-way to a read-only copy, designed for a 15-minute
 *   RPO, and promoting it means deleting the replication; it cannot be rehearsed on loopback, so
 *   the "exact scripts the stack renders" rule would cover only half of the path. NFS in transit
 *   needs the EFS mount helper's TLS tunnel on every client, and storage costs ~4× gp3 per GB.
 * - **A ServerPair (chosen).** Two Debian servers in two AZs, encrypted gp3 data volumes (AWS
 *   Backup snapshots them too), the same pair, failover and monitoring machinery as every other
 *   service. The *active NAS pulls*: each job runs on the NAS, reads the service through its
 *   service name (so a service failover needs no NAS change) with an SSH key that every server
 *   forces through `rrsync -ro` — the NAS can read a server, a server cannot touch the NAS.
 *   Snapshots are hard-linked trees (`rsync --link-dest`), each with a sha256 MANIFEST, pruned
 *   per job after `retentionDays`, and the whole tree is replicated to the standby NAS with
 *   `rsync -aH --delete-after` (hard links kept, deletions only after a complete copy). Every
 *   script is ours, so `npm run rehearse -- backup` runs exactly what the NAS runs.
 *
 * The NAS exports no NFS and no rsync daemon. What its security groups open, and nothing
 * else: SSH (22) and node_exporter (9100) from the admin CIDRs, SSH from the peer NAS, and the
 * health agent (9780) to Route 53's health-checker ranges only — no 0.0.0.0/0 rule at all. The
 * servers keep public addresses for egress (package mirrors, AWS APIs) because the stack's
 * subnets are public.
 *
 * Besides the file-level jobs, an AWS Backup plan snapshots every data volume tagged
 * `hastack:backup=true` (ServerPair tags them) into a KMS-encrypted vault that is protected,
 * locked (compliance mode, minimum retention = hastack:nas.awsBackup.retentionDays) and denies
 * deleting recovery points to every principal; with `awsBackup.copyToRegion` every recovery point
 * is also copied to a locked vault with its own key in that region.
 */
import * as pulumi from "@pulumi/pulumi";
import * as aws from "@pulumi/aws";
import * as tls from "@pulumi/tls";
import * as random from "@pulumi/random";
import type { NasConfig } from "../lib/config/stack-config";
import { peerName } from "./dns";
import {
  CloudConfigParts,
  otherRole,
  pairBasics,
  PairPlacement,
  Role,
  ROLES,
  ServerPair,
  ServiceSummary,
  throwIfInvalid,
  ArgProblem,
} from "./server-pair";
import { DEFAULT_SWITCHOVER, ssmPrefix as servicePrefix } from "./pair-defaults";
import {
  BACKUP_ENV_DIR,
  BACKUP_ROOT,
  BACKUP_SCRIPT_PATH,
  BACKUP_SCRIPT_SOURCE,
  BackupJob,
  DB_BACKUP_USER,
  DB_DEFAULTS_PATH,
  IS_ACTIVE_SCRIPT_PATH,
  IS_ACTIVE_SCRIPT_SOURCE,
  NAS_SSH_KEY_PATH,
  REPLICATE_SCRIPT_PATH,
  REPLICATE_SCRIPT_SOURCE,
  SSH_KEYS_SCRIPT_PATH,
  SSH_KEYS_SCRIPT_SOURCE,
  backupJobs,
  jobRpoSeconds,
  renderJobEnv,
  renderJobUnits,
  renderReplicateEnv,
  renderReplicateUnits,
  renderSshKeysEnv,
  timerSchedule,
} from "./backup-jobs";
import { envFile, hastackLibWriteFile, serverFile } from "./server-files";
import type { ReplicatedItem } from "./pbx-replicated-set";

/** The tag AWS Backup selects on; ServerPair puts it on every data volume. */
export const BACKUP_TAG = { key: "hastack:backup", value: "true" } as const;

/** Arguments of NasBackups. Everything it needs is explicit: it reads no config itself. */
export interface NasBackupsArgs extends PairPlacement {
  /** The parsed `hastack:nas` object (active side, sizes, retention and interval per job, AWS Backup). */
  config: NasConfig;
  /** AWS region (the boot scripts read SSM there). */
  region: string;
  /** What the jobs pull: the services' host labels (mail, db, pbx) and the databases dumped. */
  sources: {
    mailHostname: string;
    mysqlHostname: string;
    pbxHostname: string;
    databases: string[];
    /** The PBX's replicated set (issue 16): what its jobs pull. Defaults to FreePBX's. */
    pbxSet?: ReplicatedItem[];
  };
  /** Where the mail servers keep Maildirs. Defaults to /srv/data/mail. */
  mailDataPath?: string;
}

/** One job as the stack outputs describe it (monitoring and the downtime plan read these). */
export interface JobOutput {
  service: string;
  name: string;
  schedule: string;
  intervalHours: number;
  retentionDays: number;
  rpoSeconds: number;
  target: string;
}

/** The `nas` stack output. */
export interface NasOutputs {
  /** Private addresses of the NAS servers (monitoring scrapes node_exporter there). */
  endpoints: Record<Role, pulumi.Output<string>>;
  /** Their names and the snapshot root, for people and restores. */
  hosts: Record<Role, string>;
  backupRoot: string;
  backupPlanId: pulumi.Output<string>;
  vaultName: pulumi.Output<string>;
  awsBackup: { schedule: string; retentionDays: number; selectionTag: string };
  jobs: JobOutput[];
}

export class NasBackups extends pulumi.ComponentResource {
  public readonly pair: ServerPair;
  /** The NAS's security group: mail (22) and MySQL (3306) allow the pulls from it. */
  public readonly securityGroupId: pulumi.Output<string>;
  public readonly jobs: BackupJob[];
  public readonly outputs: NasOutputs;
  public readonly summary: ServiceSummary;
  /** The MariaDB account the dump job uses, and its password (secret), for the MySQL pair to create. */
  public readonly dbBackupUser: string;
  public readonly dbBackupPassword: pulumi.Output<string>;
  /** SSM String parameter the NAS reads the sources' host keys from (pinSourceHostKeys). */
  public readonly sourcesKnownHostsParameter: string;
  private readonly componentName: string;

  constructor(name: string, args: NasBackupsArgs, opts?: pulumi.ComponentResourceOptions) {
    super("hastack:nas:NasBackups", name, {}, opts);
    throwIfInvalid(`NasBackups ${name}`, checkNasArgs(args));
    const cfg = args.config;
    const switchover = cfg.switchover ?? DEFAULT_SWITCHOVER.nas;
    const ssmPrefix = servicePrefix(args.ssmRoot, "nas");
    this.componentName = name;
    this.sourcesKnownHostsParameter = `${ssmPrefix}/ssh-known-hosts-sources`;
    const serviceName = `${cfg.hostname}.${args.domain}`;
    const serverNames = {
      primary: `${cfg.serverNames.primary}.${args.domain}`,
      standby: `${cfg.serverNames.standby}.${args.domain}`,
    };
    this.jobs = backupJobs({
      // Pull from the services' private names: the sources' rules allow the NAS's group.
      domain: args.dns.internalDomain ?? args.domain,
      hostnames: {
        mail: args.sources.mailHostname,
        mysql: args.sources.mysqlHostname,
        pbx: args.sources.pbxHostname,
      },
      intervalHours: cfg.intervalHours,
      retentionDays: cfg.retentionDays,
      databases: args.sources.databases,
      mailDataPath: args.mailDataPath,
      pbxSet: args.sources.pbxSet,
    });

    // The dump account's password: the NAS reads it from its prefix; the MySQL pair, which
    // creates the account (renderBackupUserSql), from its own.
    this.dbBackupUser = DB_BACKUP_USER;
    const dbPassword = new random.RandomPassword(
      `${name}-db-backup-password`,
      { length: 32, special: false },
      { parent: this },
    );
    this.dbBackupPassword = pulumi.secret(dbPassword.result);
    for (const [suffix, parameter] of [
      ["nas", `${ssmPrefix}/mysql-backup-password`],
      ["mysql", `${servicePrefix(args.ssmRoot, "mysql")}/backup-user-password`],
    ]) {
      new aws.ssm.Parameter(
        `${name}-db-backup-password-${suffix}`,
        {
          name: parameter,
          type: "SecureString",
          keyId: args.secretsKeyArn,
          value: dbPassword.result,
          description: `hastack: password of the MariaDB account ${DB_BACKUP_USER} (NAS dump job)`,
        },
        { parent: this },
      );
    }

    // The NAS's key: private half for the NAS, public half where each server reads it.
    const key = new tls.PrivateKey(`${name}-ssh-key`, { algorithm: "ED25519" }, { parent: this });
    new aws.ssm.Parameter(
      `${name}-ssh-key-private`,
      {
        name: `${ssmPrefix}/ssh-private-key`,
        type: "SecureString",
        keyId: args.secretsKeyArn,
        value: key.privateKeyOpenssh,
        description: "hastack: private key the NAS pulls backups and replicates with",
      },
      { parent: this },
    );
    for (const service of ["nas", "mail", "pbx"]) {
      new aws.ssm.Parameter(
        `${name}-ssh-key-public-${service}`,
        {
          name:
            service === "nas"
              ? `${ssmPrefix}/ssh-public-key`
              : `${servicePrefix(args.ssmRoot, service)}/nas-backup-ssh-public-key`,
          type: "String",
          value: key.publicKeyOpenssh,
          description: `hastack: the NAS's public key, authorized ${service === "nas" ? "write-only on the other NAS" : `read-only on the ${service} servers`}`,
        },
        { parent: this },
      );
    }

    const cloudConfig = {} as Record<Role, CloudConfigParts>;
    for (const side of ROLES) {
      cloudConfig[side] = nasCloudConfigParts({
        hostname: cfg.serverNames[side],
        fqdn: serverNames[side],
        serviceName,
        // Server-to-server traffic by private address (SG rules name the peer's group).
        peer: peerName(args.dns, serverNames[otherRole(side)]),
        peerSide: otherRole(side),
        region: args.region,
        ssmPrefix,
        jobs: this.jobs,
        knownHostsParameter: this.sourcesKnownHostsParameter,
      });
    }
    this.pair = new ServerPair(
      `${name}-pair`,
      {
        ...pairBasics("nas", cfg, args, switchover),
        cloudConfig,
        // Nothing is served: the NAS pulls. SSH only from admins and the peer NAS.
        servicePorts: [],
        adminPorts: [22],
        peerPorts: [22],
        healthCheck: { type: "TCP", port: 22, failureThreshold: cfg.healthCheck.failureThreshold },
        serviceName,
        serverNames,
      },
      { parent: this },
    );
    this.securityGroupId = this.pair.securityGroupId;
    this.summary = { ...this.pair.summary, rpoSeconds: replicationRpoSeconds() };

    // AWS Backup: volume snapshots of every tagged data volume, in vaults that survive a
    // compromised account (issue 13): encrypted with keys that outlive the stack, locked in
    // compliance mode with the configured retention as the minimum, a vault policy that denies
    // deleting recovery points to everyone, and optionally a copy in a second region.
    const vault = lockedVault(this, `${name}`, {
      retentionDays: cfg.awsBackup.retentionDays,
    });
    const copy =
      cfg.awsBackup.copyToRegion !== undefined
        ? lockedVault(this, `${name}-copy`, {
            retentionDays: cfg.awsBackup.retentionDays,
            provider: new aws.Provider(
              `${name}-copy-region`,
              { region: cfg.awsBackup.copyToRegion as aws.Region },
              { parent: this },
            ),
          })
        : undefined;
    const plan = new aws.backup.Plan(
      `${name}-plan`,
      {
        rules: [
          {
            ruleName: "hastack-data-volumes",
            targetVaultName: vault.name,
            schedule: cfg.awsBackup.schedule,
            startWindow: 60,
            completionWindow: 480,
            lifecycle: { deleteAfter: cfg.awsBackup.retentionDays },
            recoveryPointTags: { "hastack:service": "nas" },
            copyActions: copy
              ? [
                  {
                    destinationVaultArn: copy.arn,
                    lifecycle: { deleteAfter: cfg.awsBackup.retentionDays },
                  },
                ]
              : undefined,
          },
        ],
        tags: { "hastack:service": "nas" },
      },
      { parent: this, protect: true },
    );
    const backupRole = new aws.iam.Role(
      `${name}-backup-role`,
      {
        assumeRolePolicy: JSON.stringify({
          Version: "2012-10-17",
          Statement: [
            {
              Effect: "Allow",
              Principal: { Service: "backup.amazonaws.com" },
              Action: "sts:AssumeRole",
            },
          ],
        }),
        tags: { "hastack:service": "nas" },
      },
      { parent: this },
    );
    for (const [suffix, policy] of [
      ["backup", "AWSBackupServiceRolePolicyForBackup"],
      ["restore", "AWSBackupServiceRolePolicyForRestores"],
    ]) {
      new aws.iam.RolePolicyAttachment(
        `${name}-backup-role-${suffix}`,
        { role: backupRole.name, policyArn: `arn:aws:iam::aws:policy/service-role/${policy}` },
        { parent: this },
      );
    }
    new aws.backup.Selection(
      `${name}-selection`,
      {
        planId: plan.id,
        iamRoleArn: backupRole.arn,
        selectionTags: [{ type: "STRINGEQUALS", key: BACKUP_TAG.key, value: BACKUP_TAG.value }],
      },
      { parent: this },
    );

    this.outputs = {
      endpoints: this.pair.privateIps,
      hosts: serverNames,
      backupRoot: BACKUP_ROOT,
      backupPlanId: plan.id,
      vaultName: vault.name,
      awsBackup: {
        schedule: cfg.awsBackup.schedule,
        retentionDays: cfg.awsBackup.retentionDays,
        selectionTag: `${BACKUP_TAG.key}=${BACKUP_TAG.value}`,
      },
      jobs: jobOutputs(this.jobs, serviceName),
    };
    this.registerOutputs({
      endpoints: this.outputs.endpoints,
      backupPlanId: this.outputs.backupPlanId,
      jobs: this.outputs.jobs,
    });
  }

  /**
   * Pins the host keys of the servers the NAS pulls from (issue 13: no trust on first use): their
   * known_hosts lines (ServerPair.knownHostsLines), which the backup script copies to
   * SOURCES_KNOWN_HOSTS_PATH before each pull. index.ts calls it once the source pairs exist
   * (they take the NAS's security group, so they are built after it).
   */
  pinSourceHostKeys(lines: pulumi.Input<string>[]): void {
    new aws.ssm.Parameter(
      `${this.componentName}-sources-known-hosts`,
      {
        name: this.sourcesKnownHostsParameter,
        type: "String",
        // Public keys: insecureValue keeps them readable in previews (`value` is always secret).
        insecureValue: pulumi.all(lines).apply((ls) => ls.join("\n")),
        description: "hastack: host keys of the servers the NAS pulls backups from (pinned)",
      },
      { parent: this },
    );
  }
}

/** What a compromised account must never do to a vault's recovery points. */
export const VAULT_DENIED_ACTIONS = [
  "backup:DeleteRecoveryPoint",
  "backup:UpdateRecoveryPointLifecycle",
  "backup:DisassociateRecoveryPoint",
  "backup:DeleteBackupVault",
  "backup:DeleteBackupVaultLockConfiguration",
];

/** Vault lock grace: days the lock can still be removed before compliance mode makes it final. */
export const VAULT_LOCK_GRACE_DAYS = 3;

/**
 * A KMS key, a vault, its lock and its access policy, all protected and retained (in the
 * provider's region when given). The lock turns to compliance mode after
 * VAULT_LOCK_GRACE_DAYS: from then on nobody — not the account's root — can delete a recovery
 * point before `retentionDays` or shorten the retention.
 */
function lockedVault(
  parent: pulumi.Resource,
  name: string,
  o: { retentionDays: number; provider?: aws.Provider },
): aws.backup.Vault {
  const opts = { parent, provider: o.provider, protect: true, retainOnDelete: true };
  const key = new aws.kms.Key(
    `${name}-vault-key`,
    {
      description: "hastack: encrypts the AWS Backup vault",
      enableKeyRotation: true,
      deletionWindowInDays: 30,
      tags: { "hastack:service": "nas" },
    },
    opts,
  );
  const vault = new aws.backup.Vault(
    `${name}-vault`,
    { kmsKeyArn: key.arn, forceDestroy: false, tags: { "hastack:service": "nas" } },
    opts,
  );
  new aws.backup.VaultLockConfiguration(
    `${name}-vault-lock`,
    {
      backupVaultName: vault.name,
      minRetentionDays: o.retentionDays,
      changeableForDays: VAULT_LOCK_GRACE_DAYS,
    },
    opts,
  );
  new aws.backup.VaultPolicy(
    `${name}-vault-policy`,
    {
      backupVaultName: vault.name,
      policy: JSON.stringify(vaultAccessPolicy()),
    },
    opts,
  );
  return vault;
}

/**
 * Denies every principal (the account's own included) the actions that would destroy or shorten
 * recovery points. A policy can be replaced by whoever may put one, so the hard guarantee is the
 * compliance-mode lock; this policy stops the casual and the scripted deletion meanwhile.
 */
export function vaultAccessPolicy(): Record<string, unknown> {
  return {
    Version: "2012-10-17",
    Statement: [
      {
        Sid: "DenyDeletingRecoveryPoints",
        Effect: "Deny",
        Principal: { AWS: "*" },
        Action: VAULT_DENIED_ACTIONS,
        Resource: "*",
      },
    ],
  };
}

/** Problems with NasBackups' arguments, each naming its argument; empty when they are fine. */
export function checkNasArgs(args: NasBackupsArgs): ArgProblem[] {
  const problems: ArgProblem[] = [];
  for (const service of ["mail", "mysql", "pbx"] as const) {
    const hours = args.config.intervalHours[service];
    if (!Number.isInteger(hours) || hours < 1) {
      problems.push({
        propertyPath: `config.intervalHours.${service}`,
        reason: `must be a whole number of hours >= 1 (a systemd timer fires on it), got ${hours}`,
      });
    }
  }
  if (args.sources.databases.length === 0) {
    problems.push({
      propertyPath: "sources.databases",
      reason: "the dump job needs at least one database",
    });
  }
  for (const [key, label] of Object.entries({
    mailHostname: args.sources.mailHostname,
    mysqlHostname: args.sources.mysqlHostname,
    pbxHostname: args.sources.pbxHostname,
  })) {
    if (!/^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/.test(label)) {
      problems.push({
        propertyPath: `sources.${key}`,
        reason: `must be one DNS label (the job pulls from <label>.<domain>), got ${JSON.stringify(label)}`,
      });
    }
  }
  return problems;
}

/** The jobs as the `nas.jobs` stack output: schedule, retention, designed RPO, where they land. */
export function jobOutputs(jobs: BackupJob[], nasServiceName: string): JobOutput[] {
  return jobs.map((j) => ({
    service: j.service,
    name: j.name,
    schedule: timerSchedule(j.intervalHours * 60)
      .filter((l) => l !== "Persistent=true")
      .join(" "),
    intervalHours: j.intervalHours,
    retentionDays: j.retentionDays,
    rpoSeconds: jobRpoSeconds(j),
    target: `${nasServiceName}:${BACKUP_ROOT}/${j.name}`,
  }));
}

/** The standby NAS trails the primary by at most the hourly catch-up replication. */
export function replicationRpoSeconds(): number {
  return 3600;
}

/** Reads the dump account's password from SSM into the MariaDB client options file (0600). */
export const NAS_DB_CREDENTIALS_SCRIPT_SOURCE = "nas/hastack-nas-db-credentials.sh";
export const NAS_DB_CREDENTIALS_SCRIPT_PATH = "/usr/local/sbin/hastack-nas-db-credentials";

/** Inputs of nasCloudConfigParts: one NAS server's view. */
export interface NasCloudConfigInput {
  hostname: string;
  fqdn: string;
  /** nas.<domain>: where it resolves decides which NAS runs the jobs. */
  serviceName: string;
  /** The other NAS (replication target) and its role (the replication metric's side label). */
  peer: string;
  peerSide: Role;
  region: string;
  ssmPrefix: string;
  jobs: BackupJob[];
  /** SSM parameter of the sources' known_hosts lines (NasBackups.pinSourceHostKeys). */
  knownHostsParameter?: string;
}

/**
 * One NAS server's cloud-init parts: the backup and replication scripts, one env file and
 * systemd timer per job, the SSH trust and the dump credentials (both from SSM at boot). Both
 * servers get the same timers; only the active one acts on them.
 */
export function nasCloudConfigParts(i: NasCloudConfigInput): CloudConfigParts {
  const file = (path: string, content: string, permissions = "0644") => ({
    path,
    content,
    permissions,
  });
  return {
    hostname: i.hostname,
    fqdn: i.fqdn,
    packages: ["rsync", "python3", "curl", "awscli", "mariadb-client"],
    writeFiles: [
      // The shared shell library the backup, replication and sync scripts source.
      hastackLibWriteFile(),
      file(BACKUP_SCRIPT_PATH, serverFile(BACKUP_SCRIPT_SOURCE), "0755"),
      file(REPLICATE_SCRIPT_PATH, serverFile(REPLICATE_SCRIPT_SOURCE), "0755"),
      file(IS_ACTIVE_SCRIPT_PATH, serverFile(IS_ACTIVE_SCRIPT_SOURCE), "0755"),
      file(SSH_KEYS_SCRIPT_PATH, serverFile(SSH_KEYS_SCRIPT_SOURCE), "0755"),
      file(NAS_DB_CREDENTIALS_SCRIPT_PATH, serverFile(NAS_DB_CREDENTIALS_SCRIPT_SOURCE), "0755"),
      file(
        "/etc/hastack/ssh-keys.env",
        renderSshKeysEnv({
          region: i.region,
          privateKey: { parameter: `${i.ssmPrefix}/ssh-private-key`, path: NAS_SSH_KEY_PATH },
          // The other NAS replicates here: write-only.
          authorized: [{ parameter: `${i.ssmPrefix}/ssh-public-key`, mode: "wo" }],
        }),
      ),
      file(
        "/etc/hastack/nas-db.env",
        envFile({
          REGION: i.region,
          PASSWORD_PARAMETER: `${i.ssmPrefix}/mysql-backup-password`,
          DB_USER: DB_BACKUP_USER,
          DEFAULTS_FILE: DB_DEFAULTS_PATH,
        }),
      ),
      file(
        `${BACKUP_ENV_DIR}/replicate.env`,
        renderReplicateEnv({
          nasServiceName: i.serviceName,
          peer: i.peer,
          peerSide: i.peerSide,
        }),
      ),
      ...i.jobs.map((j) =>
        file(
          `${BACKUP_ENV_DIR}/${j.name}.env`,
          renderJobEnv(j, {
            nasServiceName: i.serviceName,
            knownHostsParameter: i.knownHostsParameter,
          }),
        ),
      ),
      ...i.jobs.flatMap((j) => renderJobUnits(j).map((u) => file(u.path, u.content))),
      ...renderReplicateUnits().map((u) => file(u.path, u.content)),
    ],
    runcmd: [
      [SSH_KEYS_SCRIPT_PATH, "/etc/hastack/ssh-keys.env"],
      [NAS_DB_CREDENTIALS_SCRIPT_PATH],
      ["install", "-d", "-m", "0700", BACKUP_ROOT],
      ["systemctl", "daemon-reload"],
      [
        "systemctl",
        "enable",
        "--now",
        ...i.jobs.map((j) => `hastack-backup-${j.name}.timer`),
        "hastack-nas-replicate.timer",
      ],
    ],
  };
}
