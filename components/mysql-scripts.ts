// What the database pair runs, rendered as text: the server config, the role file, and the
// role-change scripts (setup, bootstrap, failover, fallback, rejoin, boot-role) for MariaDB
// 10.11 and MySQL 8.0.26+/8.4. Pure functions, no resources: MysqlPair ships this text to the
// servers and runs it through remote commands, and `npm run rehearse -- mysql` runs the very
// same text against two real servers on loopback. The scripts take every host-specific value
// (socket, peer address, password, role-file path) from the environment so one text serves both.
import type { MysqlConfig } from "../lib/config/stack-config";
import { OPERATOR_RESPONSE_SECONDS, Role, Switchover } from "./server-pair";
import { HASTACK_LIB_PATH, renderTemplate, serverFile } from "./server-files";
import { ssmPrefix } from "./pair-defaults";

export type Engine = "mariadb" | "mysql";
export type ReplicationMode = "semi-sync" | "async";

/** The account each server lets its peer use: replication, the bootstrap dump, fencing. */
export const REPLICATION_USER = "hastack_repl";
/** SSM SecureString holding its password, under the pair's prefix (which the servers may read). */
export function replicationPasswordParameter(prefix: string): string {
  return `${prefix}/replication-password`;
}
/** Where the data directory lives on the servers (the pair's data volume). */
export const SERVER_DATADIR = "/srv/data/mysql";
/** The pair's TLS files on the servers: ca.pem, server.pem, server-key.pem (issue 13). */
export const TLS_DIR = "/etc/mysql/hastack-tls";
/** SSM SecureStrings `<tls prefix>-ca`, `-cert`, `-key`: the pair's TLS material the stack makes. */
export function tlsParameterPrefix(prefix: string): string {
  return `${prefix}/tls`;
}
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
  /** setup: where application accounts may connect from, ADDRESS/NETMASK (the VPC's range). */
  "HASTACK_CLIENT_HOST",
  /** The pair's TLS files (ca.pem, server.pem, server-key.pem). Defaults to /etc/mysql/hastack-tls. */
  "HASTACK_TLS_DIR",
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
  /** Folder of the engine's own files under server/mysql/. */
  dir: "mariadb" | "mysql8";
  /** Debian packages (mysql needs Oracle's APT repository in the AMI). */
  packages: string[];
  service: string;
  client: string;
  dump: string;
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
  /** SQL function: 0 once the local server applied a GTID set (arg 1) within arg 2 seconds. */
  waitForGtids: string;
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
}

export const DIALECTS: Record<Engine, Dialect> = {
  mariadb: {
    engine: "mariadb",
    dir: "mariadb",
    packages: ["mariadb-server", "mariadb-client", "mariadb-backup"],
    service: "mariadb",
    client: "mariadb",
    dump: "mariadb-dump",
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
    waitForGtids: "MASTER_GTID_WAIT",
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
  },
  mysql: {
    engine: "mysql",
    dir: "mysql8",
    packages: ["mysql-server", "mysql-client"],
    service: "mysql",
    client: "mysql",
    dump: "mysqldump",
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
    waitForGtids: "WAIT_FOR_EXECUTED_GTID_SET",
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
  },
};

