// The `backup` drill behind `npm run rehearse -- backup`: on loopback, with the exact scripts the
// stack puts on the NAS (server/nas/, rendered by components/backup-jobs.ts), back up a real MariaDB with data, a Maildir
// tree and FreePBX's replicated set (components/pbx-replicated-set.ts: config, spool,
// /var/lib/asterisk, provisioning, web root, and astdb copied by the real
// hastack-pbx-sqlite-copy; every restored SQLite database must pass integrity_check) to a "primary NAS" directory, replicate it to a
// "standby NAS" directory, restore everything from the standby into fresh places (a fresh
// MariaDB server for the dump) and compare checksums with the source. Only the transport is
// local: rsync's remote shell is a shim that runs the far side through rrsync, the same forced
// command the servers' authorized_keys use, instead of sshd.
import { ChildProcess, spawn } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { Drill, DrillUsageError, findBinary, freePort, runDrill } from "./drill";
import {
  BACKUP_SCRIPT_SOURCE,
  BackupJob,
  REPLICATE_SCRIPT_SOURCE,
  backupJobs,
  renderBackupUserSql,
  renderDbClientDefaults,
  renderJobEnv,
  renderReplicateEnv,
} from "../../components/backup-jobs";
import { PBX_SQLITE_COPY_SOURCE, renderCdrTableSql } from "../../components/pbx";
import { ASTDB_PATH, PBX_COPIES_DIR, replicatedSet } from "../../components/pbx-replicated-set";
import { SERVER_DIR } from "../../components/server-files";

export interface RehearseBackupOptions {
  /** Work directory (created; removed afterwards unless keep). Defaults to a new temp dir. */
  workDir?: string;
  /** Keep the work directory for inspection. Defaults to false. */
  keep?: boolean;
  /** CDR rows in the source database. Defaults to 5000. */
  rows?: number;
  /** Mailboxes × messages in the Maildir tree. Defaults to 6 × 40. */
  mailboxes?: number;
  messagesPerMailbox?: number;
  /** Call recordings (~256 KiB each). Defaults to 12. */
  recordings?: number;
  /** Bound on the whole drill. Defaults to 300. */
  timeoutSeconds?: number;
  /** Progress lines (stderr in the CLI). Defaults to none. */
  log?: (line: string) => void;
  /** Test hook: runs after both rounds were replicated, before verification. Defaults to none. */
  afterReplication?: (nas: { primary: string; standby: string }) => void;
}

export interface JobResult {
  name: string;
  snapshot: string;
  files: number;
  bytes: number;
  seconds: number;
}

/** The drill's result; the CLI prints it as the last stdout line. */
export interface Summary {
  drill: "backup";
  ok: boolean;
  /** Files and tables whose restored copy differs from the source (missing, extra or changed). */
  mismatches: number;
  /** Source bytes backed up and restored (files plus the dump). */
  bytes: number;
  /** Files restored from the standby NAS and checked against the source. */
  files: number;
  /** Database rows restored into the fresh server and checked. */
  rows: number;
  jobs: JobResult[];
  problems: string[];
  seconds: number;
}

/** What a running drill holds, for the synchronous cleanup on SIGINT/SIGTERM. */
const live = { children: new Set<ChildProcess>(), dirs: new Set<string>() };

/** Kills every daemon the drill started and removes its work directories (signal handlers). */
export function cleanupSync(): void {
  for (const c of live.children) {
    killGroup(c, "SIGKILL");
  }
  live.children.clear();
  for (const d of live.dirs) {
    try {
      fs.rmSync(d, { recursive: true, force: true, maxRetries: 5, retryDelay: 100 });
    } catch (e) {
      process.stderr.write(`rehearse backup: could not remove ${d}: ${(e as Error).message}\n`);
    }
  }
  live.dirs.clear();
}

/** Every child runs in its own process group, so rsync and rrsync under a script die with it. */
function killGroup(c: ChildProcess, signal: NodeJS.Signals): void {
  if (c.exitCode !== null || c.signalCode !== null || c.pid === undefined) {
    return;
  }
  try {
    process.kill(-c.pid, signal);
  } catch {
    c.kill(signal);
  }
}

