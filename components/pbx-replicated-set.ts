// What a PBX needs on the other server after a switch, per flavour (issue 16): one declared
// table, the single source the sync env, the NAS backup jobs, the restore drill, the
// whole-stack rehearsal's pbx drill and README's PBX section are all derived from. Pulumi-free
// (plain data and functions), so scripts and tests import it without an engine.
//
// How each method reaches the other server:
//  - rsync: the directory is pushed to the same path on the other PBX, live, every sync.
//  - sqlite-backup: SQLite's online backup (hastack-pbx-sqlite-copy) into COPIES_DIR/local on
//    the active PBX, pushed to COPIES_DIR/peer on the other; hastack-pbx-activate installs it
//    only while Asterisk is stopped. A file copy of a live database can tear; this cannot.
//  - mysqldump: a --single-transaction dump of a local database into the same copies, loaded
//    by hastack-pbx-activate while Asterisk is stopped.
//  - mysql-pair: the database lives on the MySQL pair (db.internal.<domain>); both PBX servers
//    read the one replicated copy, nothing is shipped.

/** The PBX distributions hastack knows the state of. */
export const PBX_FLAVOURS = ["freepbx", "elastix", "asterisk"] as const;
export type PbxFlavour = (typeof PBX_FLAVOURS)[number];
/** Where FreePBX keeps its configuration database (hastack:pbx.configDatabase). */
export const PBX_CONFIG_DATABASES = ["mysql-pair", "local"] as const;
export type PbxConfigDatabase = (typeof PBX_CONFIG_DATABASES)[number];

export type CopyMethod = "rsync" | "sqlite-backup" | "mysqldump" | "mysql-pair";

/** One thing the PBX needs replicated. */
export interface ReplicatedItem {
  /** Stable id; the NAS job of an rsync item is `pbx-<key>`. */
  key: string;
  /** What it holds, for people. */
  what: string;
  method: CopyMethod;
  /** rsync: a directory; sqlite-backup: a file or a glob of files (`*` in the last part only). */
  path?: string;
  /** mysqldump, mysql-pair: the database. */
  database?: string;
  /** rsync: never copied, patterns anchored at `path` (`/tmp/`). */
  excludes?: string[];
}

/** FreePBX's configuration database (AMPDBNAME), the same name on the MySQL pair. */
export const FREEPBX_DATABASE = "asterisk";
/** Where the sync keeps consistent copies: `local/` made here, `peer/` pushed by the other PBX. */
export const PBX_COPIES_DIR = "/var/lib/hastack/pbx-copies";
/** Asterisk's internal database (call forwarding, DND, follow-me, blacklists, device states). */
export const ASTDB_PATH = "/var/lib/asterisk/astdb.sqlite3";

const ASTERISK_ITEMS: ReplicatedItem[] = [
  {
    key: "config",
    what: "Asterisk configuration",
    method: "rsync",
    path: "/etc/asterisk",
  },
  {
    key: "spool",
    what: "voicemail and call recordings (never scratch space or call files: a copied call file places a call)",
    method: "rsync",
    path: "/var/spool/asterisk",
    excludes: ["/tmp/", "/outgoing/"],
  },
  {
    key: "lib",
    what: "music on hold, custom sounds and prompts, AGI scripts, keys (the live astdb excluded)",
    method: "rsync",
    path: "/var/lib/asterisk",
    // The live database and its journals: copied consistently by the astdb item instead.
    excludes: [
      "/astdb.sqlite3",
      "/astdb.sqlite3-journal",
      "/astdb.sqlite3-wal",
      "/astdb.sqlite3-shm",
    ],
  },
  {
    key: "astdb",
    what: "astdb: call forwarding, do-not-disturb, follow-me, blacklists, device states",
    method: "sqlite-backup",
    path: ASTDB_PATH,
  },
  {
    key: "provisioning",
    what: "phone provisioning files (TFTP/HTTP), where used",
    method: "rsync",
    path: "/tftpboot",
  },
];

const WEBROOT: ReplicatedItem = {
  key: "webroot",
  what: "web UI and installed modules (the database records module versions: the files must match it)",
  method: "rsync",
  path: "/var/www/html",
};

