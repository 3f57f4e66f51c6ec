// What the database pair runs, rendered as text: the server config, the role file, and the
// role-change scripts (setup, bootstrap, failover, fallback, rejoin, boot-role) for MariaDB
// 10.11 and MySQL 8.0.26+/8.4. Pure functions, no resources: MysqlPair ships this text to the
// servers and runs it through remote commands, and `npm run rehearse -- mysql` runs the very
// same text against two real servers on loopback. The scripts take every host-specific value
// (socket, peer address, password, role-file path) from the environment so one text serves both.
import type { MysqlConfig } from "../lib/config/stack-config";
import { OPERATOR_RESPONSE_SECONDS, Role, Switchover } from "./server-pair";

export type Engine = "mariadb" | "mysql";
export type ReplicationMode = "semi-sync" | "async";

/** The account each server lets its peer use: replication, the bootstrap dump, fencing. */
export const REPLICATION_USER = "hastack_repl";
/** SSM SecureString holding its password (ServerPair lets the servers read /hastack/mysql/*). */
export const REPLICATION_PASSWORD_PARAMETER = "/hastack/mysql/replication-password";
/** Where the data directory lives on the servers (the pair's data volume). */
export const SERVER_DATADIR = "/srv/data/mysql";
/** Staging directory cloud-init writes to; the provision script installs from it. */
export const STAGING_DIR = "/etc/hastack/mysql";
export const BOOT_ROLE_PATH = "/usr/local/sbin/hastack-mysql-boot-role";
export const PROVISION_PATH = "/usr/local/sbin/hastack-mysql-provision";
/** The health agent's unfence tool (components/server-pair.ts); run after a promotion. */
export const UNFENCE_PATH = "/usr/local/sbin/hastack-unfence";

/**
 * Every environment variable the scripts read. Remote commands pass them through sshd
 * (`AcceptEnv HASTACK_*`, written by cloud-init) and `sudo --preserve-env`; the rehearsal sets
 * them for loopback servers.
 */
export const SCRIPT_ENV = [
  /** Local server's unix socket. Defaults to /run/mysqld/mysqld.sock. */
  "HASTACK_SOCKET",
  /** Local account (unix_socket/auth_socket authenticated). Defaults to root. */
  "HASTACK_LOCAL_USER",
  /** The other server's address (private IP on AWS, 127.0.0.1 in the rehearsal). */
  "HASTACK_PEER_HOST",
  /** Defaults to 3306. */
  "HASTACK_PEER_PORT",
  /** Replication password (secret). When unset, read from SSM HASTACK_SSM_PASSWORD_PARAM. */
  "HASTACK_REPL_PASSWORD",
  "HASTACK_SSM_PASSWORD_PARAM",
  /** Role file path ("" = do not persist the role). Defaults to the engine's conf.d. */
  "HASTACK_ROLE_CNF",
  /** Failover lag bound in seconds. Defaults to hastack:mysql.maxFailoverLagSeconds. */
  "HASTACK_MAX_LAG_SECONDS",
  /** 1 = promote even beyond the lag bound. Defaults to hastack:mysql.forceFailover. */
  "HASTACK_FORCE",
  /** Bound for catch-up waits (bootstrap, fallback). Defaults to 600. */
  "HASTACK_WAIT_SECONDS",
  /** Bound for connecting (local server up, replication connected). Defaults to 60. */
  "HASTACK_CONNECT_SECONDS",
  /** 1 = re-clone this server from its peer when its history diverged. Defaults to 0. */
  "HASTACK_REBUILD",
  /** Unfence tool run after a promotion ("" = none). Defaults to /usr/local/sbin/hastack-unfence. */
  "HASTACK_UNFENCE",
  /** boot-role: which side this server is, and the active side (else read from SSM). */
  "HASTACK_SIDE",
  "HASTACK_ACTIVE_SIDE",
  "HASTACK_SSM_ACTIVE_PARAM",
  "HASTACK_AWS_REGION",
  /** Client and dump binaries. Default to the engine's (mariadb/mariadb-dump, mysql/mysqldump). */
  "HASTACK_CLIENT",
  "HASTACK_DUMP",
] as const;
export type ScriptEnvName = (typeof SCRIPT_ENV)[number];

/**
 * The command a remote.Command runs: the script arrives on stdin, parameters in the
 * environment. Constant text, so neither a password nor an address ever appears in it.
 */
export function remoteShell(accountCount = 0): string {
  const names = [
    ...SCRIPT_ENV,
    ...Array.from({ length: accountCount }, (_, i) => accountPasswordEnv(i)),
  ];
  return `sudo --preserve-env=${names.join(",")} /bin/bash -s`;
}

/** The differences between the two engines, in one table (tests walk it for both). */
export interface Dialect {
  engine: Engine;
  /** Debian packages (mysql needs Oracle's APT repository in the AMI). */
  packages: string[];
  service: string;
  client: string;
  dump: string;
  cnfSection: string;
  confDir: string;
  stopReplica: string;
  startReplica: string;
  resetReplicaAll: string;
  showReplicaStatus: string;
  fields: {
    io: string;
    sql: string;
    lag: string;
    ioErrno: string;
    ioError: string;
    sqlErrno: string;
    sqlError: string;
    sqlState: string;
    sourceHost: string;
    sourcePort: string;
  };
  /** SQL expression: every transaction this server has (binlogged, incl. replicated ones). */
  executedSql: string;
  /** SQL returning 'ok' once the local server applied `$1` within `$2` s, else 'timeout'. */
  waitAppliedSql: (gtidShellVar: string, secondsShellVar: string) => string;
  semi: {
    sourceEnabled: string;
    replicaEnabled: string;
    timeout: string;
    waitPoint: string;
    waitNoReplica: string;
    status: string;
    clients: string;
    yesTx: string;
    noTx: string;
  };
  makeReadOnly: string;
  makeWritable: string;
  grants: string;
  netTimeout: string;
  replicaUpdates: string;
}

