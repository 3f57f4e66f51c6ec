// The NAS backup jobs as text: the job list derived from config, the shell scripts that take,
// prune, verify, restore and replicate snapshots, their env files and systemd timers. Pure
// functions only, so `npm run rehearse -- backup` runs byte-for-byte the scripts the stack puts
// on the NAS, with only the env files (hosts, ports, paths) pointed at loopback.
//
// Snapshot layout on the NAS (one directory per job):
//   <BACKUP_ROOT>/<job>/<YYYYmmddTHHMMSSZ>/data/          the files (rsync jobs) or <job>.sql.gz
//   <BACKUP_ROOT>/<job>/<YYYYmmddTHHMMSSZ>/MANIFEST.sha256 sha256sum of every file under data/
//   <BACKUP_ROOT>/<job>/latest -> <YYYYmmddTHHMMSSZ>      switched atomically after a full run
//   <BACKUP_ROOT>/<job>/.incoming/                        the run in progress; an interrupted run
//                                                         resumes into it, it is never replicated
// Unchanged files are hard links into the previous snapshot (rsync --link-dest), so each
// snapshot is a complete tree that costs only what changed.

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
}

/**
 * The jobs: mail Maildirs, a consistent database dump, Asterisk config, and the Asterisk spool
 * (voicemail and call recordings). Asterisk's spool `tmp/` and `outgoing/` are excluded: a
 * restored call file would place a call.
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
    {
      service: "pbx",
      name: "pbx-config",
      description: "Asterisk/FreePBX configuration (/etc/asterisk)",
      kind: "rsync",
      sourceHost: fqdn(input.hostnames.pbx),
      sourcePath: "/etc/asterisk",
      excludes: [],
      intervalHours: input.intervalHours.pbx,
      retentionDays: input.retentionDays.pbx,
    },
    {
      service: "pbx",
      name: "pbx-spool",
      description: "voicemail and call recordings (/var/spool/asterisk)",
      kind: "rsync",
      sourceHost: fqdn(input.hostnames.pbx),
      sourcePath: "/var/spool/asterisk",
      excludes: ["/tmp/", "/outgoing/"],
      intervalHours: input.intervalHours.pbx,
      retentionDays: input.retentionDays.pbx,
    },
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

/** Shell-quotes a value for an env file the scripts source. */
export function shellQuote(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

function envFile(vars: Record<string, string | number | undefined>): string {
  return (
    Object.entries(vars)
      .filter(([, v]) => v !== undefined)
      .map(([k, v]) => `${k}=${shellQuote(String(v))}`)
      .join("\n") + "\n"
  );
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
}

/** Debian's prometheus-node-exporter textfile collector directory (docs/outputs.md). */
export const TEXTFILE_DIR = "/var/lib/prometheus/node-exporter";

/** The default remote shell: the NAS's own key, no prompts, fail fast on a dead host. */
export function defaultRsyncRsh(keyPath: string): string {
  return `ssh -i ${keyPath} -o BatchMode=yes -o StrictHostKeyChecking=accept-new -o ConnectTimeout=20 -o ServerAliveInterval=30`;
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
      RSYNC_RSH: rt.rsyncRsh ?? defaultRsyncRsh(NAS_SSH_KEY_PATH),
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

/** One systemd service + timer pair for a job. */
export function renderJobUnits(job: BackupJob): { path: string; content: string }[] {
  const unit = `hastack-backup-${job.name}`;
  return [
    {
      path: `/etc/systemd/system/${unit}.service`,
      content: [
        "[Unit]",
        `Description=hastack backup ${job.name}: ${job.description}`,
        "After=network-online.target srv-data.mount",
        "Wants=network-online.target",
        "",
        "[Service]",
        "Type=oneshot",
        `ExecStart=${BACKUP_SCRIPT_PATH} run ${BACKUP_ENV_DIR}/${job.name}.env`,
        // A stuck transfer must not block the next interval forever.
        `TimeoutStartSec=${Math.max(1, job.intervalHours) * 3600}`,
        "Nice=10",
        "IOSchedulingClass=best-effort",
        "IOSchedulingPriority=7",
        "",
      ].join("\n"),
    },
    {
      path: `/etc/systemd/system/${unit}.timer`,
      content: [
        "[Unit]",
        `Description=hastack backup ${job.name} every ${job.intervalHours} h`,
        "",
        "[Timer]",
        ...timerSchedule(job.intervalHours * 60),
        "RandomizedDelaySec=10min",
        "",
        "[Install]",
        "WantedBy=timers.target",
        "",
      ].join("\n"),
    },
  ];
}

/** The replication's hourly catch-up timer (each job also replicates right after its run). */
export function renderReplicateUnits(): { path: string; content: string }[] {
  return [
    {
      path: "/etc/systemd/system/hastack-nas-replicate.service",
      content: [
        "[Unit]",
        "Description=hastack: replicate the backup tree to the standby NAS",
        "After=network-online.target srv-data.mount",
        "Wants=network-online.target",
        "",
        "[Service]",
        "Type=oneshot",
        `ExecStart=${REPLICATE_SCRIPT_PATH} ${BACKUP_ENV_DIR}/replicate.env`,
        "TimeoutStartSec=6h",
        "Nice=10",
        "",
      ].join("\n"),
    },
    {
      path: "/etc/systemd/system/hastack-nas-replicate.timer",
      content: [
        "[Unit]",
        "Description=hastack: replicate the backup tree to the standby NAS hourly",
        "",
        "[Timer]",
        ...timerSchedule(60),
        "RandomizedDelaySec=5min",
        "",
        "[Install]",
        "WantedBy=timers.target",
        "",
      ].join("\n"),
    },
  ];
}

/**
 * `hastack-is-active NAME`: exit 0 when NAME resolves to one of this server's public addresses
 * (IMDSv2), i.e. this server is the active side of its pair. The service name is what clients
 * follow, so a failover (dns record or eip association) moves the duty with no change on disk.
 */
export const IS_ACTIVE_SCRIPT = `#!/bin/bash
# hastack-is-active NAME: exit 0 if NAME resolves to one of this server's public IPv4 addresses.
set -euo pipefail
name=\${1:?usage: hastack-is-active NAME}
want=$(getent ahostsv4 "$name" | awk 'NR == 1 { print $1 }')
[ -n "$want" ] || { echo "hastack-is-active: cannot resolve $name" >&2; exit 2; }
imds=http://169.254.169.254/latest
token=$(curl -sf --max-time 5 -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 60' "$imds/api/token")
md() { curl -sf --max-time 5 -H "X-aws-ec2-metadata-token: $token" "$imds/meta-data/$1"; }
for mac in $(md network/interfaces/macs/); do
  for ip in $(md "network/interfaces/macs/\${mac%/}/public-ipv4s" || true); do
    [ "$ip" = "$want" ] && exit 0
  done
done
exit 1
`;

/**
 * \`hastack-backup\`: one job's run, prune, verify and restore. Reads everything host-specific
 * from the job's env file (see renderJobEnv).
 */
export const BACKUP_SCRIPT = `#!/bin/bash
# hastack-backup: one NAS backup job. Rendered by components/backup-jobs.ts; systemd runs it on
# the NAS, \`npm run rehearse -- backup\` runs the same file on loopback.
#   hastack-backup run     JOB.env                 take a snapshot (no-op unless this NAS is active)
#   hastack-backup prune   JOB.env                 drop snapshots older than RETENTION_DAYS (never latest)
#   hastack-backup verify  JOB.env [SNAPSHOT]      check a snapshot against its MANIFEST
#   hastack-backup restore JOB.env SNAPSHOT [DEST] rsync job: copy to DEST and verify;
#                                                  dump job: load into RESTORE_DB_HOST:RESTORE_DB_PORT
set -euo pipefail
umask 077

die() { echo "hastack-backup\${JOB:+[$JOB]}: $*" >&2; exit 1; }
log() { echo "hastack-backup[$JOB]: $*" >&2; }

cmd=\${1:-}
env_file=\${2:-}
[ -n "$cmd" ] && [ -r "$env_file" ] || die "usage: hastack-backup run|prune|verify|restore JOB.env [SNAPSHOT] [DEST]"
# shellcheck disable=SC1090
. "$env_file"
: "\${JOB:?JOB missing in $env_file}" "\${KIND:?KIND missing}" "\${BACKUP_ROOT:?}" "\${RETENTION_DAYS:?}"
job_dir=$BACKUP_ROOT/$JOB
now=\${HASTACK_NOW:-$(date -u +%s)}

active() {
  case "\${ACTIVE_CHECK:-dns}" in
    always) return 0 ;;
    never) return 1 ;;
    dns) ${IS_ACTIVE_SCRIPT_PATH} "$SERVICE_NAME" ;;
    *) die "ACTIVE_CHECK must be dns, always or never, got $ACTIVE_CHECK" ;;
  esac
}

pull_rsync() {
  mkdir -p "$job_dir/.incoming/data"
  local link=() excl=() rc=0
  [ -d "$job_dir/latest/data" ] && link=(--link-dest="$job_dir/latest/data")
  for e in \${EXCLUDES:-}; do excl+=(--exclude="$e"); done
  # .incoming survives an interrupted run and --partial-dir keeps a half-copied file, so the
  # next run resumes instead of starting over; --delete drops what the source no longer has.
  rsync -aH --numeric-ids --delete --partial-dir=.rsync-partial --timeout="\${RSYNC_TIMEOUT:-600}" \\
    \${BWLIMIT:+--bwlimit="$BWLIMIT"} \${RSYNC_OPTS:-} "\${link[@]}" "\${excl[@]}" -e "$RSYNC_RSH" \\
    "$SOURCE_HOST:$SOURCE_PATH/" "$job_dir/.incoming/data/" || rc=$?
  # 24 = some files vanished while copying (mail expunged, recording moved): each file copied
  # is still whole, and the next run picks up the change.
  [ "$rc" -eq 0 ] || [ "$rc" -eq 24 ] || die "rsync from $SOURCE_HOST:$SOURCE_PATH failed (exit $rc); .incoming kept, the next run resumes"
}

dump_db() {
  mkdir -p "$job_dir/.incoming/data"
  local out=$job_dir/.incoming/data/$JOB.sql.gz
  # --single-transaction: one consistent InnoDB snapshot without blocking writers.
  # --gtid --master-data=2: the GTID position as a comment, so a dump can seed a new replica.
  # shellcheck disable=SC2086
  mariadb-dump --defaults-extra-file="$DB_DEFAULTS_FILE" --host="$DB_HOST" --port="$DB_PORT" \\
    --single-transaction --gtid --master-data=2 --routines --events --triggers --hex-blob \\
    --databases $DATABASES | gzip -6 >"$out.part"
  # mariadb-dump writes this line last; without it the dump was cut short.
  zcat "$out.part" | tail -n 1 | grep -q '^-- Dump completed' || die "dump of $DATABASES is incomplete"
  mv -f "$out.part" "$out"
}

write_manifest() { # DIR: sha256 of every file under DIR/data, sorted, into DIR/MANIFEST.sha256
  (cd "$1/data" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0r sha256sum) >"$1/MANIFEST.sha256.part"
  mv -f "$1/MANIFEST.sha256.part" "$1/MANIFEST.sha256"
}

# METRIC LABELS FILE: now as the metric's value, for node_exporter's textfile collector, written
# atomically (docs/outputs.md); a metric that cannot be written never fails the backup itself.
metric() {
  local dir=\${TEXTFILE_DIR:-${TEXTFILE_DIR}} tmp
  { mkdir -p "$dir" && tmp=$(mktemp "$dir/.hastack.XXXXXX") &&
    printf '%s{%s} %s\\n' "$1" "$2" "$(date +%s)" >"$tmp" && chmod 0644 "$tmp" && mv -f "$tmp" "$dir/$3.prom"; } ||
    log "could not write metric $1 to $dir"
}

snapshot_dir() { # NAME or "latest" -> directory
  local s=\${1:-latest}
  [ "$s" = latest ] && s=$(readlink "$job_dir/latest" || true)
  [ -n "$s" ] && [ -d "$job_dir/$s/data" ] || die "no snapshot \${1:-latest} in $job_dir"
  echo "$job_dir/$s"
}

verify() { # DIR
  [ -r "$1/MANIFEST.sha256" ] || die "$1 has no MANIFEST.sha256"
  (cd "$1/data" && sha256sum --quiet --strict -c "$1/MANIFEST.sha256") || die "$1 does not match its MANIFEST"
  log "verified \${1##*/}: $(wc -l <"$1/MANIFEST.sha256") files match MANIFEST.sha256"
}

prune() {
  local keep cutoff d s t
  keep=$(readlink "$job_dir/latest" || true)
  cutoff=$((now - RETENTION_DAYS * 86400))
  for d in "$job_dir"/[0-9]*T*Z; do
    [ -d "$d" ] || continue
    s=\${d##*/}
    [ "$s" = "$keep" ] && continue
    t=$(date -u -d "\${s:0:4}-\${s:4:2}-\${s:6:2} \${s:9:2}:\${s:11:2}:\${s:13:2}" +%s 2>/dev/null) || continue
    if [ "$t" -lt "$cutoff" ]; then
      rm -rf -- "$d"
      log "pruned $s (older than $RETENTION_DAYS days)"
    fi
  done
}

run() {
  if ! active; then
    log "this NAS is not the active one ($SERVICE_NAME points elsewhere): nothing to do"
    return 0
  fi
  mkdir -p "$job_dir"
  exec 9>"$job_dir/.lock"
  flock -n 9 || die "another run of $JOB holds $job_dir/.lock"
  local started stamp
  started=$(date +%s)
  case "$KIND" in
    rsync) pull_rsync ;;
    mariadb-dump) dump_db ;;
    *) die "KIND must be rsync or mariadb-dump, got $KIND" ;;
  esac
  write_manifest "$job_dir/.incoming"
  stamp=$(date -u -d "@$now" +%Y%m%dT%H%M%SZ)
  [ ! -e "$job_dir/$stamp" ] || die "snapshot $stamp already exists"
  mv "$job_dir/.incoming" "$job_dir/$stamp"
  ln -sfn "$stamp" "$job_dir/.latest.new"
  mv -T "$job_dir/.latest.new" "$job_dir/latest"
  log "snapshot $stamp: $(wc -l <"$job_dir/$stamp/MANIFEST.sha256") files in $(($(date +%s) - started)) s"
  prune
  metric hastack_backup_last_success_timestamp_seconds \\
    "service=\\"\${BACKUP_SERVICE:-unknown}\\",backup=\\"$JOB\\"" "hastack_backup_$JOB"
  flock -u 9
  if [ "\${REPLICATE_AFTER:-yes}" = yes ]; then
    "\${REPLICATE_CMD:-${REPLICATE_SCRIPT_PATH}}" "$REPLICATE_ENV"
  fi
}

restore() { # SNAPSHOT [DEST]
  local snap
  snap=$(snapshot_dir "\${1:-latest}")
  verify "$snap"
  case "$KIND" in
    rsync)
      local dest=\${2:?restore of an rsync job needs DEST}
      mkdir -p "$dest"
      rsync -aH --numeric-ids "$snap/data/" "$dest/"
      (cd "$dest" && sha256sum --quiet --strict -c "$snap/MANIFEST.sha256") || die "restored tree in $dest does not match the snapshot"
      log "restored \${snap##*/} into $dest and verified"
      ;;
    mariadb-dump)
      : "\${RESTORE_DB_HOST:?set RESTORE_DB_HOST}" "\${RESTORE_DB_PORT:?}" "\${RESTORE_DB_DEFAULTS_FILE:?}"
      zcat "$snap/data/$JOB.sql.gz" |
        mariadb --defaults-extra-file="$RESTORE_DB_DEFAULTS_FILE" --host="$RESTORE_DB_HOST" --port="$RESTORE_DB_PORT"
      log "loaded \${snap##*/} into $RESTORE_DB_HOST:$RESTORE_DB_PORT"
      ;;
  esac
}

case "$cmd" in
  run) run ;;
  prune) prune ;;
  verify) verify "$(snapshot_dir "\${3:-latest}")" ;;
  restore) restore "\${3:-latest}" "\${4:-}" ;;
  *) die "unknown command $cmd (run, prune, verify, restore)" ;;
esac
`;

/**
 * \`hastack-nas-replicate ENV\`: the active NAS pushes its backup tree to the other NAS. -H keeps
 * the hard links between snapshots (the copy costs what the original does); --delete-after
 * removes pruned snapshots only once everything else has arrived, so an interrupted run never
 * leaves the standby with less than it had; runs in progress (.incoming) are not copied.
 */
export const REPLICATE_SCRIPT = `#!/bin/bash
# hastack-nas-replicate REPLICATE.env: copy the backup tree to the standby NAS.
# Rendered by components/backup-jobs.ts; rehearsed unchanged by \`npm run rehearse -- backup\`.
set -euo pipefail
env_file=\${1:?usage: hastack-nas-replicate REPLICATE.env}
# shellcheck disable=SC1090
. "$env_file"
: "\${BACKUP_ROOT:?}" "\${PEER:?}" "\${PEER_ROOT:?}" "\${RSYNC_RSH:?}"
log() { echo "hastack-nas-replicate: $*" >&2; }
case "\${ACTIVE_CHECK:-dns}" in
  always) ;;
  never) log "not the active NAS: nothing to do"; exit 0 ;;
  dns) ${IS_ACTIVE_SCRIPT_PATH} "$SERVICE_NAME" || { log "not the active NAS ($SERVICE_NAME points elsewhere): nothing to do"; exit 0; } ;;
  *) log "ACTIVE_CHECK must be dns, always or never"; exit 1 ;;
esac
mkdir -p "$BACKUP_ROOT"
exec 9>"$BACKUP_ROOT/.replicate.lock"
# Several jobs finishing together queue up here instead of running side by side.
flock -w "\${LOCK_WAIT_SECONDS:-3600}" 9 || { log "replication still running after the wait"; exit 1; }
started=$(date +%s)
rsync -aH --numeric-ids --delete-after --partial-dir=.rsync-partial --timeout="\${RSYNC_TIMEOUT:-600}" \\
  \${BWLIMIT:+--bwlimit="$BWLIMIT"} \${RSYNC_OPTS:-} \\
  --exclude=/.replicate.lock --exclude='/*/.incoming/' --exclude='/*/.lock' --exclude='/*/.latest.new' \\
  -e "$RSYNC_RSH" "$BACKUP_ROOT/" "$PEER:$PEER_ROOT/"
log "replicated $BACKUP_ROOT to $PEER:$PEER_ROOT in $(($(date +%s) - started)) s"
# Success metric for monitoring (docs/outputs.md), labelled with the side that received the copy.
dir=\${TEXTFILE_DIR:-${TEXTFILE_DIR}}
{ mkdir -p "$dir" && tmp=$(mktemp "$dir/.hastack.XXXXXX") &&
  printf 'hastack_replication_last_success_timestamp_seconds{service="nas",side="%s"} %s\\n' "\${PEER_SIDE:-standby}" "$(date +%s)" >"$tmp" &&
  chmod 0644 "$tmp" && mv -f "$tmp" "$dir/hastack_replication_nas.prom"; } || log "could not write the replication metric to $dir"
`;

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

/** `hastack-ssh-keys ENV`: fetch this server's key and rewrite its hastack-managed authorized keys. */
export const SSH_KEYS_SCRIPT = `#!/bin/bash
# hastack-ssh-keys ENV: SSH trust for syncs, replication and backup pulls, from SSM.
# Rendered by components/backup-jobs.ts. Every accepted key is forced through rrsync.
set -euo pipefail
. "\${1:?usage: hastack-ssh-keys ENV}"
get() { # PARAMETER [--with-decryption]: retries while the stack is still creating it
  local v _
  for _ in $(seq 1 "\${ATTEMPTS:-30}"); do
    # shellcheck disable=SC2086
    if v=$(aws ssm get-parameter --region "$REGION" --name "$1" \${2:-} --query Parameter.Value --output text 2>/dev/null) && [ -n "$v" ]; then
      printf '%s' "$v"
      return 0
    fi
    sleep 10
  done
  return 1
}
ssh_dir=\${SSH_DIR:-/root/.ssh}
install -d -m 0700 "$ssh_dir"
if [ -n "\${PRIVATE_KEY_PARAMETER:-}" ]; then
  key=$(get "$PRIVATE_KEY_PARAMETER" --with-decryption) || { echo "hastack-ssh-keys: cannot read $PRIVATE_KEY_PARAMETER" >&2; exit 1; }
  ( umask 077; printf '%s\\n' "$key" >"$PRIVATE_KEY_PATH.new" )
  mv -f "$PRIVATE_KEY_PATH.new" "$PRIVATE_KEY_PATH"
fi
ak=$ssh_dir/authorized_keys
touch "$ak"
( umask 077; grep -v ' hastack-managed$' "$ak" >"$ak.new" || true )
for entry in \${AUTHORIZED:-}; do
  mode=\${entry%%:*}
  parameter=\${entry#*:}
  pub=$(get "$parameter") || { echo "hastack-ssh-keys: cannot read $parameter; not authorized" >&2; continue; }
  printf 'command="/usr/bin/rrsync -%s /",restrict %s hastack-managed\\n' "$mode" "$pub" >>"$ak.new"
done
mv -f "$ak.new" "$ak"
`;