/** Runs the drill; always stops what it started and (unless keep) removes its work directory. */
export async function rehearseBackup(opts: RehearseBackupOptions = {}): Promise<Summary> {
  const log = opts.log ?? ((): void => undefined);
  const started = Date.now();
  const deadline = started + (opts.timeoutSeconds ?? 300) * 1000;
  const work = opts.workDir ?? fs.mkdtempSync(path.join(os.tmpdir(), "hastack-backup-"));
  fs.mkdirSync(work, { recursive: true });
  if (!opts.keep) {
    live.dirs.add(work);
  }
  const servers: MariadbServer[] = [];
  const problems: string[] = [];
  let mismatches = 0;
  const jobsOut: JobResult[] = [];
  let files = 0;
  let bytes = 0;
  let rows = 0;
  try {
    requireTools();
    const dirs = layout(work);
    installScripts(dirs);
    log(`work directory ${work}`);

    log("making the source trees (Maildirs, Asterisk config, voicemail, recordings)");
    makeMaildirs(dirs.mail, opts.mailboxes ?? 6, opts.messagesPerMailbox ?? 40);
    makeAsteriskTrees(dirs.etcAsterisk, dirs.spool, opts.recordings ?? 12);
    makePbxState(dirs.pbxRoot);
    await copyPbxDatabases(dirs.pbxRoot, deadline);

    log("starting the source MariaDB (binary log on, as on the database pair)");
    const source = await startMariadb({
      dir: path.join(work, "db-source"),
      binlog: true,
      deadline,
    });
    servers.push(source);
    const backupPassword = crypto.randomBytes(12).toString("hex");
    await source.sql(
      renderBackupUserSql({ host: "127.0.0.1", passwordSql: `'${backupPassword}'` }),
    );
    const sourceRows = await seedDatabase(source, opts.rows ?? 5000);
    log(`source database: ${sourceRows} rows in asteriskcdrdb and app`);
    fs.writeFileSync(dirs.dbDefaults, renderDbClientDefaults("hastack_backup", backupPassword), {
      mode: 0o600,
    });

    const jobs = backupJobs({
      domain: "example.test",
      hostnames: { mail: "mail", mysql: "db", pbx: "pbx" },
      intervalHours: { mail: 24, mysql: 6, pbx: 24 },
      retentionDays: { mail: 14, mysql: 30, pbx: 30 },
      databases: ["asteriskcdrdb", "app"],
      pbxSet: replicatedSet("freepbx"),
    });
    // Every PBX job reads its path under the drill's PBX root (etc/asterisk, var/spool/asterisk…).
    const sourcePaths: Record<string, string> = {
      "mail-maildirs": dirs.mail,
      ...Object.fromEntries(
        jobs
          .filter((j) => j.service === "pbx")
          .map((j) => [j.name, path.join(dirs.pbxRoot, j.sourcePath!)]),
      ),
    };
    fs.writeFileSync(
      dirs.replicateEnv,
      renderReplicateEnv({
        nasServiceName: "nas.example.test",
        peer: "standby-nas",
        peerSide: "standby",
        textfileDir: dirs.metrics,
        backupRoot: dirs.nasPrimary,
        peerRoot: dirs.nasStandby,
        activeCheck: "always",
        rsyncRsh: `${dirs.shim} wo ${work}`,
      }),
    );
    const envFor = (job: BackupJob, root: string): string => {
      const file = path.join(
        dirs.etc,
        `${job.name}${root === dirs.nasStandby ? ".standby" : ""}.env`,
      );
      fs.writeFileSync(
        file,
        renderJobEnv(job, {
          backupRoot: root,
          nasServiceName: "nas.example.test",
          activeCheck: "always",
          rsyncRsh: `${dirs.shim} ro ${work}`,
          sourceHost: "service-host",
          sourcePath: sourcePaths[job.name],
          dbHost: "127.0.0.1",
          dbPort: source.port,
          dbDefaultsFile: dirs.dbDefaults,
          replicateEnvFile: dirs.replicateEnv,
          replicateCommand: dirs.replicateScript,
          textfileDir: dirs.metrics,
        }),
      );
      return file;
    };

    // Two rounds an hour apart (HASTACK_NOW), with changes between them: the second snapshot
    // hard-links what did not change, and the first must still verify afterwards.
    for (const round of [1, 2]) {
      if (round === 2) {
        log(
          "changing the sources: new mail, an expunged mail, edited config, a new recording, new CDRs",
        );
        mutateSources(dirs);
        await runChecked(
          "sqlite3",
          [
            path.join(dirs.pbxRoot, ASTDB_PATH),
            "INSERT INTO astdb VALUES ('/CF/1002', '0811000222')",
          ],
          { deadline, what: "changing astdb" },
        );
        await copyPbxDatabases(dirs.pbxRoot, deadline);
        await source.sql(cdrInsertSql(1000, 200));
      }
      const now = Math.floor(Date.now() / 1000) + (round - 1) * 3600;
      for (const job of jobs) {
        const t0 = Date.now();
        await runChecked("bash", [dirs.backupScript, "run", envFor(job, dirs.nasPrimary)], {
          env: { HASTACK_NOW: String(now) },
          deadline,
          what: `backup job ${job.name}`,
        });
        const snapshot = fs.readlinkSync(path.join(dirs.nasPrimary, job.name, "latest"));
        const stats = treeStats(path.join(dirs.nasPrimary, job.name, snapshot, "data"));
        log(
          `round ${round}: ${job.name} → snapshot ${snapshot} (${stats.files} files, ${stats.bytes} bytes) and replicated`,
        );
        if (round === 2) {
          jobsOut.push({ name: job.name, snapshot, ...stats, seconds: (Date.now() - t0) / 1000 });
        }
      }
    }

    // What monitoring reads (docs/outputs.md): one success metric per job, one for replication.
    for (const file of [
      ...jobs.map((j) => `hastack_backup_${j.name}.prom`),
      "hastack_replication_nas.prom",
    ]) {
      if (!fs.existsSync(path.join(dirs.metrics, file))) {
        problems.push(`no success metric ${file} after the runs`);
      }
    }
    opts.afterReplication?.({ primary: dirs.nasPrimary, standby: dirs.nasStandby });
    log("verifying every snapshot on the standby NAS against its MANIFEST");
    for (const job of jobs) {
      const jobDir = path.join(dirs.nasStandby, job.name);
      const snapshots = fs.readdirSync(jobDir).filter((d) => /^\d{8}T\d{6}Z$/.test(d));
      if (snapshots.length !== 2) {
        problems.push(`${job.name}: standby NAS has ${snapshots.length} snapshots, expected 2`);
        mismatches += 1;
      }
      for (const snap of snapshots) {
        const r = await run(
          "bash",
          [dirs.backupScript, "verify", envFor(job, dirs.nasStandby), snap],
          {
            deadline,
          },
        );
        if (r.code !== 0) {
          problems.push(
            `${job.name}/${snap} on the standby NAS fails its MANIFEST: ${tail(r.stderr)}`,
          );
          mismatches += 1;
        }
      }
    }

    log("restoring the latest snapshots from the standby NAS into fresh directories");
    for (const job of jobs.filter((j) => j.kind === "rsync")) {
      const dest = path.join(dirs.restore, job.name);
      await runChecked(
        "bash",
        [dirs.backupScript, "restore", envFor(job, dirs.nasStandby), "latest", dest],
        { deadline, what: `restore of ${job.name}` },
      );
      const expected = hashTree(sourcePaths[job.name], job.excludes ?? []);
      const restored = hashTree(dest, []);
      const diff = compareTrees(expected, restored);
      mismatches += diff.length;
      problems.push(...diff.map((d) => `${job.name}: ${d}`));
      files += restored.size;
      bytes += [...expected.keys()].reduce(
        (n, f) => n + fs.statSync(path.join(sourcePaths[job.name], f)).size,
        0,
      );
      log(
        `${job.name}: ${restored.size} files restored, ${diff.length} differences from the source`,
      );
      // The PBX's databases come back whole: every restored SQLite copy passes integrity_check
      // and holds what the live database held when it was copied.
      for (const f of [...restored.keys()].filter((k) => /\.(sqlite3|db)$/.test(k))) {
        const check = await run(
          "sqlite3",
          ["-readonly", path.join(dest, f), "PRAGMA integrity_check;"],
          {
            deadline,
          },
        );
        if (check.code !== 0 || check.stdout.trim() !== "ok") {
          mismatches += 1;
          problems.push(
            `${job.name}: restored ${f} fails integrity_check: ${tail(check.stdout + check.stderr)}`,
          );
        } else {
          log(`${job.name}: restored ${f} passes integrity_check`);
        }
      }
    }

    log("starting a fresh MariaDB and loading the dump from the standby NAS");
    const fresh = await startMariadb({
      dir: path.join(work, "db-restore"),
      binlog: false,
      deadline,
    });
    servers.push(fresh);
    const restorePassword = crypto.randomBytes(12).toString("hex");
    await fresh.sql(
      `CREATE USER 'hastack_restore'@'127.0.0.1' IDENTIFIED BY '${restorePassword}';\n` +
        `GRANT ALL ON *.* TO 'hastack_restore'@'127.0.0.1';\n`,
    );
    const restoreDefaults = path.join(dirs.etc, "restore-client.cnf");
    fs.writeFileSync(restoreDefaults, renderDbClientDefaults("hastack_restore", restorePassword), {
      mode: 0o600,
    });
    const dumpJob = jobs.find((j) => j.kind === "mariadb-dump")!;
    await runChecked(
      "bash",
      [dirs.backupScript, "restore", envFor(dumpJob, dirs.nasStandby), "latest"],
      {
        env: {
          RESTORE_DB_HOST: "127.0.0.1",
          RESTORE_DB_PORT: String(fresh.port),
          RESTORE_DB_DEFAULTS_FILE: restoreDefaults,
        },
        deadline,
        what: "restore of the database dump",
      },
    );
    const dumpSnap = path.join(
      dirs.nasStandby,
      dumpJob.name,
      "latest",
      "data",
      `${dumpJob.name}.sql.gz`,
    );
    bytes += fs.statSync(dumpSnap).size;
    files += 1;
    const gtid = await runChecked(
      "sh",
      ["-c", `zcat "$1" | grep -c 'gtid_slave_pos' || true`, "sh", dumpSnap],
      {
        deadline,
        what: "reading the dump",
      },
    );
    if (Number(gtid.stdout.trim()) < 1) {
      problems.push("the dump carries no GTID position (--gtid --master-data=2)");
      mismatches += 1;
    }
    const want = await tableFingerprints(source, ["asteriskcdrdb", "app"]);
    const got = await tableFingerprints(fresh, ["asteriskcdrdb", "app"]);
    for (const [table, w] of want) {
      const g = got.get(table);
      if (!g || g.rows !== w.rows || g.checksum !== w.checksum) {
        mismatches += 1;
        problems.push(
          `${table}: source ${w.rows} rows checksum ${w.checksum}, restored ${g ? `${g.rows} rows checksum ${g.checksum}` : "missing"}`,
        );
      }
      rows += g?.rows ?? 0;
    }
    log(
      `database: ${rows} rows in ${want.size} tables restored, checksums ${mismatches === 0 ? "match" : "differ"}`,
    );
  } catch (err) {
    problems.push((err as Error).message);
    mismatches = Math.max(mismatches, 1);
  } finally {
    for (const s of servers.reverse()) {
      await s.stop();
    }
    if (!opts.keep) {
      fs.rmSync(work, { recursive: true, force: true });
      live.dirs.delete(work);
    }
  }
  return {
    drill: "backup",
    ok: problems.length === 0 && mismatches === 0,
    mismatches,
    bytes,
    files,
    rows,
    jobs: jobsOut,
    problems,
    seconds: Math.round((Date.now() - started) / 100) / 10,
  };
}