export const DIALECTS: Record<Engine, Dialect> = {
  mariadb: {
    engine: "mariadb",
    packages: ["mariadb-server", "mariadb-client", "mariadb-backup"],
    service: "mariadb",
    client: "mariadb",
    dump: "mariadb-dump",
    cnfSection: "mariadbd",
    confDir: "/etc/mysql/mariadb.conf.d",
    stopReplica: "STOP SLAVE",
    startReplica: "START SLAVE",
    resetReplicaAll: "RESET SLAVE ALL",
    showReplicaStatus: "SHOW SLAVE STATUS",
    fields: {
      io: "Slave_IO_Running",
      sql: "Slave_SQL_Running",
      lag: "Seconds_Behind_Master",
      ioErrno: "Last_IO_Errno",
      ioError: "Last_IO_Error",
      sqlErrno: "Last_SQL_Errno",
      sqlError: "Last_SQL_Error",
      sqlState: "Slave_SQL_Running_State",
      sourceHost: "Master_Host",
      sourcePort: "Master_Port",
    },
    executedSql: "@@GLOBAL.gtid_binlog_pos",
    waitAppliedSql: (g, s) => `SELECT IF(MASTER_GTID_WAIT('$${g}', $${s}) = 0, 'ok', 'timeout')`,
    semi: {
      sourceEnabled: "rpl_semi_sync_master_enabled",
      replicaEnabled: "rpl_semi_sync_slave_enabled",
      timeout: "rpl_semi_sync_master_timeout",
      waitPoint: "rpl_semi_sync_master_wait_point",
      waitNoReplica: "rpl_semi_sync_master_wait_no_slave",
      status: "Rpl_semi_sync_master_status",
      clients: "Rpl_semi_sync_master_clients",
      yesTx: "Rpl_semi_sync_master_yes_tx",
      noTx: "Rpl_semi_sync_master_no_tx",
    },
    makeReadOnly: "SET GLOBAL read_only = ON",
    makeWritable: "SET GLOBAL read_only = OFF",
    // BINLOG MONITOR: read positions; READ_ONLY ADMIN: fence the peer; REPLICATION MASTER
    // ADMIN: switch semi-sync on at the peer; the rest is what a --single-transaction dump needs.
    grants:
      "REPLICATION SLAVE, BINLOG MONITOR, READ_ONLY ADMIN, REPLICATION MASTER ADMIN, " +
      "SELECT, SHOW VIEW, TRIGGER, EVENT, LOCK TABLES, RELOAD",
    netTimeout: "slave_net_timeout",
    replicaUpdates: "log_slave_updates",
  },
  mysql: {
    engine: "mysql",
    packages: ["mysql-server", "mysql-client"],
    service: "mysql",
    client: "mysql",
    dump: "mysqldump",
    cnfSection: "mysqld",
    confDir: "/etc/mysql/mysql.conf.d",
    stopReplica: "STOP REPLICA",
    startReplica: "START REPLICA",
    resetReplicaAll: "RESET REPLICA ALL",
    showReplicaStatus: "SHOW REPLICA STATUS",
    fields: {
      io: "Replica_IO_Running",
      sql: "Replica_SQL_Running",
      lag: "Seconds_Behind_Source",
      ioErrno: "Last_IO_Errno",
      ioError: "Last_IO_Error",
      sqlErrno: "Last_SQL_Errno",
      sqlError: "Last_SQL_Error",
      sqlState: "Replica_SQL_Running_State",
      sourceHost: "Source_Host",
      sourcePort: "Source_Port",
    },
    // MySQL prints long GTID sets over several lines.
    executedSql: "REPLACE(@@GLOBAL.gtid_executed, CHAR(10), '')",
    waitAppliedSql: (g, s) =>
      `SELECT IF(WAIT_FOR_EXECUTED_GTID_SET('$${g}', $${s}) = 0, 'ok', 'timeout')`,
    semi: {
      sourceEnabled: "rpl_semi_sync_source_enabled",
      replicaEnabled: "rpl_semi_sync_replica_enabled",
      timeout: "rpl_semi_sync_source_timeout",
      waitPoint: "rpl_semi_sync_source_wait_point",
      waitNoReplica: "rpl_semi_sync_source_wait_no_replica",
      status: "Rpl_semi_sync_source_status",
      clients: "Rpl_semi_sync_source_clients",
      yesTx: "Rpl_semi_sync_source_yes_tx",
      noTx: "Rpl_semi_sync_source_no_tx",
    },
    // super_read_only also stops accounts with CONNECTION_ADMIN/SUPER from writing.
    makeReadOnly: "SET GLOBAL super_read_only = ON",
    makeWritable: "SET GLOBAL super_read_only = OFF; SET GLOBAL read_only = OFF",
    grants:
      "REPLICATION SLAVE, REPLICATION CLIENT, SYSTEM_VARIABLES_ADMIN, " +
      "SELECT, SHOW VIEW, TRIGGER, EVENT, LOCK TABLES, RELOAD",
    netTimeout: "replica_net_timeout",
    replicaUpdates: "log_replica_updates",
  },
};

/** The script settings a config yields (accounts by name; their passwords travel separately). */
export function mysqlSettings(cfg: MysqlConfig, accounts: AccountSpec[] = []): MysqlSettings {
  return {
    engine: cfg.engine,
    semiSync: cfg.semiSync,
    semiSyncTimeoutMs: cfg.semiSyncTimeoutMs,
    binlogRetentionDays: cfg.binlogRetentionDays,
    maxFailoverLagSeconds: cfg.maxFailoverLagSeconds,
    forceFailover: cfg.forceFailover,
    databases: cfg.databases,
    accounts: accounts.map((a) => ({
      user: a.user,
      database: a.database,
      privileges: a.privileges,
    })),
  };
}

/** server_id per side: distinct and stable, so GTIDs name the server that wrote them. */
export function serverIdFor(side: Role): number {
  return side === Role.Primary ? 1 : 2;
}

export function replicationMode(semiSync: boolean): ReplicationMode {
  return semiSync ? "semi-sync" : "async";
}

/** The settings both the config and the scripts derive from (from hastack:mysql). */
export interface MysqlSettings {
  engine: Engine;
  semiSync: boolean;
  /** Milliseconds a commit waits for the replica's ack before semi-sync degrades to async. */
  semiSyncTimeoutMs: number;
  binlogRetentionDays: number;
  maxFailoverLagSeconds: number;
  forceFailover: boolean;
  databases: string[];
  /** Application accounts (e.g. the PBX's CDR writer), created on both servers. Defaults to none. */
  accounts?: AccountSpec[];
}

/** An application account; its password arrives as HASTACK_ACCOUNT_PASSWORD_<index>. */
export interface AccountSpec {
  user: string;
  /** A database, or "*" for all (e.g. a backup account). */
  database: string;
  /** Defaults to "ALL PRIVILEGES" on that database only (no global privilege: fencing holds). */
  privileges?: string;
}

/** Environment variable carrying the password of `accounts[index]`. */
export function accountPasswordEnv(index: number): string {
  return `HASTACK_ACCOUNT_PASSWORD_${index}`;
}

export interface ServerConfigOptions extends MysqlSettings {
  side: Role;
  /** Defaults to 3306. */
  port?: number;
  /** Defaults to 0.0.0.0 (the security group limits who reaches 3306). */
  bindAddress?: string;
  /** Defaults to /srv/data/mysql (the data volume). */
  datadir?: string;
  /** Defaults to the package's (/run/mysqld/mysqld.sock). */
  socket?: string;
  /** Defaults to the package's. */
  pidFile?: string;
  /** Defaults to the package's (journal). */
  logError?: string;
  /** Run the daemon as this OS user (the rehearsal runs as root). Defaults to the package's. */
  user?: string;
}

/**
 * The server's option file (conf.d/60-hastack.cnf). The role-dependent settings (read_only,
 * which semi-sync side is on) live in the separate role file, rewritten on every role change.
 */
