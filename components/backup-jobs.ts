// The NAS backup jobs: the job list derived from config, their env files and systemd timers.
// The shell scripts that take, prune, verify, restore and replicate snapshots are real files in
// server/nas/ (issue 10); this module renders only values. Pure functions only, so
// `npm run rehearse -- backup` runs byte-for-byte the scripts the stack puts on the NAS, with
// only the env files (hosts, ports, paths) pointed at loopback.
//
// Snapshot layout on the NAS (one directory per job):
//   <BACKUP_ROOT>/<job>/<YYYYmmddTHHMMSSZ>/data/          the files (rsync jobs) or <job>.sql.gz
//   <BACKUP_ROOT>/<job>/<YYYYmmddTHHMMSSZ>/MANIFEST.sha256 sha256sum of every file under data/
//   <BACKUP_ROOT>/<job>/latest -> <YYYYmmddTHHMMSSZ>      switched atomically after a full run
//   <BACKUP_ROOT>/<job>/.incoming/                        the run in progress; an interrupted run
//                                                         resumes into it, it is never replicated
// Unchanged files are hard links into the previous snapshot (rsync --link-dest), so each
// snapshot is a complete tree that costs only what changed.
import { envFile, renderServerFile } from "./server-files";
import { PBX_COPIES_DIR, ReplicatedItem, replicatedSet } from "./pbx-replicated-set";

/** The services that have backup jobs. */
export type BackupService = "mail" | "mysql" | "pbx";

/** Where the NAS keeps snapshots (on its data volume). */
export const BACKUP_ROOT = "/srv/data/backups";
/** Install paths of the rendered scripts. */
export const BACKUP_SCRIPT_PATH = "/usr/local/sbin/hastack-backup";
export const REPLICATE_SCRIPT_PATH = "/usr/local/sbin/hastack-nas-replicate";
export const IS_ACTIVE_SCRIPT_PATH = "/usr/local/sbin/hastack-is-active";
/** Env files the scripts read: one per job plus the replication's. */
export const BACKUP_ENV_DIR = "/etc/hastack/backup";
/** Private key the NAS pulls with (fetched from SSM at boot) and the MariaDB client credentials. */
export const NAS_SSH_KEY_PATH = "/root/.ssh/hastack_nas";
export const DB_DEFAULTS_PATH = "/etc/hastack/backup/mysql-client.cnf";
/** The MariaDB account the dump job uses. */
export const DB_BACKUP_USER = "hastack_backup";

/** One scheduled backup job, as the NAS runs it and as the stack outputs describe it. */
export interface BackupJob {
  service: BackupService;
  /** Job name, unique on the NAS: `<service>-<what>`, e.g. `mail-maildirs`. */
  name: string;
  /** What it copies, for people reading outputs. */
  description: string;
  kind: "rsync" | "mariadb-dump";
  /** Host the NAS pulls from: the service name, so backups follow a failover unchanged. */
  sourceHost: string;
  /** rsync jobs: absolute directory on the source host. */
  sourcePath?: string;
  /** rsync jobs: exclude patterns, anchored at sourcePath (`/tmp/`). */
  excludes?: string[];
  /** Dump jobs: TCP port and databases. */
  dbPort?: number;
  databases?: string[];
  intervalHours: number;
  retentionDays: number;
}

/** What backupJobs needs to know about the stack. */
export interface BackupJobsInput {
  domain: string;
  /** Host labels of the services (mail, db, pbx). */
  hostnames: { mail: string; mysql: string; pbx: string };
  intervalHours: Record<BackupService, number>;
  retentionDays: Record<BackupService, number>;
  /** Databases the dump covers. */
  databases: string[];
  /** Where each service keeps its data. Defaults to /srv/data/mail (Maildirs). */
  mailDataPath?: string;
  /** The PBX's replicated set (components/pbx-replicated-set.ts). Defaults to FreePBX's. */
  pbxSet?: ReplicatedItem[];
}