/** Tools the drill runs, with the Debian package that provides each. */
export const REQUIRED_TOOLS: Record<string, string> = {
  rsync: "rsync",
  rrsync: "rsync",
  mariadbd: "mariadb-server",
  "mariadb-install-db": "mariadb-server",
  mariadb: "mariadb-client",
  "mariadb-dump": "mariadb-client",
  sha256sum: "coreutils",
  flock: "util-linux",
  python3: "python3",
  sqlite3: "sqlite3",
};

/** Throws naming the Debian package of every missing tool. */
export function requireTools(tools: Record<string, string> = REQUIRED_TOOLS): void {
  const missing = Object.entries(tools).filter(([t]) => findBinary(t) === undefined);
  if (missing.length > 0) {
    throw new Error(
      `missing ${missing.map(([t, p]) => `${t} (Debian package ${p})`).join(", ")}: run test/install-deps.sh`,
    );
  }
}

interface Layout {
  bin: string;
  etc: string;
  backupScript: string;
  replicateScript: string;
  shim: string;
  dbDefaults: string;
  replicateEnv: string;
  mail: string;
  etcAsterisk: string;
  spool: string;
  /** The drill's PBX filesystem root: the replicated set's paths live under it. */
  pbxRoot: string;
  nasPrimary: string;
  nasStandby: string;
  restore: string;
  metrics: string;
}