export function renderServerConfig(o: ServerConfigOptions): string {
  const d = DIALECTS[o.engine];
  const lines: string[] = [
    `# hastack mysql pair, ${o.engine}, ${o.side} side: rendered by components/mysql-scripts.ts.`,
    "# Role-dependent settings (read_only, semi-sync side) are in the role file (90-hastack-role.cnf).",
    `[${d.cnfSection}]`,
  ];
  const set = (k: string, v: string | number): void => {
    lines.push(`${k} = ${v}`);
  };
  if (o.user) {
    set("user", o.user);
  }
  set("server_id", serverIdFor(o.side));
  set("port", o.port ?? 3306);
  set("bind_address", o.bindAddress ?? "0.0.0.0");
  set("datadir", o.datadir ?? SERVER_DATADIR);
  if (o.socket) {
    set("socket", o.socket);
  }
  if (o.pidFile) {
    set("pid_file", o.pidFile);
  }
  if (o.logError) {
    set("log_error", o.logError);
  }
  // Accounts are per peer IP; never wait on reverse DNS.
  set("skip_name_resolve", "ON");
  lines.push(
    "# Durable commits: what is acknowledged is on disk (and, with semi-sync, on the peer).",
  );
  set("innodb_flush_log_at_trx_commit", 1);
  set("sync_binlog", 1);
  set("log_bin", `${o.engine}-bin`);
  set("binlog_format", "ROW");
  set("binlog_expire_logs_seconds", o.binlogRetentionDays * 86400);
  set("relay_log", "relay-bin");
  // A crashed replica discards its relay log and refetches from its applied position.
  set("relay_log_recovery", "ON");
  // Notice a dead source within 10 s (and reconnect every 5 s, set by CHANGE MASTER/SOURCE).
  set(d.netTimeout, 10);
  lines.push(
    "# GTID replication: either side can become the source without file/position bookkeeping.",
  );
  set(d.replicaUpdates, "ON");
  if (o.engine === "mariadb") {
    set("gtid_domain_id", 0);
    // A replica stops rather than apply out-of-order (diverged) history.
    set("gtid_strict_mode", "ON");
  } else {
    set("gtid_mode", "ON");
    set("enforce_gtid_consistency", "ON");
  }
  if (o.semiSync) {
    lines.push("# Semi-synchronous replication: a commit returns only once the replica has it.");
    if (o.engine === "mysql") {
      lines.push("plugin_load_add = semisync_source.so", "plugin_load_add = semisync_replica.so");
    }
    set(d.semi.timeout, o.semiSyncTimeoutMs);
    // AFTER_SYNC: nobody (not even other sessions) sees a commit before the replica has it, and
    // a crashed source's unacknowledged tail can be truncated on restart (init_rpl_role=SLAVE).
    set(d.semi.waitPoint, "AFTER_SYNC");
    set(d.semi.waitNoReplica, "ON");
  }
  return lines.join("\n") + "\n";
}

export type RoleState = "active" | "passive";

/**
 * The role file: `active` = writable source, `passive` = read-only replica. Written by the
 * role-change scripts and, before each start, by the boot-role script from the stack's intent.
 */
export function renderRoleConfig(engine: Engine, state: RoleState, semiSync: boolean): string {
  const d = DIALECTS[engine];
  const active = state === "active";
  const lines = [
    `# hastack mysql role: ${state}. Rewritten by the hastack-mysql role scripts; do not edit.`,
    `[${d.cnfSection}]`,
    `read_only = ${active ? "OFF" : "ON"}`,
  ];
  if (engine === "mysql") {
    lines.push(`super_read_only = ${active ? "OFF" : "ON"}`);
  } else {
    // On a crash restart as replica, MariaDB truncates binlogged-but-unacknowledged
    // transactions instead of committing them, so the old primary can rejoin (MDEV-21117).
    lines.push(`init_rpl_role = ${active ? "MASTER" : "SLAVE"}`);
  }
  if (semiSync) {
    lines.push(`${d.semi.sourceEnabled} = ${active ? "ON" : "OFF"}`);
    lines.push(`${d.semi.replicaEnabled} = ${active ? "OFF" : "ON"}`);
  }
  return lines.join("\n") + "\n";
}

export type ScriptName = "setup" | "bootstrap" | "failover" | "fallback" | "rejoin" | "boot-role";
export const SCRIPT_NAMES: readonly ScriptName[] = [
  "setup",
  "bootstrap",
  "failover",
  "fallback",
  "rejoin",
  "boot-role",
];

const PURPOSE: Record<ScriptName, string> = {
  setup:
    "Creates the peer's replication account on this server (not binlogged) and, on the writable side, the databases.",
  bootstrap:
    "Makes this (passive) server a replica of its peer: GTID-consistent dump, load, start replication.",
  failover:
    "Promotes this standby: refuses beyond the lag bound unless forced, fences a live peer, applies what it has, stops replication, becomes writable.",
  fallback:
    "Takes the active role back: replicate from the active peer, catch up (bounded), fence it, take its last transactions, become writable.",
  rejoin: "Makes this server a read-only replica of the (writable) peer again.",
  "boot-role":
    "Before the server starts: writes the role file from the stack's intent (SSM active-side); unknown = read-only.",
};

/** Renders one role-change script (bash + SQL) for the engine and settings. */
export function renderScript(name: ScriptName, s: MysqlSettings): string {
  const d = DIALECTS[s.engine];
  // boot-role ships in user-data (16 KB limit): it carries only what it uses.
  const parts =
    name === "boot-role" ? [header(name, s, d)] : [header(name, s, d), sqlFunctions(s, d)];
  return [...parts, MAIN[name](s, d)].join("\n");
}

/** All scripts, by name. */
export function renderScripts(s: MysqlSettings): Record<ScriptName, string> {
  const out = {} as Record<ScriptName, string>;
  for (const n of SCRIPT_NAMES) {
    out[n] = renderScript(n, s);
  }
  return out;
}

/** The CREATE/ALTER/GRANT the setup script runs; `pw` and `host` are shell expansions. */
export function renderReplicationUserSql(engine: Engine, host: string, pw: string): string {
  const d = DIALECTS[engine];
  const account = `'${REPLICATION_USER}'@'${host}'`;
  return [
    // Each server gets its peer's account locally: a binlogged CREATE USER would replicate
    // into a GTID history the other side then lacks.
    "SET SESSION sql_log_bin = 0;",
    `CREATE USER IF NOT EXISTS ${account} IDENTIFIED BY '${pw}';`,
    `ALTER USER ${account} IDENTIFIED BY '${pw}';`,
    `GRANT ${d.grants} ON *.* TO ${account};`,
  ].join("\n");
}

/** Creates one application account on this server, not binlogged (each server gets its own). */
function renderAccountStep(engine: Engine, a: AccountSpec, index: number): string {
  if (!/^[A-Za-z0-9_]{1,32}$/.test(a.user) || !/^(\*|[A-Za-z0-9_]{1,64})$/.test(a.database)) {
    throw new Error(
      `account ${JSON.stringify(a.user)} on ${JSON.stringify(a.database)}: names must be [A-Za-z0-9_] (database may be "*")`,
    );
  }
  const env = accountPasswordEnv(index);
  const account = `'${a.user}'@'%'`;
  const on = a.database === "*" ? "*.*" : `\\\`${a.database}\\\`.*`;
  return `pw=\${${env}:-}
case "$pw" in "" | *[!A-Za-z0-9]*) die "${env} (password of ${a.user}) must be set and alphanumeric" ;; esac
local_sql <<SQL
SET SESSION sql_log_bin = 0;
CREATE USER IF NOT EXISTS ${account} IDENTIFIED BY '$pw';
ALTER USER ${account} IDENTIFIED BY '$pw';
GRANT ${a.privileges ?? "ALL PRIVILEGES"} ON ${on} TO ${account};
SQL
log "account ${a.user} on ${a.database} ready (${engine})"`;
}