/**
 * The replicated set of a flavour. FreePBX's database goes to the MySQL pair unless the
 * operator keeps it local (then it is dumped and shipped); Elastix's embedded FreePBX keeps its
 * database in a local MySQL and its own settings in SQLite files.
 */
export function replicatedSet(
  flavour: PbxFlavour,
  configDatabase: PbxConfigDatabase = "mysql-pair",
): ReplicatedItem[] {
  switch (flavour) {
    case "asterisk":
      return [...ASTERISK_ITEMS];
    case "freepbx":
      return [
        ...ASTERISK_ITEMS,
        WEBROOT,
        {
          key: "freepbx-db",
          what: "FreePBX configuration database (extensions, trunks, routes: the source /etc/asterisk is generated from)",
          method: configDatabase === "local" ? "mysqldump" : "mysql-pair",
          database: FREEPBX_DATABASE,
        },
      ];
    case "elastix":
      return [
        ...ASTERISK_ITEMS,
        WEBROOT,
        {
          key: "elastix-db",
          what: "Elastix settings databases (/var/www/db/*.db: ACL, menus, fax, e-mail, settings)",
          method: "sqlite-backup",
          path: "/var/www/db/*.db",
        },
        {
          key: "freepbx-db",
          what: "the embedded FreePBX's configuration database (local MySQL)",
          method: "mysqldump",
          database: FREEPBX_DATABASE,
        },
      ];
  }
}

/** The databases a flavour keeps on the MySQL pair (created there, dumped by the NAS). */
export function databasesOnMysqlPair(items: ReplicatedItem[]): string[] {
  return items.filter((i) => i.method === "mysql-pair").map((i) => i.database!);
}

/** Where an item goes, in words (README, outputs). */
export function destinationOf(item: ReplicatedItem): string {
  switch (item.method) {
    case "rsync":
      return "the other PBX, same path, every sync";
    case "sqlite-backup":
    case "mysqldump":
      return `${PBX_COPIES_DIR}/peer on the other PBX; installed by hastack-pbx-activate with Asterisk stopped`;
    case "mysql-pair":
      return "the MySQL pair (db.internal), read by both PBX servers";
  }
}

/** How an item is copied, in words. */
export function methodOf(item: ReplicatedItem): string {
  switch (item.method) {
    case "rsync":
      return "rsync";
    case "sqlite-backup":
      return "SQLite online backup (`.backup`), integrity-checked";
    case "mysqldump":
      return "`mariadb-dump --single-transaction`";
    case "mysql-pair":
      return "lives on the MySQL pair (GTID replication)";
  }
}

/** Seconds of changes a switch can lose: the sync interval, or the MySQL pair's RPO. */
export function itemRpoSeconds(
  item: ReplicatedItem,
  o: { syncIntervalMinutes: number; mysqlRpoSeconds: number },
): number {
  return item.method === "mysql-pair" ? o.mysqlRpoSeconds : o.syncIntervalMinutes * 60;
}

/** The RPO of an item in README's words. */
function rpoWords(item: ReplicatedItem): string {
  return item.method === "mysql-pair"
    ? "the MySQL pair's (0 with semi-sync)"
    : "the sync interval (`syncIntervalMinutes`)";
}

/** `path` relative to / (how the sync script names it under SYNC_ROOT). */
function rel(p: string): string {
  return p.replace(/^\/+/, "");
}

/** What the sync env carries, derived from the set (components/pbx.ts renderPbxSyncEnv). */
export interface SyncPlan {
  /** rsync directories, relative to /. */
  paths: string[];
  /** rsync excludes anchored at the transfer root (/var/spool/asterisk/tmp/). */
  excludes: string[];
  /** SQLite files or globs, relative to /. */
  sqlite: string[];
  /** Local databases dumped into the copies. */
  dumps: string[];
}