/** The NAS job that pulls the PBX's consistent database copies (astdb, SQLite files, dumps). */
export const PBX_COPIES_JOB = "pbx-copies";

/**
 * The PBX's jobs, from its replicated set (the one source the sync is rendered from too): one
 * rsync job per directory (`pbx-<key>`), and one for the consistent copies the sync keeps in
 * COPIES_DIR/local on the active PBX — never the live database files. Databases on the MySQL
 * pair are in the dump job (its database list).
 */
export function pbxBackupJobs(
  set: ReplicatedItem[],
  o: { sourceHost: string; intervalHours: number; retentionDays: number },
): BackupJob[] {
  const jobs: BackupJob[] = set
    .filter((i) => i.method === "rsync")
    .map((i) => ({
      service: "pbx",
      name: `pbx-${i.key}`,
      description: `${i.what} (${i.path})`,
      kind: "rsync",
      sourceHost: o.sourceHost,
      sourcePath: i.path!,
      excludes: [...(i.excludes ?? [])],
      intervalHours: o.intervalHours,
      retentionDays: o.retentionDays,
    }));
  const copied = set.filter((i) => i.method === "sqlite-backup" || i.method === "mysqldump");
  if (copied.length > 0) {
    jobs.push({
      service: "pbx",
      name: PBX_COPIES_JOB,
      description: `consistent copies of ${copied.map((i) => i.path ?? `database ${i.database}`).join(", ")} (${PBX_COPIES_DIR}/local)`,
      kind: "rsync",
      sourceHost: o.sourceHost,
      sourcePath: `${PBX_COPIES_DIR}/local`,
      excludes: [],
      intervalHours: o.intervalHours,
      retentionDays: o.retentionDays,
    });
  }
  return jobs;
}

/**
 * The jobs: mail Maildirs, a consistent database dump, and the PBX's replicated set
 * (pbxBackupJobs: Asterisk config, spool without `tmp/` and `outgoing/` — a restored call file
 * would place a call —, /var/lib/asterisk, provisioning, the consistent database copies…).
 */
export function backupJobs(input: BackupJobsInput): BackupJob[] {
  const fqdn = (label: string): string => `${label}.${input.domain}`;
  return [
    {
      service: "mail",
      name: "mail-maildirs",
      description: "every mailbox (Maildir) on the active mail server",
      kind: "rsync",
      sourceHost: fqdn(input.hostnames.mail),
      sourcePath: input.mailDataPath ?? "/srv/data/mail",
      excludes: [],
      intervalHours: input.intervalHours.mail,
      retentionDays: input.retentionDays.mail,
    },
    {
      service: "mysql",
      name: "mysql-dump",
      description: `consistent dump (single transaction, GTID position) of ${input.databases.join(", ")}`,
      kind: "mariadb-dump",
      sourceHost: fqdn(input.hostnames.mysql),
      dbPort: 3306,
      databases: [...input.databases],
      intervalHours: input.intervalHours.mysql,
      retentionDays: input.retentionDays.mysql,
    },
    ...pbxBackupJobs(input.pbxSet ?? replicatedSet("freepbx"), {
      sourceHost: fqdn(input.hostnames.pbx),
      intervalHours: input.intervalHours.pbx,
      retentionDays: input.retentionDays.pbx,
    }),
  ];
}

/**
 * A systemd timer schedule firing every `minutes`. Intervals that divide a day evenly use
 * OnCalendar (wall-clock, Persistent=true catches up a run missed while the NAS was down);
 * others fall back to a monotonic interval, which restarts counting at boot.
 */
export function timerSchedule(minutes: number): string[] {
  if (!Number.isInteger(minutes) || minutes < 1) {
    throw new Error(`a timer interval must be a whole number of minutes >= 1, got ${minutes}`);
  }
  if (minutes < 60 && 60 % minutes === 0) {
    return [`OnCalendar=*-*-* *:00/${minutes}:00`, "Persistent=true"];
  }
  if (minutes % 60 === 0 && minutes < 1440 && 24 % (minutes / 60) === 0) {
    return [`OnCalendar=*-*-* 00/${minutes / 60}:00:00`, "Persistent=true"];
  }
  if (minutes === 1440) {
    return ["OnCalendar=*-*-* 00:00:00", "Persistent=true"];
  }
  return ["OnBootSec=15min", `OnUnitActiveSec=${minutes}min`];
}