/** CHANGE MASTER TO … MASTER_USE_GTID (MariaDB) / CHANGE REPLICATION SOURCE TO … AUTO_POSITION. */
export function renderChangeSourceSql(
  engine: Engine,
  host: string,
  port: string,
  pw: string,
): string {
  if (engine === "mariadb") {
    return (
      `CHANGE MASTER TO MASTER_HOST='${host}', MASTER_PORT=${port}, ` +
      `MASTER_USER='${REPLICATION_USER}', MASTER_PASSWORD='${pw}', ` +
      "MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=5;"
    );
  }
  return (
    `CHANGE REPLICATION SOURCE TO SOURCE_HOST='${host}', SOURCE_PORT=${port}, ` +
    `SOURCE_USER='${REPLICATION_USER}', SOURCE_PASSWORD='${pw}', ` +
    "SOURCE_AUTO_POSITION=1, SOURCE_SSL=1, GET_SOURCE_PUBLIC_KEY=1, SOURCE_CONNECT_RETRY=5;"
  );
}

function heredoc(tag: string, body: string): string {
  return `<<'${tag}'\n${body}${tag}`;
}

/** Shebang, parameters with their defaults, logging, temp dir, role file: every script has these. */
function header(name: ScriptName, s: MysqlSettings, d: Dialect): string {
  return `#!/bin/bash
# hastack-mysql-${name} (${s.engine}): rendered by components/mysql-scripts.ts; do not edit.
# ${PURPOSE[name]}
# Parameters come from the environment (HASTACK_*): the same text runs on the servers (remote
# commands) and in \`npm run rehearse -- mysql\` against loopback servers.
# Exit status: 0 done (or nothing to do), 3 refused by a safety check, anything else an error.
set -euo pipefail
umask 077
SCRIPT=${name}
: "\${HASTACK_CLIENT:=${d.client}}"
: "\${HASTACK_DUMP:=${d.dump}}"
: "\${HASTACK_SOCKET:=/run/mysqld/mysqld.sock}"
: "\${HASTACK_LOCAL_USER:=root}"
: "\${HASTACK_PEER_HOST:=}"
: "\${HASTACK_PEER_PORT:=3306}"
: "\${HASTACK_ROLE_CNF=${d.confDir}/90-hastack-role.cnf}"
: "\${HASTACK_MAX_LAG_SECONDS:=${s.maxFailoverLagSeconds}}"
: "\${HASTACK_FORCE:=${s.forceFailover ? 1 : 0}}"
: "\${HASTACK_WAIT_SECONDS:=600}"
: "\${HASTACK_CONNECT_SECONDS:=60}"
: "\${HASTACK_REBUILD:=0}"
: "\${HASTACK_UNFENCE=${UNFENCE_PATH}}"
# Without the password in the environment (a hand run), it is read from SSM with the instance role.
: "\${HASTACK_SSM_PASSWORD_PARAM:=${REPLICATION_PASSWORD_PARAMETER}}"
REPL_USER=${REPLICATION_USER}
DATABASES="${s.databases.join(" ")}"

now_ms() { date +%s%3N; }
# Seconds since a now_ms stamp, one decimal.
since() { awk -v a="$1" -v b="$(now_ms)" 'BEGIN { printf "%.1f", (b - a) / 1000 }'; }
log() { printf '%s hastack-mysql-%s: %s\\n' "$(date -u +%H:%M:%S)" "$SCRIPT" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
refuse() { log "REFUSED: $*"; exit 3; }
tmp=$(mktemp -d "\${TMPDIR:-/tmp}/hastack-mysql.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

aws_region() {
  if [ -n "\${HASTACK_AWS_REGION:-}" ]; then echo "$HASTACK_AWS_REGION"; return; fi
  local token
  token=$(curl -sf --max-time 3 -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 60' http://169.254.169.254/latest/api/token) || return 1
  curl -sf --max-time 3 -H "X-aws-ec2-metadata-token: $token" http://169.254.169.254/latest/meta-data/placement/region
}

write_role() {
  [ -n "$HASTACK_ROLE_CNF" ] || return 0
  if [ "$1" = active ]; then
    cat >"$HASTACK_ROLE_CNF.tmp" ${heredoc("ACTIVE", renderRoleConfig(s.engine, "active", s.semiSync))}
  else
    cat >"$HASTACK_ROLE_CNF.tmp" ${heredoc("PASSIVE", renderRoleConfig(s.engine, "passive", s.semiSync))}
  fi
  chmod 0644 "$HASTACK_ROLE_CNF.tmp"
  mv -f "$HASTACK_ROLE_CNF.tmp" "$HASTACK_ROLE_CNF"
  log "role file $HASTACK_ROLE_CNF: $1"
}

`;
}