function layout(work: string): Layout {
  const d = (...p: string[]): string => {
    const full = path.join(work, ...p);
    fs.mkdirSync(full, { recursive: true });
    return full;
  };
  const bin = d("bin");
  const etc = d("etc");
  return {
    bin,
    etc,
    // The very files the stack installs on the NAS, run in place from the package.
    backupScript: path.join(SERVER_DIR, BACKUP_SCRIPT_SOURCE),
    replicateScript: path.join(SERVER_DIR, REPLICATE_SCRIPT_SOURCE),
    shim: path.join(bin, "rsh-rrsync"),
    dbDefaults: path.join(etc, "mysql-client.cnf"),
    replicateEnv: path.join(etc, "replicate.env"),
    mail: d("src", "mail"),
    etcAsterisk: d("src", "pbx", "etc", "asterisk"),
    spool: d("src", "pbx", "var", "spool", "asterisk"),
    pbxRoot: d("src", "pbx"),
    nasPrimary: d("nas-primary"),
    nasStandby: d("nas-standby"),
    restore: d("restore"),
    metrics: d("metrics"),
  };
}

/**
 * The remote-shell shim rsync runs instead of ssh: `rsh-rrsync MODE LOCKDIR HOST COMMAND…`.
 * Like sshd with the servers' `command="/usr/bin/rrsync -MODE /"` authorized key, it hands the
 * requested command to rrsync, which refuses anything but an rsync server in that direction.
 * One difference: `rrsync -wo` takes a non-blocking flock on its directory — `/` — and with `/`
 * every drill and test on the machine shared that one lock, so concurrent drills failed with
 * "Another instance of rrsync is already accessing this directory" (issue 15). The shim takes
 * the same lock, with rrsync's own refusal message, on LOCKDIR (the drill's or test's work
 * directory) and runs rrsync with -no-lock: collisions stay real, but only inside one drill.
 */
export const RRSYNC_SHIM = `#!/bin/sh
mode=$1
lockdir=$2
shift 3
if [ "$mode" = wo ]; then
  exec 9<"$lockdir"
  flock -n 9 || {
    echo "/usr/bin/rrsync error: Another instance of rrsync is already accessing this directory." >&2
    exit 1
  }
fi
SSH_ORIGINAL_COMMAND="$*" exec rrsync -"$mode" -no-lock /
`;

/** The shared shell library the server scripts source (installed at HASTACK_LIB_PATH on servers). */
export const HASTACK_LIB_FILE = path.join(SERVER_DIR, "lib", "hastack.sh");

function installScripts(dirs: Layout): void {
  fs.writeFileSync(dirs.shim, RRSYNC_SHIM, { mode: 0o755 });
}

/** Maildir++ tree: <user>/Maildir/{cur,new,tmp} and a subfolder, realistic file names. */
function makeMaildirs(root: string, mailboxes: number, messages: number): void {
  for (let u = 0; u < mailboxes; u++) {
    const md = path.join(root, `user${u}@example.test`, "Maildir");
    for (const sub of ["cur", "new", "tmp", ".Sent/cur", ".Sent/new", ".Sent/tmp"]) {
      fs.mkdirSync(path.join(md, sub), { recursive: true });
    }
    for (let m = 0; m < messages; m++) {
      const folder = m % 5 === 0 ? ".Sent/cur" : m % 7 === 0 ? "new" : "cur";
      const flags = folder === "new" ? "" : ":2,S";
      const name = `17000${u}${String(m).padStart(5, "0")}.M${m}P${u}.mx1.example.test,S=${1000 + m}${flags}`;
      const body =
        `From: sender${m}@example.org\r\nTo: user${u}@example.test\r\nSubject: message ${m}\r\n\r\n` +
        crypto.randomBytes(1500 + ((m * 131) % 6000)).toString("base64");
      fs.writeFileSync(path.join(md, folder, name), body);
    }
    fs.writeFileSync(path.join(md, "dovecot-uidlist"), `3 V1700000000 N${messages + 1}\n`);
    fs.writeFileSync(path.join(md, "subscriptions"), "Sent\n");
  }
}