/** The designed RPO of a job: data written just after a run waits one interval. */
export function jobRpoSeconds(job: Pick<BackupJob, "intervalHours">): number {
  return job.intervalHours * 3600;
}

/** Where and how the scripts run; production defaults, overridden by the rehearsal. */
export interface BackupRuntime {
  /** Defaults to /srv/data/backups. */
  backupRoot?: string;
  /** Name that resolves to the active NAS (the scripts do nothing on the other one). */
  nasServiceName: string;
  /** "dns": run only where nasServiceName resolves to one of this server's addresses. Defaults to dns. */
  activeCheck?: "dns" | "always" | "never";
  /** Remote shell for pulls. Defaults to ssh with the NAS key, batch mode. */
  rsyncRsh?: string;
  /** Overrides the job's source host (rehearsal: any name the fake remote shell ignores). Defaults to the job's. */
  sourceHost?: string;
  /** Overrides rsync jobs' source path. Defaults to the job's. */
  sourcePath?: string;
  /** Dump jobs: Defaults to the job's sourceHost and port, and the NAS's client credentials file. */
  dbHost?: string;
  dbPort?: number;
  dbDefaultsFile?: string;
  /** Run the replication right after a successful snapshot. Defaults to true. */
  replicateAfter?: boolean;
  /** Env file of the replication. Defaults to <BACKUP_ENV_DIR>/replicate.env. */
  replicateEnvFile?: string;
  /** The replication script. Defaults to the installed hastack-nas-replicate. */
  replicateCommand?: string;
  /** node_exporter textfile collector directory for the success metrics. Defaults to Debian's. */
  textfileDir?: string;
  /**
   * rsync jobs: SSM String parameter with the sources' known_hosts lines, copied to
   * knownHostsFile before each pull. Defaults to none (the file as it is).
   */
  knownHostsParameter?: string;
  /** rsync jobs: the sources' pinned host keys. Defaults to SOURCES_KNOWN_HOSTS_PATH. */
  knownHostsFile?: string;
}

/** Debian's prometheus-node-exporter textfile collector directory (docs/outputs.md). */
export const TEXTFILE_DIR = "/var/lib/prometheus/node-exporter";

/** Where the NAS keeps the host keys of the servers it pulls from (refreshed before each pull). */
export const SOURCES_KNOWN_HOSTS_PATH = "/etc/hastack/backup/known_hosts";

/**
 * The default remote shell: the NAS's own key, no prompts, fail fast on a dead host, and only a
 * host key the stack generated — from `knownHostsFile` (the sources') or /etc/ssh/ssh_known_hosts
 * (the peer's, written at first boot). Never trust on first use: an unknown or changed key is refused.
 */
export function defaultRsyncRsh(keyPath: string, knownHostsFile?: string): string {
  const known = knownHostsFile ? ` -o UserKnownHostsFile=${knownHostsFile}` : "";
  return `ssh -i ${keyPath} -o BatchMode=yes -o StrictHostKeyChecking=yes${known} -o ConnectTimeout=20 -o ServerAliveInterval=30`;
}