/** Local/peer SQL, replication status, waits, promotion and cloning: the role-change toolkit. */
function sqlFunctions(s: MysqlSettings, d: Dialect): string {
  const semiSql = (sourceOn: boolean, replicaOn: boolean): string =>
    s.semiSync
      ? `SET GLOBAL ${d.semi.sourceEnabled} = ${sourceOn ? "ON" : "OFF"}; SET GLOBAL ${d.semi.replicaEnabled} = ${replicaOn ? "ON" : "OFF"};`
      : "";
  return `# Local server, authenticated by the OS account (unix_socket / auth_socket).
local_sql() { "$HASTACK_CLIENT" --socket="$HASTACK_SOCKET" --user="$HASTACK_LOCAL_USER" --batch --skip-column-names "$@"; }
# The peer, over TCP with the replication account; the password sits in a 0600 option file,
# never on a command line.
peer_sql() { "$HASTACK_CLIENT" --defaults-extra-file="$tmp/peer.cnf" --protocol=tcp --batch --skip-column-names "$@"; }

need_password() {
  if [ -z "\${HASTACK_REPL_PASSWORD:-}" ] && [ -n "\${HASTACK_SSM_PASSWORD_PARAM:-}" ] && command -v aws >/dev/null 2>&1; then
    HASTACK_REPL_PASSWORD=$(aws ssm get-parameter --region "$(aws_region)" --with-decryption \\
      --name "$HASTACK_SSM_PASSWORD_PARAM" --query Parameter.Value --output text) || true
  fi
  [ -n "\${HASTACK_REPL_PASSWORD:-}" ] || die "HASTACK_REPL_PASSWORD is not set (remote commands pass it through sshd AcceptEnv HASTACK_*; by hand, HASTACK_SSM_PASSWORD_PARAM names its SSM parameter)"
  case "$HASTACK_REPL_PASSWORD" in *[!A-Za-z0-9]*) die "HASTACK_REPL_PASSWORD must be alphanumeric (RandomPassword special=false)" ;; esac
}

need_peer() {
  case "$HASTACK_PEER_HOST" in
    "" | *[!A-Za-z0-9.:-]*) die "HASTACK_PEER_HOST must be the peer's address (got '$HASTACK_PEER_HOST')" ;;
  esac
  case "$HASTACK_PEER_PORT" in "" | *[!0-9]*) die "HASTACK_PEER_PORT must be a port number (got '$HASTACK_PEER_PORT')" ;; esac
  need_password
  # connect-timeout in [mysql] only: the dump tools reject it.
  printf '[client]\\nuser=%s\\npassword=%s\\nhost=%s\\nport=%s\\n[mysql]\\nconnect-timeout=5\\n' \\
    "$REPL_USER" "$HASTACK_REPL_PASSWORD" "$HASTACK_PEER_HOST" "$HASTACK_PEER_PORT" >"$tmp/peer.cnf"
}

wait_local_up() {
  local limit=$1 start=$SECONDS
  until local_sql -e "SELECT 1" >/dev/null 2>"$tmp/err"; do
    if [ $((SECONDS - start)) -ge "$limit" ]; then
      die "local server (socket $HASTACK_SOCKET) did not answer within \${limit}s: $(tail -n 1 "$tmp/err")"
    fi
    sleep 1
  done
}

# Replication status of the local server, one "Field: value" per line.
read_status() {
  "$HASTACK_CLIENT" --socket="$HASTACK_SOCKET" --user="$HASTACK_LOCAL_USER" --batch --vertical \\
    -e "${d.showReplicaStatus}" >"$tmp/status"
}
field() { awk -v k="$1" '{ n = index($0, ": "); f = substr($0, 1, n - 1); gsub(/^ +/, "", f); if (n > 0 && f == k) { print substr($0, n + 2); exit } }' "$tmp/status"; }
is_replica() { [ -n "$(field ${d.fields.io})" ]; }
replicating_from_peer() { [ "$(field ${d.fields.sourceHost})" = "$HASTACK_PEER_HOST" ] && [ "$(field ${d.fields.sourcePort})" = "$HASTACK_PEER_PORT" ]; }
local_read_only() { local_sql -e "SELECT @@GLOBAL.read_only"; }
executed_local() { local_sql -e "SELECT ${d.executedSql}"; }
executed_peer() { peer_sql -e "SELECT ${d.executedSql}"; }

# wait_applied GTIDS SECONDS: 0 once the local server has applied GTIDS.
wait_applied() {
  local gtids=$1 secs=$2
  [ -n "$gtids" ] || return 0
  [ "$(local_sql -e "${d.waitAppliedSql("gtids", "secs")}")" = ok ]
}

# wait_drained SECONDS: 0 once the replica applied everything it received (its source is gone).
wait_drained() {
  local limit=$1 start=$SECONDS
  while :; do
    read_status
    [ "$(field ${d.fields.sql})" = Yes ] || return 2
    case "$(field ${d.fields.sqlState})" in *"read all relay log"*) return 0 ;; esac
    [ $((SECONDS - start)) -lt "$limit" ] || return 1
    sleep 0.2
  done
}

unfence() {
  if [ -n "$HASTACK_UNFENCE" ] && [ -x "$HASTACK_UNFENCE" ]; then
    "$HASTACK_UNFENCE" >&2 || log "warning: $HASTACK_UNFENCE failed; the health check may keep this side out of DNS"
  fi
}

# promote SEMI_SOURCE(ON|OFF): stop replicating and become the writable source.
promote() {
  local_sql -e "${d.stopReplica}; ${d.resetReplicaAll}; ${s.semiSync ? `SET GLOBAL ${d.semi.replicaEnabled} = OFF; SET GLOBAL ${d.semi.sourceEnabled} = $1;` : ""} ${d.makeWritable};"
  write_role active
  unfence
}

# start_replication: point the local server at the peer and wait until connected (bounded).
start_replication() {
  {
    echo "${d.stopReplica};"
    ${s.semiSync ? `echo "${semiSql(false, true)}"` : ":"}
    echo "${renderChangeSourceSql(s.engine, "$HASTACK_PEER_HOST", "$HASTACK_PEER_PORT", "$HASTACK_REPL_PASSWORD")}"
    echo "${d.startReplica};"
  } | local_sql
  local start=$SECONDS
  while :; do
    read_status
    [ "$(field ${d.fields.io})" = Yes ] && [ "$(field ${d.fields.sql})" = Yes ] && return 0
    local errno
    errno=$(field ${d.fields.ioErrno})
    if [ "$errno" = 1236 ]; then
      return 4 # the source cannot serve our history: diverged (or purged binlogs)
    fi
    if [ $((SECONDS - start)) -ge "$HASTACK_CONNECT_SECONDS" ]; then
      die "replication from $HASTACK_PEER_HOST:$HASTACK_PEER_PORT not running after \${HASTACK_CONNECT_SECONDS}s: IO $(field ${d.fields.io}) error $errno $(field ${d.fields.ioError}); SQL $(field ${d.fields.sql}) $(field ${d.fields.sqlError})"
    fi
    sleep 0.5
  done
}

# checkpoint_peer: make the source's commits up to now durable in its engine. MariaDB commits
# to InnoDB lazily after the binlog; a source crashing within a second of the clone would, on
# its restart as a replica (init_rpl_role=SLAVE), truncate transactions the clone holds but
# this server's binlog does not, and could not rejoin. A binlog checkpoint naming the current
# file proves every earlier commit durable.
checkpoint_peer() {
  ${
    s.engine === "mariadb"
      ? `peer_sql -e "FLUSH LOCAL BINARY LOGS; FLUSH LOCAL ENGINE LOGS" || { log "warning: could not checkpoint the source"; return 0; }
  local file i
  file=$(peer_sql -e "SHOW MASTER STATUS" | cut -f1)
  for i in $(seq 1 50); do
    [ "$(peer_sql -e "SHOW BINLOG EVENTS IN '$file'" | awk -F'\t' '$3 == "Binlog_checkpoint" { c = $6 } END { print c }')" = "$file" ] && return 0
    sleep 0.2
  done
  log "warning: the source's binlog checkpoint did not reach $file within 10s"`
      : ": # MySQL recovers a crashed source by committing its binlogged transactions: nothing to do"
  }
}

# clone_from_peer: GTID-consistent dump of DATABASES from the peer, loaded without binlogging,
# then replication from the dump's position. Streams; no temp copy of the data.
clone_from_peer() {
  log "cloning $DATABASES from $HASTACK_PEER_HOST:$HASTACK_PEER_PORT"
  ${s.engine === "mariadb" ? cloneMariadb(d) : cloneMysql(d)}
}

# rejoin_peer: make this server (holding its own history) a replica of the peer.
rejoin_peer() {
  local_sql -e "${d.makeReadOnly}"
  ${s.engine === "mariadb" ? rejoinPositionMariadb(d) : rejoinPositionMysql(d)}
  local rc=0
  start_replication || rc=$?
  if [ "$rc" = 4 ]; then
    if [ "$HASTACK_REBUILD" = 1 ]; then
      log "history diverged from the peer; HASTACK_REBUILD=1: re-cloning from the peer"
      clone_from_peer
    else
      refuse "this server's history diverged from $HASTACK_PEER_HOST (its source refused our GTID position: $(field ${d.fields.ioError})). It holds transactions the active side never received; re-clone it with HASTACK_REBUILD=1 after saving what you need from it"
    fi
  elif [ "$rc" != 0 ]; then
    exit "$rc"
  fi
}
`;
}