/** The rest of FreePBX's set: /var/lib/asterisk with a live astdb, provisioning, web root. */
function makePbxState(root: string): void {
  const put = (rel: string, content: string | Buffer): void => {
    fs.mkdirSync(path.dirname(path.join(root, rel)), { recursive: true });
    fs.writeFileSync(path.join(root, rel), content);
  };
  put("var/lib/asterisk/moh/custom/hold.wav", crypto.randomBytes(200_000));
  put("var/lib/asterisk/agi-bin/route.agi", "#!/bin/sh\necho VERBOSE route 1\n");
  put("tftpboot/SEP001122334455.cnf.xml", "<device><line>1001</line></device>\n");
  put("var/www/html/admin/modules/core/module.xml", "<module><version>17.0.2</version></module>\n");
  fs.mkdirSync(path.dirname(path.join(root, ASTDB_PATH)), { recursive: true });
}

/** The sync's consistent copies, with the very script the PBX runs (first call creates astdb). */
async function copyPbxDatabases(root: string, deadline: number): Promise<void> {
  const live = path.join(root, ASTDB_PATH);
  if (!fs.existsSync(live)) {
    await runChecked(
      "sqlite3",
      [
        live,
        "CREATE TABLE astdb (key TEXT PRIMARY KEY, value TEXT); INSERT INTO astdb VALUES ('/CF/1001', '0811000111'), ('/DND/1003', 'YES');",
      ],
      { deadline, what: "making astdb" },
    );
  }
  await runChecked(
    "bash",
    [
      path.join(SERVER_DIR, PBX_SQLITE_COPY_SOURCE),
      live,
      path.join(root, PBX_COPIES_DIR, "local", ASTDB_PATH),
    ],
    { deadline, what: "hastack-pbx-sqlite-copy of astdb" },
  );
}

function makeAsteriskTrees(etc: string, spool: string, recordings: number): void {
  const conf: Record<string, string> = {
    "asterisk.conf": "[directories]\nastspooldir => /var/spool/asterisk\n",
    "pjsip.conf":
      "#include pjsip_custom.conf\n[transport-udp]\ntype=transport\nprotocol=udp\nbind=0.0.0.0:5060\n",
    "extensions.conf": "[from-internal]\nexten => _1XXX,1,Dial(PJSIP/${EXTEN})\n",
    "voicemail.conf": "[default]\n1001 => 1234,Alice,alice@example.test\n",
    "res_odbc.conf": '#include "res_odbc_hastack.conf"\n',
  };
  for (const [f, c] of Object.entries(conf)) {
    fs.writeFileSync(path.join(etc, f), c);
  }
  for (const box of ["1001", "1002"]) {
    const inbox = path.join(spool, "voicemail", "default", box, "INBOX");
    fs.mkdirSync(inbox, { recursive: true });
    for (let i = 0; i < 3; i++) {
      const base = path.join(inbox, `msg${String(i).padStart(4, "0")}`);
      fs.writeFileSync(`${base}.wav`, crypto.randomBytes(40_000 + i * 1000));
      fs.writeFileSync(
        `${base}.txt`,
        `;\n[message]\ncallerid="Bob" <1002>\norigdate=Mon Jan 1 10:0${i}:00 AM UTC 2024\n`,
      );
    }
  }
  const monitor = path.join(spool, "monitor", "2024", "05", "17");
  fs.mkdirSync(monitor, { recursive: true });
  for (let i = 0; i < recordings; i++) {
    fs.writeFileSync(
      path.join(monitor, `out-0812345${i}-1001-20240517-1000${i}-1715940000.${i}.wav`),
      crypto.randomBytes(256 * 1024),
    );
  }
  // Excluded from backups: scratch space and call files (a restored call file dials out).
  fs.mkdirSync(path.join(spool, "tmp"), { recursive: true });
  fs.writeFileSync(path.join(spool, "tmp", "scratch.wav"), crypto.randomBytes(1000));
  fs.mkdirSync(path.join(spool, "outgoing"), { recursive: true });
  fs.writeFileSync(
    path.join(spool, "outgoing", "wakeup.call"),
    "Channel: PJSIP/1001\nApplication: Playback\n",
  );
}