/** The script settings a config yields (accounts by name; their passwords travel separately). */
export function mysqlSettings(
  cfg: MysqlConfig,
  accounts: AccountSpec[] = [],
  prefix?: string,
): MysqlSettings {
  return {
    ...(prefix === undefined ? {} : { ssmPrefix: prefix }),
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
  /** The pair's SSM prefix (ServerPair.ssmPrefix). Defaults to /hastack/mysql. */
  ssmPrefix?: string;
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
}

/**
 * The text of a server/mysql file as shipped: its leading maintainer notes (lines starting with
 * `#:`) and linter directives (`# shellcheck …`) stay in the repository. Files under server/mysql
 * are either whole files (config, units) or fragments the scripts are composed of.
 */
function mysqlFile(rel: string): string {
  const lines = serverFile(`mysql/${rel}`).split("\n");
  let i = 0;
  while (i < lines.length && (lines[i].startsWith("#:") || lines[i].startsWith("# shellcheck "))) {
    i++;
  }
  return lines.slice(i).join("\n");
}

/**
 * Renders a server/mysql file with `@@NAME@@` values (components/server-files.ts). A line that
 * holds nothing but an OPTIONAL_BLOCKS placeholder whose value is empty disappears (e.g. no
 * application account); `trim` drops the final newline of a fragment placed inside a line.
 */
const OPTIONAL_BLOCKS = ["ACCOUNTS"];

function renderMysqlFile(
  rel: string,
  values: Record<string, string | number>,
  trim = false,
): string {
  let text = mysqlFile(rel);
  const kept: Record<string, string | number> = {};
  for (const [k, v] of Object.entries(values)) {
    if (v === "" && OPTIONAL_BLOCKS.includes(k)) {
      text = text.replace(new RegExp(`^[ \\t]*@@${k}@@\\n`, "gm"), "");
    }
    if (v !== "" || text.includes(`@@${k}@@`)) {
      kept[k] = v;
    }
  }
  const out = renderTemplate(text, kept, `server/mysql/${rel}`);
  return trim && out.endsWith("\n") ? out.slice(0, -1) : out;
}

/** Only the values whose placeholder `text` holds (a dialect table serves many files). */
function valuesUsedBy(
  rel: string,
  values: Record<string, string | number>,
): Record<string, string | number> {
  const text = mysqlFile(rel);
  return Object.fromEntries(Object.entries(values).filter(([k]) => text.includes(`@@${k}@@`)));
}

/**
 * The server's option file (conf.d/60-hastack.cnf), from server/mysql/<engine>/60-hastack.cnf
 * (+ 60-hastack-semisync.cnf). The role-dependent settings (read_only, which semi-sync side is
 * on) live in the separate role file, rewritten on every role change.
 */
export function renderServerConfig(o: ServerConfigOptions): string {
  const d = DIALECTS[o.engine];
  const base = renderMysqlFile(`${d.dir}/60-hastack.cnf`, {
    SIDE: o.side,
    SERVER_ID: serverIdFor(o.side),
    PORT: o.port ?? 3306,
    BIND_ADDRESS: o.bindAddress ?? "0.0.0.0",
    DATADIR: o.datadir ?? SERVER_DATADIR,
    BINLOG_EXPIRE_SECONDS: o.binlogRetentionDays * 86400,
    TLS_DIR,
  });
  if (!o.semiSync) {
    return base;
  }
  return (
    base +
    renderMysqlFile(`${d.dir}/60-hastack-semisync.cnf`, {
      SEMI_SYNC_TIMEOUT_MS: o.semiSyncTimeoutMs,
    })
  );
}

export type RoleState = "active" | "passive";

/**
 * The role file: `active` = writable source, `passive` = read-only replica. Written by the
 * role-change scripts and, before each start, by the boot-role script from the stack's intent.
 */
export function renderRoleConfig(engine: Engine, state: RoleState, semiSync: boolean): string {
  const d = DIALECTS[engine];
  const active = state === "active";
  const base = renderMysqlFile(
    `${d.dir}/90-hastack-role.cnf`,
    valuesUsedBy(`${d.dir}/90-hastack-role.cnf`, {
      STATE: state,
      READ_ONLY: active ? "OFF" : "ON",
      INIT_RPL_ROLE: active ? "MASTER" : "SLAVE",
    }),
  );
  if (!semiSync) {
    return base;
  }
  return (
    base +
    renderMysqlFile(`${d.dir}/90-hastack-role-semisync.cnf`, {
      SEMI_SOURCE: active ? "ON" : "OFF",
      SEMI_REPLICA: active ? "OFF" : "ON",
    })
  );
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

/**
 * The values the role-change files take: the engine's SQL words (DIALECTS) and the settings.
 * The semi-sync entries are whole commands (":" or nothing when async), so an async pair's
 * scripts never name a semi-sync variable (MySQL has none without its plugins).
 */
function scriptValues(name: ScriptName, s: MysqlSettings, d: Dialect): Record<string, string> {
  const semi = s.semiSync;
  return {
    NAME: name,
    ENGINE: s.engine,
    LIB_PATH: HASTACK_LIB_PATH,
    TLS_DIR,
    PURPOSE: PURPOSE[name],
    CLIENT: d.client,
    DUMP: d.dump,
    CONF_DIR: d.confDir,
    MAX_LAG_SECONDS: String(s.maxFailoverLagSeconds),
    FORCE: s.forceFailover ? "1" : "0",
    UNFENCE_PATH,
    SSM_PASSWORD_PARAM: replicationPasswordParameter(s.ssmPrefix ?? ssmPrefix(undefined, "mysql")),
    REPL_USER: REPLICATION_USER,
    DATABASES: s.databases.join(" "),
    ROLE_ACTIVE: renderRoleConfig(s.engine, "active", semi).replace(/\n$/, ""),
    ROLE_PASSIVE: renderRoleConfig(s.engine, "passive", semi).replace(/\n$/, ""),
    STOP_REPLICA: d.stopReplica,
    START_REPLICA: d.startReplica,
    RESET_REPLICA_ALL: d.resetReplicaAll,
    SHOW_REPLICA_STATUS: d.showReplicaStatus,
    F_IO: d.fields.io,
    F_SQL: d.fields.sql,
    F_LAG: d.fields.lag,
    F_IO_ERRNO: d.fields.ioErrno,
    F_IO_ERROR: d.fields.ioError,
    F_SQL_ERRNO: d.fields.sqlErrno,
    F_SQL_ERROR: d.fields.sqlError,
    F_SQL_STATE: d.fields.sqlState,
    F_SOURCE_HOST: d.fields.sourceHost,
    F_SOURCE_PORT: d.fields.sourcePort,
    EXECUTED_SQL: d.executedSql,
    WAIT_FOR_GTIDS: d.waitForGtids,
    MAKE_READ_ONLY: d.makeReadOnly,
    MAKE_WRITABLE: d.makeWritable,
    CHANGE_SOURCE_SQL: renderChangeSourceSql(
      s.engine,
      "$HASTACK_PEER_HOST",
      "$HASTACK_PEER_PORT",
      "$HASTACK_REPL_PASSWORD",
    ),
    REPLICATION_USER_SQL: renderReplicationUserSql(
      s.engine,
      "$HASTACK_PEER_HOST",
      "$HASTACK_REPL_PASSWORD",
    ),
    ACCOUNTS: (s.accounts ?? []).map((a, i) => renderAccountStep(s.engine, a, i)).join("\n"),
    ENGINE_FUNCTIONS: renderMysqlFile(`${d.dir}/role-change.sh`, {}, true),
    PROMOTE_SEMI_SQL: semi
      ? `SET GLOBAL ${d.semi.replicaEnabled} = OFF; SET GLOBAL ${d.semi.sourceEnabled} = $1;`
      : "",
    SEMI_REPLICA_SIDE: semi
      ? `echo "SET GLOBAL ${d.semi.sourceEnabled} = OFF; SET GLOBAL ${d.semi.replicaEnabled} = ON;"`
      : ":",
    SEMI_SOURCE_ON_LOCAL: semi ? `local_sql -e "SET GLOBAL ${d.semi.sourceEnabled} = ON"` : ":",
    SEMI_SOURCE_ON_PEER: semi
      ? `peer_sql -e "SET GLOBAL ${d.semi.sourceEnabled} = ON" || log "warning: could not switch semi-sync on at the peer"`
      : "",
    SEMI_SOURCE_AFTER_FALLBACK: semi ? "ON" : "OFF",
    SEMI_REPLICA_ON: semi
      ? `if [ "$(local_sql -e "SELECT @@GLOBAL.${d.semi.replicaEnabled}")" != 1 ]; then local_sql -e "SET GLOBAL ${d.semi.replicaEnabled} = ON; ${d.stopReplica} IO_THREAD; ${d.startReplica} IO_THREAD"; fi`
      : ":",
  };
}

/**
 * Renders one role-change script: server/mysql/role-change/header.sh, toolkit.sh (not for
 * boot-role) and the script's own part, with the engine's files and the settings' values.
 */
export function renderScript(name: ScriptName, s: MysqlSettings): string {
  const d = DIALECTS[s.engine];
  const values = scriptValues(name, s, d);
  const part = (f: string): string =>
    renderMysqlFile(`role-change/${f}`, valuesUsedBy(`role-change/${f}`, values));
  if (name === "boot-role") {
    // boot-role ships in user-data (16 KB limit): it carries only what it uses and sources the
    // shared helpers cloud-init installs beside it (HASTACK_LIB_PATH).
    return [part("header.sh"), part("boot-role.sh")].join("\n");
  }
  // Role-change scripts arrive on stdin and carry the shared helpers inline: a server booted
  // before a helper was added has only the old copy on disk (user-data runs at first boot).
  return [
    part("header.sh"),
    serverFile("lib/hastack.sh"),
    part("toolkit.sh"),
    part(`${name}.sh`),
  ].join("\n");
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
  return renderMysqlFile(
    "role-change/replication-user.sql",
    { ACCOUNT: `'${REPLICATION_USER}'@'${host}'`, PASSWORD: pw, GRANTS: DIALECTS[engine].grants },
    true,
  );
}

/** Creates one application account on this server, not binlogged (each server gets its own). */
function renderAccountStep(engine: Engine, a: AccountSpec, index: number): string {
  if (!/^[A-Za-z0-9_]{1,32}$/.test(a.user) || !/^(\*|[A-Za-z0-9_]{1,64})$/.test(a.database)) {
    throw new Error(
      `account ${JSON.stringify(a.user)} on ${JSON.stringify(a.database)}: names must be [A-Za-z0-9_] (database may be "*")`,
    );
  }
  return renderMysqlFile(
    "role-change/account.sh",
    {
      PASSWORD_ENV: accountPasswordEnv(index),
      USER: a.user,
      DATABASE: a.database,
      ENGINE: engine,
      ACCOUNT: `'${a.user}'@'$HASTACK_CLIENT_HOST'`,
      PRIVILEGES: a.privileges ?? "ALL PRIVILEGES",
      ON: a.database === "*" ? "*.*" : `\\\`${a.database}\\\`.*`,
    },
    true,
  );
}

/** CHANGE MASTER TO … MASTER_USE_GTID (MariaDB) / CHANGE REPLICATION SOURCE TO … AUTO_POSITION. */
export function renderChangeSourceSql(
  engine: Engine,
  host: string,
  port: string,
  pw: string,
  caFile = "$HASTACK_TLS_DIR/ca.pem",
): string {
  return renderMysqlFile(
    `${DIALECTS[engine].dir}/change-source.sql`,
    { HOST: host, PORT: port, USER: REPLICATION_USER, PASSWORD: pw, SSL_CA: caFile },
    true,
  );
}

/**
 * The MySQL/MariaDB host part for clients in `cidr` ("10.20.0.0/16" → "10.20.0.0/255.255.0.0"):
 * the netmask form both engines accept. Host bits must be zero (the engines would never match).
 */
export function mysqlClientHost(cidr: string): string {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/.exec(cidr);
  const octets = m ? m.slice(1, 5).map(Number) : [];
  const bits = m ? Number(m[5]) : -1;
  if (!m || octets.some((o) => o > 255) || bits < 8 || bits > 32) {
    throw new Error(`client network ${JSON.stringify(cidr)} must be an IPv4 CIDR from /8 to /32`);
  }
  const mask = bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
  const addr = octets.reduce((a, o) => ((a << 8) | o) >>> 0, 0);
  if ((addr & ~mask) >>> 0 !== 0) {
    throw new Error(
      `client network ${cidr} has host bits set (the network is ${dotted((addr & mask) >>> 0)}/${bits})`,
    );
  }
  return `${dotted(addr)}/${dotted(mask)}`;
}

function dotted(n: number): string {
  return [24, 16, 8, 0].map((s) => (n >>> s) & 255).join(".");
}

/** The systemd drop-in that runs boot-role before every start of the database service. */
export function renderBootRoleDropIn(
  engine: Engine,
  side: Role,
  ssmActiveParam: string,
  region: string,
): string {
  return renderMysqlFile("boot-role.conf", {
    SIDE: side,
    REGION: region,
    SSM_ACTIVE_PARAM: ssmActiveParam,
    ROLE_CNF: `${DIALECTS[engine].confDir}/90-hastack-role.cnf`,
    BOOT_ROLE_PATH,
  });
}

/**
 * First-boot provisioning (cloud-init runcmd, after packages and the data-volume mount):
 * installs the staged config, initialises the data directory on the data volume once, starts
 * the server. Idempotent.
 */
export function renderProvisionScript(
  engine: Engine,
  prefix = ssmPrefix(undefined, "mysql"),
): string {
  const d = DIALECTS[engine];
  return renderMysqlFile("provision.sh", {
    ENGINE: engine,
    LIB_PATH: HASTACK_LIB_PATH,
    TLS_DIR,
    SSM_TLS_PREFIX: tlsParameterPrefix(prefix),
    STAGING_DIR,
    CONF_DIR: d.confDir,
    SERVICE: d.service,
    DATADIR: SERVER_DATADIR,
    INIT_DATADIR: renderMysqlFile(`${d.dir}/init-datadir.sh`, { DATADIR: SERVER_DATADIR }, true),
  });
}

/** sshd drop-in so remote commands can pass HASTACK_* (incl. the password) without argv. */
export const SSHD_ACCEPT_ENV = mysqlFile("sshd-accept-env.conf");

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