function cloneMariadb(d: Dialect): string {
  // A clone replaces this server's history: drop its own binlog (it serves no replica) so
  // gtid_slave_pos can be set to the dump's position whatever it held before.
  return `local_sql -e "${d.stopReplica}; ${d.resetReplicaAll}; RESET MASTER"
  # Loaded with sql_log_bin=0: the rows arrive under the peer's GTIDs (gtid_slave_pos below),
  # never as local transactions the peer lacks.
  if ! "$HASTACK_DUMP" --defaults-extra-file="$tmp/peer.cnf" --protocol=tcp --single-transaction \\
    --gtid --master-data=2 --routines --events --triggers --databases $DATABASES |
    awk -v f="$tmp/gtid" '/^-- SET GLOBAL gtid_slave_pos=/ { print > f } { print }' |
    { echo "SET SESSION sql_log_bin = 0;"; cat; } | local_sql; then
    die "clone from $HASTACK_PEER_HOST failed (dump or load, see above)"
  fi
  local pos
  [ -f "$tmp/gtid" ] || die "the dump carried no GTID position (is binary logging on at the peer?)"
  pos=$(sed -n "s/^-- SET GLOBAL gtid_slave_pos='\\(.*\\)';$/\\1/p" "$tmp/gtid" | head -n 1)
  # The binlog starts from the clone's position, so this server can serve the history after
  # it as a source later (a rejoining old primary asks for exactly that position).
  local_sql -e "RESET MASTER; SET GLOBAL gtid_binlog_state = '$pos'; SET GLOBAL gtid_slave_pos = '$pos'"
  start_replication || die "replication did not start after the clone (status $?)"
  checkpoint_peer
  log "cloned at GTID position '$pos'; replicating"`;
}

function cloneMysql(d: Dialect): string {
  return `local_sql -e "${d.stopReplica}; ${d.resetReplicaAll}" || true
  # GTID_PURGED in the dump needs an empty gtid_executed here.
  if [ -n "$(executed_local)" ]; then
    if [ "$(local_sql -e "SELECT VERSION() >= '8.2'")" = 1 ]; then local_sql -e "RESET BINARY LOGS AND GTIDS"; else local_sql -e "RESET MASTER"; fi
  fi
  # The dump itself switches sql_log_bin off and sets GTID_PURGED to the source's set.
  if ! "$HASTACK_DUMP" --defaults-extra-file="$tmp/peer.cnf" --protocol=tcp --single-transaction \\
    --set-gtid-purged=ON --source-data=2 --no-tablespaces --routines --events --triggers \\
    --databases $DATABASES | local_sql; then
    die "clone from $HASTACK_PEER_HOST failed (dump or load, see above)"
  fi
  start_replication || die "replication did not start after the clone (status $?)"
  checkpoint_peer
  log "cloned at GTID set '$(executed_local)'; replicating"`;
}

function rejoinPositionMariadb(d: Dialect): string {
  return `# Resume from everything this server already has (its own writes included).
  local_sql -e "${d.stopReplica}; SET GLOBAL gtid_slave_pos = @@GLOBAL.gtid_binlog_pos"`;
}

function rejoinPositionMysql(d: Dialect): string {
  return `local_sql -e "${d.stopReplica}"
  local mine theirs errant
  mine=$(executed_local)
  theirs=$(executed_peer)
  errant=$(local_sql -e "SELECT GTID_SUBTRACT('$mine', '$theirs')")
  if [ -n "$errant" ]; then
    if [ "$HASTACK_REBUILD" = 1 ]; then
      log "errant transactions $errant; HASTACK_REBUILD=1: re-cloning from the peer"
      clone_from_peer
      return 0
    fi
    refuse "this server has transactions the active side never received ($errant); re-clone it with HASTACK_REBUILD=1 after saving what you need from it"
  fi`;
}