function mutateSources(dirs: Layout): void {
  const md = path.join(dirs.mail, "user0@example.test", "Maildir");
  fs.writeFileSync(
    path.join(md, "new", "1800000000.M1P1.mx1.example.test,S=600"),
    "Subject: new\r\n\r\nhello",
  );
  const cur = fs.readdirSync(path.join(md, "cur")).sort();
  fs.rmSync(path.join(md, "cur", cur[0]));
  fs.appendFileSync(
    path.join(dirs.etcAsterisk, "extensions.conf"),
    "exten => 2000,1,Voicemail(1001)\n",
  );
  const monitor = path.join(dirs.spool, "monitor", "2024", "05", "17");
  fs.writeFileSync(
    path.join(monitor, "in-1001-0812999-20240517-110000-1715943600.99.wav"),
    crypto.randomBytes(300_000),
  );
}

/** Path (relative, "/" separated) → sha256 of every regular file, minus anchored excludes. */
export function hashTree(root: string, excludes: string[]): Map<string, string> {
  const out = new Map<string, string>();
  const skip = excludes.map((e) => e.replace(/^\//, "").replace(/\/$/, ""));
  const walk = (rel: string): void => {
    for (const ent of fs.readdirSync(path.join(root, rel), { withFileTypes: true })) {
      const r = rel ? `${rel}/${ent.name}` : ent.name;
      if (skip.includes(r)) {
        continue;
      }
      if (ent.isDirectory()) {
        walk(r);
      } else if (ent.isFile()) {
        out.set(
          r,
          crypto
            .createHash("sha256")
            .update(fs.readFileSync(path.join(root, r)))
            .digest("hex"),
        );
      }
    }
  };
  walk("");
  return out;
}

type TreeDifference = { file: string; kind: "missing" | "differs" | "not in the source" };

function treeDifferences(
  expected: Map<string, string>,
  actual: Map<string, string>,
): TreeDifference[] {
  const diffs: TreeDifference[] = [];
  for (const [file, h] of expected) {
    const a = actual.get(file);
    if (a === undefined) {
      diffs.push({ file, kind: "missing" });
    } else if (a !== h) {
      diffs.push({ file, kind: "differs" });
    }
  }
  for (const file of actual.keys()) {
    if (!expected.has(file)) {
      diffs.push({ file, kind: "not in the source" });
    }
  }
  return diffs;
}

/** Differences between two hashed trees, one sentence each. */
export function compareTrees(expected: Map<string, string>, actual: Map<string, string>): string[] {
  return treeDifferences(expected, actual).map((d) => `${d.file} ${d.kind}`);
}

/**
 * `compareTrees` for a backup of a live source, read after the backup: a snapshot is the source
 * as it was when the backup began (`sinceMs`), so a difference is a mismatch only where the
 * source has not changed since — a file modified at or after `sinceMs` (Dovecot appending to a
 * mailbox's index log, a message delivered) is `changedSince`, not a fault of the backup, and so
 * is a file gone from the source whose directory changed since. `sourceRoot` is the source
 * directory as this process reads it.
 */
export function compareTreesSince(
  expected: Map<string, string>,
  actual: Map<string, string>,
  sourceRoot: string,
  sinceMs: number,
): { mismatches: string[]; changedSince: string[] } {
  const modifiedSince = (rel: string): boolean => {
    try {
      return fs.statSync(path.join(sourceRoot, rel)).mtimeMs >= sinceMs;
    } catch {
      return false;
    }
  };
  const mismatches: string[] = [];
  const changedSince: string[] = [];
  for (const d of treeDifferences(expected, actual)) {
    const dir = path.posix.dirname(d.file);
    const changed = modifiedSince(
      d.kind === "not in the source" ? (dir === "." ? "" : dir) : d.file,
    );
    (changed ? changedSince : mismatches).push(`${d.file} ${d.kind}`);
  }
  return { mismatches, changedSince };
}

function treeStats(root: string): { files: number; bytes: number } {
  let files = 0;
  let bytes = 0;
  const walk = (d: string): void => {
    for (const ent of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, ent.name);
      if (ent.isDirectory()) {
        walk(p);
      } else if (ent.isFile()) {
        files += 1;
        bytes += fs.statSync(p).size;
      }
    }
  };
  walk(root);
  return { files, bytes };
}

/** A mariadbd on 127.0.0.1 with its own datadir, socket and port. */
export interface MariadbServer {
  port: number;
  socket: string;
  /** Runs SQL as root over the socket; resolves to stdout (tab-separated, no headers). */
  sql(statements: string): Promise<string>;
  stop(): Promise<void>;
}

/** Initialises a datadir and starts mariadbd on loopback, as root (--user=root); waits until it answers. */
export async function startMariadb(o: {
  dir: string;
  binlog: boolean;
  deadline?: number;
}): Promise<MariadbServer> {
  const deadline = o.deadline ?? Date.now() + 120_000;
  const datadir = path.join(o.dir, "data");
  fs.mkdirSync(datadir, { recursive: true });
  const socket = path.join(o.dir, "mysqld.sock");
  // Its own temporary directory: two servers bootstrapping at once in a shared /tmp were seen to
  // lose a temporary table ("Could not remove temporary table '/tmp/#sql-temptable-…'").
  const tmpdir = path.join(o.dir, "tmp");
  fs.mkdirSync(tmpdir, { recursive: true });
  await runChecked(
    "mariadb-install-db",
    [
      "--no-defaults",
      "--user=root",
      `--datadir=${datadir}`,
      "--auth-root-authentication-method=socket",
      "--skip-test-db",
    ],
    { deadline, what: "mariadb-install-db", env: { TMPDIR: tmpdir } },
  );
  const port = await freePort();
  const args = [
    "--no-defaults",
    "--user=root",
    `--datadir=${datadir}`,
    `--socket=${socket}`,
    `--port=${port}`,
    "--bind-address=127.0.0.1",
    "--skip-name-resolve",
    `--pid-file=${path.join(o.dir, "mysqld.pid")}`,
    `--log-error=${path.join(o.dir, "error.log")}`,
    "--innodb-buffer-pool-size=64M",
    `--tmpdir=${tmpdir}`,
    ...(o.binlog
      ? ["--server-id=1", `--log-bin=${path.join(o.dir, "binlog")}`, "--binlog-format=ROW"]
      : []),
  ];
  const child = spawn(findBinary("mariadbd") ?? "mariadbd", args, {
    stdio: "ignore",
    detached: true,
  });
  live.children.add(child);
  let exited = false;
  child.on("exit", () => {
    exited = true;
    live.children.delete(child);
  });
  const server: MariadbServer = {
    port,
    socket,
    sql: async (statements) =>
      (
        await runChecked("mariadb", ["--no-defaults", `--socket=${socket}`, "-uroot", "-N", "-B"], {
          input: statements,
          deadline,
          what: "mariadb client",
        })
      ).stdout,
    stop: () => stopChild(child),
  };
  while (!exited) {
    const r = await run(
      "mariadb",
      ["--no-defaults", `--socket=${socket}`, "-uroot", "-e", "SELECT 1"],
      {
        deadline,
      },
    );
    if (r.code === 0) {
      return server;
    }
    if (Date.now() > deadline) {
      break;
    }
    await new Promise((res) => setTimeout(res, 250));
  }
  await stopChild(child);
  const errlog = path.join(o.dir, "error.log");
  throw new Error(
    `mariadbd in ${o.dir} did not answer: ${fs.existsSync(errlog) ? tail(fs.readFileSync(errlog, "utf8")) : "no error log"}`,
  );
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) {
    return;
  }
  const done = new Promise<void>((res) => child.once("exit", () => res()));
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), 20_000);
  await done;
  clearTimeout(timer);
}