export function syncPlan(items: ReplicatedItem[]): SyncPlan {
  const of = (m: CopyMethod): ReplicatedItem[] => items.filter((i) => i.method === m);
  return {
    paths: of("rsync").map((i) => rel(i.path!)),
    excludes: of("rsync").flatMap((i) => (i.excludes ?? []).map((e) => `${i.path}${e}`)),
    sqlite: of("sqlite-backup").map((i) => rel(i.path!)),
    dumps: of("mysqldump").map((i) => i.database!),
  };
}

/**
 * Where each item lands in the copies tree (relative to COPIES_DIR/local or /peer): a SQLite
 * file under its own path, a dump as mysql/<database>.sql.gz.
 */
export function copyLocation(item: ReplicatedItem): string | undefined {
  if (item.method === "sqlite-backup") {
    return rel(item.path!);
  }
  if (item.method === "mysqldump") {
    return `mysql/${item.database}.sql.gz`;
  }
  return undefined;
}

export const README_TABLE_HEADER = [
  "path or database",
  "what",
  "flavours",
  "how",
  "where it goes",
  "RPO",
];

/** Every variant the table covers: each flavour, and FreePBX with its database kept local. */
const VARIANTS: { label: string; flavour: PbxFlavour; configDatabase?: PbxConfigDatabase }[] = [
  { label: "freepbx", flavour: "freepbx" },
  { label: "freepbx (configDatabase: local)", flavour: "freepbx", configDatabase: "local" },
  { label: "elastix", flavour: "elastix" },
  { label: "asterisk", flavour: "asterisk" },
];

/**
 * README's table: one row per item and method, naming the flavours that replicate it.
 * test/components/pbx-replicated-set.test.ts holds README's PBX section to it.
 */
export function replicatedSetTable(): string[][] {
  const rows = new Map<string, { item: ReplicatedItem; labels: string[] }>();
  for (const v of VARIANTS) {
    for (const item of replicatedSet(v.flavour, v.configDatabase)) {
      const id = `${item.key}/${item.method}`;
      const row = rows.get(id) ?? { item, labels: [] };
      row.labels.push(v.label);
      rows.set(id, row);
    }
  }
  return [...rows.values()].map(({ item, labels }) => [
    item.path ? `\`${item.path}\`` : `database \`${item.database}\``,
    item.what,
    labels.length === VARIANTS.length ? "all" : labels.join(", "),
    methodOf(item) +
      (item.excludes?.length ? ` (not ${item.excludes.map((e) => `\`${e}\``).join(", ")})` : ""),
    destinationOf(item),
    rpoWords(item),
  ]);
}

/** The table as markdown (unaligned; prettier aligns it in README). */
export function renderReplicatedSetMarkdown(): string {
  const line = (cells: string[]): string => `| ${cells.join(" | ")} |`;
  return [
    line(README_TABLE_HEADER),
    line(README_TABLE_HEADER.map(() => "---")),
    ...replicatedSetTable().map(line),
  ].join("\n");
}

/** One thing a drill compares between the two PBX servers after a sync and a switch. */
export type ComparisonPoint =
  | { key: string; kind: "tree"; path: string; excludes: string[] }
  | { key: string; kind: "sqlite"; path: string }
  | { key: string; kind: "database"; database: string; where: "local" | "mysql-pair" };

/**
 * What the whole-stack rehearsal's pbx drill (issue 12) compares after a sync and a switch,
 * from the same table: each directory as a tree (minus its excludes), each SQLite database by
 * content (the live file on the newly active server, installed by hastack-pbx-activate), each
 * database by its tables (local on each server, or the one on the MySQL pair).
 */
export function comparisonPoints(items: ReplicatedItem[]): ComparisonPoint[] {
  return items.map((i): ComparisonPoint => {
    switch (i.method) {
      case "rsync":
        return { key: i.key, kind: "tree", path: i.path!, excludes: [...(i.excludes ?? [])] };
      case "sqlite-backup":
        return { key: i.key, kind: "sqlite", path: i.path! };
      case "mysqldump":
        return { key: i.key, kind: "database", database: i.database!, where: "local" };
      case "mysql-pair":
        return { key: i.key, kind: "database", database: i.database!, where: "mysql-pair" };
    }
  });
}