const MAIN: Record<ScriptName, (s: MysqlSettings, d: Dialect) => string> = {
  setup: (s) => `# --- setup ---
need_peer
wait_local_up "$HASTACK_WAIT_SECONDS"
# Unquoted here-document: the shell expands the peer address and password into the SQL sent
# on the client's stdin (never its argv).
local_sql <<SQL
${renderReplicationUserSql(s.engine, "$HASTACK_PEER_HOST", "$HASTACK_REPL_PASSWORD")}
SQL
log "replication account $REPL_USER@$HASTACK_PEER_HOST ready"
${(s.accounts ?? []).map((a, i) => renderAccountStep(s.engine, a, i) + "\n").join("")}if [ "$(local_read_only)" = 0 ]; then
  for db in $DATABASES; do
    local_sql -e "CREATE DATABASE IF NOT EXISTS \\\`$db\\\` CHARACTER SET utf8mb4"
  done
  log "databases present: $DATABASES"
fi
`,

  bootstrap: (_s, d) => `# --- bootstrap ---
need_peer
wait_local_up "$HASTACK_WAIT_SECONDS"
read_status
if is_replica && replicating_from_peer; then
  if [ "$(field ${d.fields.io})" != Yes ] || [ "$(field ${d.fields.sql})" != Yes ]; then
    local_sql -e "${d.startReplica}"
  fi
  log "already replicating from $HASTACK_PEER_HOST:$HASTACK_PEER_PORT: nothing to do"
  exit 0
fi
[ "$(local_read_only)" = 1 ] || refuse "this server is writable: bootstrap only turns the passive (read-only) side into a replica"
[ "$(peer_sql -e "SELECT @@GLOBAL.read_only")" = 0 ] || refuse "the peer $HASTACK_PEER_HOST is read-only: bootstrap clones from the writable side"
for db in $DATABASES; do
  n=$(local_sql -e "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = '$db'")
  if [ "$n" != 0 ] && [ "$HASTACK_REBUILD" != 1 ]; then
    refuse "database $db already has $n tables here; set HASTACK_REBUILD=1 to replace them with the peer's"
  fi
done
clone_from_peer
write_role passive
`,

  failover: (_s, d) => `# --- failover ---
need_peer
wait_local_up "$HASTACK_CONNECT_SECONDS"
read_status
if ! is_replica; then
  if [ "$(local_read_only)" = 0 ]; then
    log "already the writable primary: nothing to do"
    write_role active
    unfence
    exit 0
  fi
  [ "$HASTACK_FORCE" = 1 ] || refuse "this standby is read-only and not replicating (bootstrap never completed?): promoting it would serve stale or empty data. Set hastack:mysql.forceFailover=true to promote it anyway"
  log "forced: promoting a standby that is not replicating"
  promote OFF
  echo "hastack-mysql-failover: promoted mode=forced lagSeconds=unknown"
  exit 0
fi
sql_errno=$(field ${d.fields.sqlErrno})
if [ "$sql_errno" != 0 ]; then
  [ "$HASTACK_FORCE" = 1 ] || refuse "replication stopped with SQL error $sql_errno ($(field ${d.fields.sqlError})): the standby's data is incomplete. Set hastack:mysql.forceFailover=true to promote it anyway"
  log "forced despite SQL error $sql_errno"
fi
mode=unplanned
lag=0
if peer_ro=$(peer_sql -e "SELECT @@GLOBAL.read_only" 2>"$tmp/peer.err"); then
  # Planned: the primary is alive. Fence it, then take every transaction it has.
  mode=planned
  lag=$(field ${d.fields.lag})
  if [ "$lag" = NULL ] || [ -z "$lag" ] || [ "$lag" -gt "$HASTACK_MAX_LAG_SECONDS" ]; then
    [ "$HASTACK_FORCE" = 1 ] || refuse "the standby lags \${lag}s behind the primary (bound: hastack:mysql.maxFailoverLagSeconds = \${HASTACK_MAX_LAG_SECONDS}s); nothing was changed. Wait for it to catch up, or set hastack:mysql.forceFailover=true"
    log "forced despite lag \${lag}s"
  fi
  peer_sql -e "${d.makeReadOnly}"
  log "fenced the primary $HASTACK_PEER_HOST (read-only, was read_only=$peer_ro)"
  target=$(executed_peer) || die "lost the primary $HASTACK_PEER_HOST right after fencing it"
  # Applying N seconds of lag can take longer than N when the primary wrote in parallel.
  drain=$((HASTACK_MAX_LAG_SECONDS + HASTACK_CONNECT_SECONDS))
  if ! wait_applied "$target" "$drain"; then
    if [ "$HASTACK_FORCE" != 1 ]; then
      [ "$peer_ro" = 1 ] || peer_sql -e "${d.makeWritable}" || true
      refuse "the standby did not apply the primary's last transactions ($target) within \${drain}s; the primary was made writable again"
    fi
    log "forced: promoting without the primary's last transactions"
  fi
else
  # Unplanned: the primary is gone. Refuse if replication still looks connected (a partition
  # would leave two writable sides), then apply everything received, within the bound.
  # Right after the primary died the IO thread may not have noticed yet: give it the net timeout.
  for _ in $(seq 1 50); do
    [ "$(field ${d.fields.io})" = Yes ] || break
    sleep 0.2
    read_status
  done
  if [ "$(field ${d.fields.io})" = Yes ] && [ "$HASTACK_FORCE" != 1 ]; then
    refuse "replication from $HASTACK_PEER_HOST is still connected but the primary does not answer SQL from here ($(tail -n 1 "$tmp/peer.err")); refusing to create a second writable server"
  fi
  log "primary $HASTACK_PEER_HOST unreachable; applying what this standby received"
  start_ms=$(now_ms)
  rc=0
  wait_drained "$HASTACK_MAX_LAG_SECONDS" || rc=$?
  lag=$(since "$start_ms")
  if [ "$rc" != 0 ]; then
    [ "$HASTACK_FORCE" = 1 ] || refuse "the standby could not apply its received transactions within \${HASTACK_MAX_LAG_SECONDS}s (hastack:mysql.maxFailoverLagSeconds; SQL thread: $(field ${d.fields.sql}) $(field ${d.fields.sqlState})). Set hastack:mysql.forceFailover=true to promote it anyway"
    log "forced despite an undrained relay log"
  fi
fi
# No replica is attached yet: semi-sync on the source would stall the first commit.
promote OFF
log "promoted ($mode, lag \${lag}s): this server is the writable primary"
echo "hastack-mysql-failover: promoted mode=$mode lagSeconds=$lag"
`,

  fallback: (s, d) => `# --- fallback ---
need_peer
wait_local_up "$HASTACK_CONNECT_SECONDS"
peer_ro=$(peer_sql -e "SELECT @@GLOBAL.read_only" 2>"$tmp/peer.err") ||
  refuse "the active side $HASTACK_PEER_HOST:$HASTACK_PEER_PORT is unreachable ($(tail -n 1 "$tmp/peer.err")): a fallback needs both servers up; nothing was changed"
local_ro=$(local_read_only)
read_status
if [ "$local_ro" = 0 ]; then
  [ "$peer_ro" = 1 ] || refuse "both servers are writable (split brain): compare their data before choosing which one to keep"
  is_replica && local_sql -e "${d.stopReplica}; ${d.resetReplicaAll}"
  ${s.semiSync ? `local_sql -e "SET GLOBAL ${d.semi.sourceEnabled} = ON"` : ":"}
  write_role active
  unfence
  log "already the writable primary (peer read-only): nothing to do"
  exit 0
fi
# 1. Replicate from the active side.
if ! replicating_from_peer || [ "$(field ${d.fields.io})" != Yes ] || [ "$(field ${d.fields.sql})" != Yes ]; then
  log "step 1: replicating from the active side $HASTACK_PEER_HOST:$HASTACK_PEER_PORT"
  rejoin_peer
fi
${s.semiSync ? `peer_sql -e "SET GLOBAL ${d.semi.sourceEnabled} = ON" || log "warning: could not switch semi-sync on at the peer"` : ""}
# 2. Catch up while the active side keeps serving (bounded). Under a write load heavier than
# one replica thread applies, the lag never reaches zero: "caught up" is within the failover
# lag bound, and the fence below stops writes while the rest is applied (a bounded pause).
start=$SECONDS
while :; do
  read_status
  [ "$(field ${d.fields.sqlErrno})" = 0 ] || die "replication failed while catching up: $(field ${d.fields.sqlError})"
  lag=$(field ${d.fields.lag})
  if [ "$(field ${d.fields.io})" = Yes ] && [ "$(field ${d.fields.sql})" = Yes ] && [ "$lag" != NULL ] &&
    [ "$lag" -le "$HASTACK_MAX_LAG_SECONDS" ]; then
    break
  fi
  if [ $((SECONDS - start)) -ge "$HASTACK_WAIT_SECONDS" ]; then
    refuse "not within \${HASTACK_MAX_LAG_SECONDS}s of the active side after \${HASTACK_WAIT_SECONDS}s (lag $lag s); it keeps serving and this server keeps replicating: re-run later"
  fi
  log "catching up: \${lag}s behind"
  sleep 1
done
log "step 2: within \${lag}s of the active side after $((SECONDS - start))s"
# 3. Fence the active side, then take its last transactions.
peer_sql -e "${d.makeReadOnly}"
fenced_ms=$(now_ms)
target=$(executed_peer) || die "lost the active side $HASTACK_PEER_HOST after fencing it"
drain=$((HASTACK_MAX_LAG_SECONDS + HASTACK_CONNECT_SECONDS))
if ! wait_applied "$target" "$drain"; then
  peer_sql -e "${d.makeWritable}" || true
  refuse "did not apply the active side's last transactions ($target) within \${drain}s; it was made writable again"
fi
log "step 3: fenced $HASTACK_PEER_HOST and applied up to $target"
# 4. Swap the roles back: this side becomes the writable source (the peer rejoins next).
promote ${s.semiSync ? "ON" : "OFF"}
paused=$(since "$fenced_ms")
log "step 4: this server is the writable primary again (writes paused \${paused}s); run rejoin on $HASTACK_PEER_HOST"
echo "hastack-mysql-fallback: promoted pausedSeconds=$paused"
`,

  rejoin: (s, d) => `# --- rejoin ---
need_peer
wait_local_up "$HASTACK_CONNECT_SECONDS"
read_status
if is_replica && replicating_from_peer && [ "$(field ${d.fields.io})" = Yes ] && [ "$(field ${d.fields.sql})" = Yes ]; then
  ${s.semiSync ? `if [ "$(local_sql -e "SELECT @@GLOBAL.${d.semi.replicaEnabled}")" != 1 ]; then local_sql -e "SET GLOBAL ${d.semi.replicaEnabled} = ON; ${d.stopReplica} IO_THREAD; ${d.startReplica} IO_THREAD"; fi` : ":"}
  write_role passive
  log "already replicating from $HASTACK_PEER_HOST:$HASTACK_PEER_PORT: nothing to do"
  exit 0
fi
peer_ro=$(peer_sql -e "SELECT @@GLOBAL.read_only" 2>"$tmp/peer.err") ||
  die "the active side $HASTACK_PEER_HOST:$HASTACK_PEER_PORT is unreachable: $(tail -n 1 "$tmp/peer.err")"
[ "$peer_ro" = 0 ] || refuse "the peer $HASTACK_PEER_HOST is read-only, so it is not the active side yet: run the fallback (or failover) there first"
rejoin_peer
write_role passive
log "replicating from the active side $HASTACK_PEER_HOST:$HASTACK_PEER_PORT"
`,

  "boot-role": () => `# --- boot-role ---
# Never fails: an unknown intent starts the server read-only (a stale primary taking writes
# after a failover is worse than a read-only one until an operator looks).
side=\${HASTACK_SIDE:-}
active=\${HASTACK_ACTIVE_SIDE:-}
if [ -z "$active" ] && [ -n "\${HASTACK_SSM_ACTIVE_PARAM:-}" ] && command -v aws >/dev/null 2>&1; then
  # On the very first boot the parameter may be seconds younger than the server: retry briefly.
  for attempt in 1 2 3 4 5 6; do
    active=$(timeout 20 aws ssm get-parameter --region "$(aws_region)" --name "$HASTACK_SSM_ACTIVE_PARAM" \\
      --query Parameter.Value --output text 2>/dev/null) && break
    active=""
    [ "$attempt" = 6 ] || sleep 5
  done
fi
case "$side:$active" in
  primary:primary | standby:standby) write_role active ;;
  primary:standby | standby:primary) write_role passive ;;
  *)
    log "cannot tell the active side (side='$side', active='$active'): starting read-only"
    write_role passive || true
    ;;
esac
exit 0
`,
};