/** The env file of one job (what the stack writes to /etc/hastack/backup/<job>.env). */
export function renderJobEnv(job: BackupJob, rt: BackupRuntime): string {
  const common = {
    JOB: job.name,
    BACKUP_SERVICE: job.service,
    KIND: job.kind,
    SERVICE_NAME: rt.nasServiceName,
    ACTIVE_CHECK: rt.activeCheck ?? "dns",
    BACKUP_ROOT: rt.backupRoot ?? BACKUP_ROOT,
    RETENTION_DAYS: job.retentionDays,
    REPLICATE_AFTER: rt.replicateAfter === false ? "no" : "yes",
    REPLICATE_ENV: rt.replicateEnvFile ?? `${BACKUP_ENV_DIR}/replicate.env`,
    REPLICATE_CMD: rt.replicateCommand ?? REPLICATE_SCRIPT_PATH,
    TEXTFILE_DIR: rt.textfileDir ?? TEXTFILE_DIR,
  };
  if (job.kind === "rsync") {
    return envFile({
      ...common,
      SOURCE_HOST: rt.sourceHost ?? job.sourceHost,
      SOURCE_PATH: rt.sourcePath ?? job.sourcePath,
      EXCLUDES: (job.excludes ?? []).join(" "),
      KNOWN_HOSTS_FILE: rt.knownHostsFile ?? SOURCES_KNOWN_HOSTS_PATH,
      KNOWN_HOSTS_PARAMETER: rt.knownHostsParameter,
      RSYNC_RSH:
        rt.rsyncRsh ??
        defaultRsyncRsh(NAS_SSH_KEY_PATH, rt.knownHostsFile ?? SOURCES_KNOWN_HOSTS_PATH),
    });
  }
  return envFile({
    ...common,
    DB_HOST: rt.dbHost ?? job.sourceHost,
    DB_PORT: rt.dbPort ?? job.dbPort ?? 3306,
    DB_DEFAULTS_FILE: rt.dbDefaultsFile ?? DB_DEFAULTS_PATH,
    DATABASES: (job.databases ?? []).join(" "),
  });
}

/** The replication's env: the active NAS pushes its whole backup tree to the other one. */
export function renderReplicateEnv(o: {
  nasServiceName: string;
  /** The other NAS (its per-server name). */
  peer: string;
  backupRoot?: string;
  /** Defaults to backupRoot. */
  peerRoot?: string;
  /** Role of the other NAS, the label of the replication metric. */
  peerSide: string;
  /** Defaults to Debian's textfile collector directory. */
  textfileDir?: string;
  activeCheck?: "dns" | "always" | "never";
  rsyncRsh?: string;
}): string {
  const root = o.backupRoot ?? BACKUP_ROOT;
  return envFile({
    SERVICE_NAME: o.nasServiceName,
    ACTIVE_CHECK: o.activeCheck ?? "dns",
    BACKUP_ROOT: root,
    PEER: o.peer,
    PEER_ROOT: o.peerRoot ?? root,
    PEER_SIDE: o.peerSide,
    TEXTFILE_DIR: o.textfileDir ?? TEXTFILE_DIR,
    RSYNC_RSH: o.rsyncRsh ?? defaultRsyncRsh(NAS_SSH_KEY_PATH),
  });
}

/** The [client] options file the dump job authenticates with; the password comes from SSM at boot. */
export function renderDbClientDefaults(user: string, password: string): string {
  return `[client]\nuser=${user}\npassword=${password}\n`;
}

/**
 * SQL that creates the backup account on the database pair with what mariadb-dump
 * --single-transaction --gtid --master-data=2 --routines --events --triggers needs, and
 * nothing that writes data. The password is bound by the caller (never rendered into text the
 * stack stores): pass it to the mariadb client on stdin or as a prepared-statement variable.
 */
export function renderBackupUserSql(o: { host: string; passwordSql: string }): string {
  const account = `'${DB_BACKUP_USER}'@'${o.host}'`;
  return [
    `CREATE USER IF NOT EXISTS ${account} IDENTIFIED BY ${o.passwordSql};`,
    `ALTER USER ${account} IDENTIFIED BY ${o.passwordSql};`,
    // RELOAD: the brief FLUSH TABLES WITH READ LOCK that --master-data takes to read a
    // consistent binlog/GTID position; BINLOG MONITOR: SHOW MASTER STATUS (MariaDB >= 10.5).
    `GRANT SELECT, SHOW VIEW, TRIGGER, EVENT, LOCK TABLES, RELOAD, BINLOG MONITOR ON *.* TO ${account};`,
    "",
  ].join("\n");
}