/** The CDR table from components/pbx.ts plus an app table with blobs and Unicode, then rows. */
async function seedDatabase(db: MariadbServer, cdrRows: number): Promise<number> {
  await db.sql(
    renderCdrTableSql("asteriskcdrdb") +
      "CREATE DATABASE app CHARACTER SET utf8mb4;\n" +
      "CREATE TABLE app.documents (id int PRIMARY KEY, title varchar(200), body mediumblob, updated datetime(6)) ENGINE=InnoDB;\n",
  );
  for (let start = 0; start < cdrRows; start += 1000) {
    await db.sql(cdrInsertSql(start, Math.min(1000, cdrRows - start)));
  }
  const docs: string[] = [];
  for (let i = 0; i < 300; i++) {
    docs.push(
      `(${i}, 'Surat ${i} — naïve café ✓', 0x${crypto.randomBytes(200 + i).toString("hex")}, '2024-05-17 10:00:00.${String(i).padStart(6, "0")}')`,
    );
  }
  await db.sql(`INSERT INTO app.documents VALUES ${docs.join(",\n")};\n`);
  return cdrRows + 300;
}

function cdrInsertSql(start: number, count: number): string {
  const values: string[] = [];
  for (let i = start; i < start + count; i++) {
    values.push(
      `('2024-05-17 ${String(8 + (i % 10)).padStart(2, "0")}:${String(i % 60).padStart(2, "0")}:00', '"Caller ${i}" <0812${i}>', '0812${i}', '${1000 + (i % 50)}', 'from-trunk', 'PJSIP/trunk-${i}', 'PJSIP/${1000 + (i % 50)}-${i}', 'Dial', 'PJSIP/${1000 + (i % 50)},30', ${i % 300}, ${i % 240}, '${i % 4 === 0 ? "NO ANSWER" : "ANSWERED"}', 3, '', '1715940000.${i}', '', '0215550${i % 100}', 'in-${i}.wav', '${1000 + (i % 50)}', 'Ext ${i % 50}', '', '', '', '1715940000.${i}', '', ${i})`,
    );
  }
  return (
    "INSERT INTO asteriskcdrdb.cdr (calldate, clid, src, dst, dcontext, channel, dstchannel, lastapp, lastdata, duration, billsec, disposition, amaflags, accountcode, uniqueid, userfield, did, recordingfile, cnum, cnam, outbound_cnum, outbound_cnam, dst_cnam, linkedid, peeraccount, sequence) VALUES\n" +
    values.join(",\n") +
    ";\n"
  );
}