/** The systemd drop-in that runs boot-role before every start of the database service. */
export function renderBootRoleDropIn(
  engine: Engine,
  side: Role,
  ssmActiveParam: string,
  region: string,
): string {
  return [
    "# hastack: write the role file from the stack's intent before every start (see boot-role).",
    "[Service]",
    `Environment=HASTACK_SIDE=${side}`,
    `Environment=HASTACK_AWS_REGION=${region}`,
    `Environment=HASTACK_SSM_ACTIVE_PARAM=${ssmActiveParam}`,
    `Environment=HASTACK_ROLE_CNF=${DIALECTS[engine].confDir}/90-hastack-role.cnf`,
    `ExecStartPre=-${BOOT_ROLE_PATH}`,
    "",
  ].join("\n");
}

/**
 * First-boot provisioning (cloud-init runcmd, after packages and the data-volume mount):
 * installs the staged config, initialises the data directory on the data volume once, starts
 * the server. Idempotent.
 */
export function renderProvisionScript(engine: Engine): string {
  const d = DIALECTS[engine];
  const init =
    engine === "mariadb"
      ? `mariadb-install-db --user=mysql --datadir=${SERVER_DATADIR} --skip-test-db --auth-root-authentication-method=socket`
      : // root@localhost without password but reachable only over the local socket.
        `mysqld --initialize-insecure --user=mysql --datadir=${SERVER_DATADIR}`;
  return `#!/bin/bash
# hastack-mysql-provision (${engine}): rendered by components/mysql-scripts.ts. Idempotent.
set -euo pipefail
install -m 0644 ${STAGING_DIR}/60-hastack.cnf ${d.confDir}/60-hastack.cnf
[ -f ${d.confDir}/90-hastack-role.cnf ] || install -m 0644 ${STAGING_DIR}/90-hastack-role.cnf ${d.confDir}/90-hastack-role.cnf
install -d /etc/systemd/system/${d.service}.service.d
install -m 0644 ${STAGING_DIR}/boot-role.conf /etc/systemd/system/${d.service}.service.d/60-hastack-role.conf
systemctl daemon-reload
systemctl stop ${d.service} || true
if [ ! -d ${SERVER_DATADIR}/mysql ]; then
  install -d -o mysql -g mysql -m 0750 ${SERVER_DATADIR}
  ${init}
fi
systemctl enable ${d.service}
systemctl start ${d.service}
# Remote role commands pass their parameters as HASTACK_* environment variables.
systemctl reload ssh || systemctl reload sshd || true
`;
}

/** sshd drop-in so remote commands can pass HASTACK_* (incl. the password) without argv. */
export const SSHD_ACCEPT_ENV =
  "# hastack remote commands pass parameters as environment\nAcceptEnv HASTACK_*\n";

/** Designed recovery point: 0 when every acknowledged commit is on the replica. */
export function mysqlRpoSeconds(semiSync: boolean, maxFailoverLagSeconds: number): number {
  // Async: the failover refuses a standby further behind than the bound (unless forced), so
  // the bound is the designed worst case; semi-sync degrades to async only after its timeout.
  return semiSync ? 0 : maxFailoverLagSeconds;
}

/**
 * Designed recovery time. Unlike a stateless service, the database needs the reviewed flip in
 * both modes (DNS failover alone would send clients to a read-only standby): the pair's estimate,
 * plus the operator's flip where the pair's estimate assumes none (dns), plus the failover
 * script's drain bound.
 */
export function mysqlRtoSeconds(o: {
  switchover: Switchover;
  pairRtoSeconds: number;
  maxFailoverLagSeconds: number;
}): number {
  const operator = o.switchover === "dns" ? OPERATOR_RESPONSE_SECONDS : 0;
  return o.pairRtoSeconds + operator + o.maxFailoverLagSeconds;
}