/** One systemd service + timer pair for a job (server/nas/hastack-backup.{service,timer}). */
export function renderJobUnits(job: BackupJob): { path: string; content: string }[] {
  const unit = `hastack-backup-${job.name}`;
  return [
    {
      path: `/etc/systemd/system/${unit}.service`,
      content: renderServerFile("nas/hastack-backup.service", {
        JOB: job.name,
        DESCRIPTION: job.description,
        BACKUP_SCRIPT_PATH,
        ENV_FILE: `${BACKUP_ENV_DIR}/${job.name}.env`,
        // A stuck transfer must not block the next interval forever.
        TIMEOUT_SECONDS: Math.max(1, job.intervalHours) * 3600,
      }),
    },
    {
      path: `/etc/systemd/system/${unit}.timer`,
      content: renderServerFile("nas/hastack-backup.timer", {
        JOB: job.name,
        INTERVAL_HOURS: job.intervalHours,
        SCHEDULE: timerSchedule(job.intervalHours * 60).join("\n"),
      }),
    },
  ];
}

/** The replication's hourly catch-up timer (each job also replicates right after its run). */
export function renderReplicateUnits(): { path: string; content: string }[] {
  return [
    {
      path: "/etc/systemd/system/hastack-nas-replicate.service",
      content: renderServerFile("nas/hastack-nas-replicate.service", {
        REPLICATE_SCRIPT_PATH,
        ENV_FILE: `${BACKUP_ENV_DIR}/replicate.env`,
      }),
    },
    {
      path: "/etc/systemd/system/hastack-nas-replicate.timer",
      content: renderServerFile("nas/hastack-nas-replicate.timer", {
        SCHEDULE: timerSchedule(60).join("\n"),
      }),
    },
  ];
}

/**
 * The NAS's scripts: their sources under server/ (issue 10). `hastack-backup`
 * runs, prunes, verifies and restores one job from its env file (renderJobEnv);
 * `hastack-nas-replicate` pushes the backup tree to the other NAS; `hastack-is-active NAME`
 * exits 0 when NAME resolves to one of this server's public addresses (IMDSv2), so a failover
 * moves the duty with no change on disk. `npm run rehearse -- backup` and the tests run these
 * same files on loopback.
 */
export const BACKUP_SCRIPT_SOURCE = "nas/hastack-backup.sh";
export const REPLICATE_SCRIPT_SOURCE = "nas/hastack-nas-replicate.sh";
export const IS_ACTIVE_SCRIPT_SOURCE = "common/hastack-is-active.sh";
/** `hastack-ssh-keys ENV`: fetch this server's key and rewrite its hastack-managed authorized keys. */
export const SSH_KEYS_SCRIPT_SOURCE = "common/hastack-ssh-keys.sh";

/** Install path of the SSH trust script (NAS and PBX servers). */
export const SSH_KEYS_SCRIPT_PATH = "/usr/local/sbin/hastack-ssh-keys";

/**
 * The env of `hastack-ssh-keys`: which private key this server fetches from SSM, and which
 * public keys it accepts, each locked by rrsync to read-only ("ro": backup pulls) or write-only
 * ("wo": sync and replication pushes) — a key stolen from one server cannot be used to read
 * back or wipe the other.
 */
export function renderSshKeysEnv(o: {
  region: string;
  privateKey?: { parameter: string; path: string };
  authorized: { parameter: string; mode: "ro" | "wo" }[];
}): string {
  return envFile({
    REGION: o.region,
    PRIVATE_KEY_PARAMETER: o.privateKey?.parameter ?? "",
    PRIVATE_KEY_PATH: o.privateKey?.path ?? "",
    AUTHORIZED: o.authorized.map((a) => `${a.mode}:${a.parameter}`).join(" "),
  });
}