/** Per table: row count and CHECKSUM TABLE (same server version on both sides, so comparable). */
export async function tableFingerprints(
  db: Pick<MariadbServer, "sql">,
  databases: string[],
): Promise<Map<string, { rows: number; checksum: string }>> {
  const list = await db.sql(
    `SELECT CONCAT(table_schema, '.', table_name) FROM information_schema.tables WHERE table_schema IN (${databases.map((d) => `'${d}'`).join(",")}) ORDER BY 1;`,
  );
  const out = new Map<string, { rows: number; checksum: string }>();
  for (const table of list.split("\n").filter(Boolean)) {
    const [schema, name] = table.split(".");
    const q = `\`${schema}\`.\`${name}\``;
    const count = await db.sql(`SELECT COUNT(*) FROM ${q};`);
    const sum = await db.sql(`CHECKSUM TABLE ${q} EXTENDED;`);
    out.set(table, { rows: Number(count.trim()), checksum: sum.trim().split("\t")[1] ?? "" });
  }
  return out;
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a command with a deadline (SIGKILL at the deadline); never throws on a non-zero exit. */
export function run(
  cmd: string,
  args: string[],
  o: { env?: Record<string, string>; input?: string; deadline?: number; cwd?: string } = {},
): Promise<RunResult> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, {
      // Server scripts source the shared library from HASTACK_LIB (tests may override it).
      env: { HASTACK_LIB: HASTACK_LIB_FILE, ...process.env, ...(o.env ?? {}) },
      cwd: o.cwd,
      stdio: ["pipe", "pipe", "pipe"],
      detached: true,
    });
    live.children.add(child);
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    const ms = Math.max(1000, (o.deadline ?? Date.now() + 120_000) - Date.now());
    const timer = setTimeout(() => {
      stderr += `\n(killed: deadline reached after ${Math.round(ms / 1000)} s)`;
      killGroup(child, "SIGKILL");
    }, ms);
    child.on("error", (err) => {
      clearTimeout(timer);
      live.children.delete(child);
      resolve({ code: 127, stdout, stderr: `${stderr}${err.message}` });
    });
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      live.children.delete(child);
      resolve({ code: code ?? (signal ? 128 : 1), stdout, stderr });
    });
    child.stdin.on("error", () => undefined);
    child.stdin.end(o.input ?? "");
  });
}

/** run, but throws with the command's last stderr lines on failure. */
export async function runChecked(
  cmd: string,
  args: string[],
  o: {
    env?: Record<string, string>;
    input?: string;
    deadline?: number;
    what: string;
    cwd?: string;
  },
): Promise<RunResult> {
  const r = await run(cmd, args, o);
  if (r.code !== 0) {
    throw new Error(`${o.what} failed (exit ${r.code}): ${tail(r.stderr || r.stdout)}`);
  }
  return r;
}

function tail(s: string, lines = 6): string {
  return s.trim().split("\n").slice(-lines).join(" | ");
}

export const USAGE = `usage: npm run rehearse -- backup [--rows N] [--timeout SECONDS] [--work-dir DIR] [--keep]
  Backs up a real MariaDB (N CDR rows, default 5000), a Maildir tree and an Asterisk config and
  spool tree with the scripts the NAS runs, replicates to a standby NAS directory, restores
  everything from there into fresh places (a fresh MariaDB for the dump) and compares checksums.
  Progress goes to stderr; the last stdout line is a JSON summary ("mismatches": 0 when it passed).
  --keep leaves the work directory for inspection.`;

/** Bad command-line input: the CLI prints the message and exits 2. */

/** Parses the drill's flags; throws DrillUsageError naming the flag and what was expected. */
export function parseBackupDrillArgs(args: string[]): RehearseBackupOptions & { help?: boolean } {
  const out: RehearseBackupOptions & { help?: boolean } = {};
  for (let i = 0; i < args.length; i++) {
    const flag = args[i];
    const value = (): string => {
      const v = args[++i];
      if (v === undefined || v.startsWith("--")) {
        throw new DrillUsageError(`${flag} needs a value`);
      }
      return v;
    };
    const positive = (v: string, max: number): number => {
      const n = Number(v);
      if (!/^\d+$/.test(v) || n < 1 || n > max) {
        throw new DrillUsageError(
          `${flag} must be a whole number from 1 to ${max}, got ${JSON.stringify(v)}`,
        );
      }
      return n;
    };
    switch (flag) {
      case "--help":
      case "-h":
        out.help = true;
        break;
      case "--keep":
        out.keep = true;
        break;
      case "--rows":
        out.rows = positive(value(), 1_000_000);
        break;
      case "--timeout":
        out.timeoutSeconds = positive(value(), 3600);
        break;
      case "--work-dir": {
        const dir = value();
        if (fs.existsSync(dir) && fs.readdirSync(dir).length > 0) {
          throw new DrillUsageError(`--work-dir ${dir} must be empty or not exist yet`);
        }
        out.workDir = path.resolve(dir);
        break;
      }
      default:
        throw new DrillUsageError(`unknown flag ${JSON.stringify(flag)}`);
    }
  }
  return out;
}

/** The backup drill for scripts/rehearse.ts: passes when every restore matched. */
export const BACKUP_DRILL: Drill<RehearseBackupOptions> = {
  usage: USAGE,
  parseArgs: parseBackupDrillArgs,
  run: async (options, log) => {
    const summary = await rehearseBackup({ ...options, log });
    return { passed: summary.ok, problems: summary.problems, summary: JSON.stringify(summary) };
  },
  cleanupSync,
};

/** Entry point for scripts/rehearse.ts: exit 0 when every restore matched, 1 if not, 2 for bad flags. */
export function main(args: string[]): Promise<number> {
  return runDrill("backup", BACKUP_DRILL, args);
}
