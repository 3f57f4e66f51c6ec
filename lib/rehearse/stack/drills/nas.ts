// The nas drill on the booted stack (issue 12 item 4): known data goes into each source (a
// Maildir on the active mail server, rows in every dumped database on the MySQL primary, every
// point of the PBX's replicated set with its consistent copies made by the stack's own sync);
// the active NAS runs each of its own backup units now (systemctl start: the timer's unit,
// pulling over real SSH with its restricted key, dumping over TCP with its account) and each run
// replicates to the standby NAS as designed. Every job is then restored from the STANDBY NAS
// with the stack's own `hastack-backup restore` (which verifies the MANIFEST) and compared with
// its source by backup.ts's comparisons: each directory job into a fresh directory on the
// standby NAS, the dump into a fresh MariaDB. The drill's data is removed from the sources
// and the restores deleted at the end; the snapshots stay, as any backup run's would.
import * as crypto from "crypto";
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import {
  PBX_COPIES_DIR,
  comparisonPoints,
  replicatedSet,
} from "../../../../components/pbx-replicated-set";
import { renderDbClientDefaults } from "../../../../components/backup-jobs";
import { SERVER_DIR } from "../../../../components/server-files";
import {
  HASTACK_LIB_FILE,
  MariadbServer,
  compareTreesSince,
  hashTree,
  runChecked,
  startMariadb,
  tableFingerprints,
} from "../../backup";
import { pbxSettingsOf } from "./pbx";
import { DRILL_MARK, sqliteFile, sqliteSeed, treeSeed } from "./pbx-parts";
import { DrillContext, DrillOutcome, DrillServer, inServer, refuseWithout } from "./container";
import { JobEnv, nasJobSources, parseEnvFile } from "./nas-parts";

const inRoot = (s: DrillServer, p: string): string => path.join(`/proc/${s.leader}/root`, p);

function sh(s: DrillServer, script: string): string {
  return inServer(s, ["bash", "-c", script], {}, 900_000);
}

export interface NasDrillResult {
  sources: string[];
  jobs: number;
  files: number;
  rows: number;
  mismatches: number;
  /** Source files changed after their backup began (a live mailbox): reported, not compared. */
  changedSinceBackup: number;
  problems: string[];
  notRehearsed: string[];
}

/** Runs the drill on the servers of a booted stack (the active side of every pair: primary). */
export async function nasDrill(
  o: {
    stack: string;
    nas: DrillServer;
    nasStandby: DrillServer;
    /** Source servers by service: the active side each job's SOURCE_HOST resolves to. */
    sources: { mail: DrillServer; mysql: DrillServer; pbx: DrillServer; pbxPeer: DrillServer };
  },
  log: (l: string) => void,
): Promise<NasDrillResult> {
  const run = crypto.randomBytes(4).toString("hex");
  const problems: string[] = [];
  const notRehearsed: string[] = [];
  let mismatches = 0;
  let changedSinceBackup = 0;
  const backupStarted = new Map<string, number>();
  let files = 0;
  let rows = 0;
  const restored = new Set<string>();
  const envDir = "/etc/hastack/backup";
  const jobs = fs
    .readdirSync(inRoot(o.nas, envDir))
    .filter((f) => f.endsWith(".env") && f !== "replicate.env")
    .map((f) => parseEnvFile(fs.readFileSync(inRoot(o.nas, path.join(envDir, f)), "utf8")));
  const bySource = nasJobSources(jobs);
  const missing = (["mail", "mysql", "pbx"] as const).filter((s) => !bySource.has(s));
  if (missing.length > 0) {
    problems.push(`the NAS has no backup job for ${missing.join(", ")}`);
  }
  const { flavour, configDatabase } = pbxSettingsOf(o.stack);
  const pbxPoints = comparisonPoints(replicatedSet(flavour, configDatabase));
  const mailDir = `${jobs.find((j) => j.JOB === "mail-maildirs")?.SOURCE_PATH ?? "/srv/data/mail"}/${DRILL_MARK}-${run}`;
  const scratch = `/srv/data/${DRILL_MARK}-restore-${run}`;
  const existed = new Map<string, boolean>();
  const pbxPaths = [
    ...pbxPoints.flatMap((p) =>
      p.kind === "tree" ? [p.path] : p.kind === "sqlite" ? [sqliteFile(p)] : [],
    ),
    PBX_COPIES_DIR,
  ];
  for (const s of [o.sources.pbx, o.sources.pbxPeer]) {
    for (const p of pbxPaths) {
      existed.set(`${s.name}:${p}`, fs.existsSync(inRoot(s, p)));
    }
  }
  const dbTable = `app.${DRILL_MARK.replace("-", "_")}_nas`;
  const work = fs.mkdtempSync(path.join(os.tmpdir(), "hastack-nas-drill-"));
  let fresh: MariadbServer | undefined;

  try {
    log(`run ${run}: drill data into the sources (mail, mysql, pbx)`);
    // mail: one Maildir with a new and a seen message.
    for (const [sub, name] of [
      ["new", `1700000000.${run}.drill`],
      ["cur", `1700000001.${run}.drill:2,S`],
    ]) {
      const f = inRoot(o.sources.mail, `${mailDir}/Maildir/${sub}/${name}`);
      fs.mkdirSync(path.dirname(f), { recursive: true });
      fs.writeFileSync(f, `From: drill@example.test\nSubject: nas drill ${run}\n\n${sub}\n`);
    }
    // mysql: rows in a table of the dumped database app.
    sh(
      o.sources.mysql,
      `mariadb -e "CREATE TABLE IF NOT EXISTS ${dbTable} (id INT PRIMARY KEY, run CHAR(8), note VARCHAR(64)) ENGINE=InnoDB; ` +
        `INSERT INTO ${dbTable} VALUES ${[1, 2, 3].map((i) => `(${i}, '${run}', 'row ${i}')`).join(", ")}"`,
    );
    // pbx: every point of the set, then the stack's handover sync makes the consistent copies.
    for (const p of pbxPoints) {
      if (p.kind === "tree") {
        for (const f of treeSeed(p, run, 1)) {
          const dest = inRoot(o.sources.pbx, path.join(p.path, f.rel));
          fs.mkdirSync(path.dirname(dest), { recursive: true });
          fs.writeFileSync(dest, f.content);
        }
      } else if (p.kind === "sqlite") {
        fs.mkdirSync(path.dirname(inRoot(o.sources.pbx, sqliteFile(p))), { recursive: true });
        inServer(o.sources.pbx, [
          "sqlite3",
          sqliteFile(p),
          `CREATE TABLE IF NOT EXISTS astdb (key VARCHAR(256), value VARCHAR(256), PRIMARY KEY(key)); ` +
            sqliteSeed(run, 1)
              .map(([k, v]) => `INSERT OR REPLACE INTO astdb VALUES ('${k}', '${v}');`)
              .join(" "),
        ]);
      }
    }
    log(
      `${o.sources.pbx.name}: ${sh(o.sources.pbx, "/usr/local/sbin/hastack-pbx-sync final /etc/hastack/pbx-sync.env 2>&1").trim().split("\n").slice(-1)[0]}`,
    );

    // The active NAS runs each of its own units now, one after another as the timers would.
    for (const job of jobs) {
      const unit = `hastack-backup-${job.JOB}.service`;
      const t0 = Date.now();
      // The snapshot is the source as it was from here on: what the source changes later (a
      // live mailbox) is told apart when the restore is compared (compareTreesSince). 100 ms
      // early: the kernel stamps mtimes from a coarse clock that can lag Date.now().
      backupStarted.set(job.JOB!, t0 - 100);
      try {
        sh(o.nas, `systemctl start ${unit}`);
        log(`${o.nas.name}: ${unit} done in ${Math.round((Date.now() - t0) / 1000)} s`);
      } catch (e) {
        const journal = sh(o.nas, `journalctl -u ${unit} -o cat --no-pager -n 8 || true`).trim();
        problems.push(
          `${unit} on ${o.nas.name} failed: ${journal.split("\n").slice(-3).join(" | ")}`,
        );
        log(`${o.nas.name}: ${unit} FAILED: ${(e as Error).message.split("\n")[0]}`);
      }
    }

    // Restores from the standby NAS, each compared with its source.
    for (const job of jobs.filter((j) => j.KIND === "rsync")) {
      const source = bySource.get(job.BACKUP_SERVICE as "mail" | "pbx");
      const server =
        job.BACKUP_SERVICE === "mail"
          ? o.sources.mail
          : job.BACKUP_SERVICE === "pbx"
            ? o.sources.pbx
            : undefined;
      if (!source || !server) {
        continue;
      }
      const dest = `${scratch}/${job.JOB}`;
      try {
        sh(
          o.nasStandby,
          `/usr/local/sbin/hastack-backup restore ${envDir}/${job.JOB}.env latest ${dest} 2>&1`,
        );
      } catch (e) {
        problems.push(
          `restore of ${job.JOB} on ${o.nasStandby.name}: ${(e as Error).message.split("\n").slice(-2).join(" ")}`,
        );
        mismatches += 1;
        continue;
      }
      const excludes = (job.EXCLUDES ?? "").split(" ").filter(Boolean);
      const want = hashTree(inRoot(server, job.SOURCE_PATH!), excludes);
      const got = hashTree(inRoot(o.nasStandby, dest), []);
      const { mismatches: diff, changedSince } = compareTreesSince(
        want,
        got,
        inRoot(server, job.SOURCE_PATH!),
        backupStarted.get(job.JOB!) ?? Date.now(),
      );
      if (changedSince.length > 0) {
        changedSinceBackup += changedSince.length;
        log(
          `${job.JOB}: ${changedSince.length} files changed on ${server.name} since the backup began (not compared: ${changedSince.slice(0, 4).join(", ")}${changedSince.length > 4 ? ", …" : ""})`,
        );
      }
      if (want.size === 0) {
        diff.push(`the source ${server.name}:${job.SOURCE_PATH} is empty: nothing was compared`);
      }
      mismatches += diff.length;
      problems.push(...diff.map((d) => `${job.JOB}: ${d}`));
      files += got.size;
      restored.add(job.BACKUP_SERVICE!);
      log(
        `${job.JOB}: ${got.size} files restored from ${o.nasStandby.name}, ${diff.length} differences from ${server.name}:${job.SOURCE_PATH}`,
      );
      // A restored SQLite copy must be whole (sqlite3 of this machine: the NAS has none; it
      // cannot open a database through /proc/PID/root, so on a copy of the restored file).
      for (const f of [...got.keys()].filter((k) => /\.(sqlite3|db)$/.test(k))) {
        let check: string;
        const copy = path.join(work, `check-${path.basename(f)}`);
        try {
          fs.copyFileSync(inRoot(o.nasStandby, path.join(dest, f)), copy);
          check = execFileSync("sqlite3", ["-readonly", copy, "PRAGMA integrity_check"], {
            encoding: "utf8",
            stdio: ["ignore", "pipe", "pipe"],
          }).trim();
        } catch (e) {
          check = (e as Error).message.split("\n")[0];
        }
        if (check !== "ok") {
          mismatches += 1;
          problems.push(`${job.JOB}: restored ${f} fails integrity_check: ${check}`);
        }
      }
    }

    for (const job of jobs.filter((j) => j.KIND === "mariadb-dump")) {
      log("starting a fresh MariaDB on loopback and loading the dump from the standby NAS");
      fresh = await startMariadb({
        dir: path.join(work, "db"),
        binlog: false,
        deadline: Date.now() + 300_000,
      });
      const password = crypto.randomBytes(12).toString("hex");
      await fresh.sql(
        `CREATE USER 'hastack_restore'@'127.0.0.1' IDENTIFIED BY '${password}';\n` +
          `GRANT ALL ON *.* TO 'hastack_restore'@'127.0.0.1';\n`,
      );
      const defaults = path.join(work, "restore.cnf");
      fs.writeFileSync(defaults, renderDbClientDefaults("hastack_restore", password), {
        mode: 0o600,
      });
      // The NAS's own env and script; only the snapshot is read through the standby NAS's root.
      const env = path.join(work, `${job.JOB}.env`);
      fs.writeFileSync(
        env,
        fs.readFileSync(inRoot(o.nasStandby, `${envDir}/${job.JOB}.env`), "utf8") +
          `BACKUP_ROOT=${inRoot(o.nasStandby, job.BACKUP_ROOT!)}\n`,
      );
      await runChecked(
        "bash",
        [path.join(SERVER_DIR, "nas", "hastack-backup.sh"), "restore", env, "latest"],
        {
          env: {
            HASTACK_LIB: HASTACK_LIB_FILE,
            RESTORE_DB_HOST: "127.0.0.1",
            RESTORE_DB_PORT: String(fresh.port),
            RESTORE_DB_DEFAULTS_FILE: defaults,
          },
          deadline: Date.now() + 600_000,
          what: `restore of ${job.JOB}`,
        },
      );
      const databases = (job.DATABASES ?? "").split(" ").filter(Boolean);
      const source = {
        sql: (statements: string): Promise<string> =>
          Promise.resolve(inServer(o.sources.mysql, ["mariadb", "-N", "-B", "-e", statements])),
      };
      const want = await tableFingerprints(source, databases);
      const got = await tableFingerprints(fresh, databases);
      let diff = 0;
      for (const [table, w] of want) {
        const g = got.get(table);
        if (!g || g.rows !== w.rows || g.checksum !== w.checksum) {
          diff += 1;
          problems.push(
            `${job.JOB}: ${table}: source ${w.rows} rows checksum ${w.checksum}, restored ${g ? `${g.rows} rows checksum ${g.checksum}` : "missing"}`,
          );
        }
        rows += g?.rows ?? 0;
      }
      if (!want.has(dbTable)) {
        diff += 1;
        problems.push(`${job.JOB}: the drill's table ${dbTable} is not on ${o.sources.mysql.name}`);
      }
      mismatches += diff;
      files += 1;
      restored.add("mysql");
      log(
        `${job.JOB}: ${want.size} tables of ${databases.join(", ")} restored into a fresh MariaDB, ${diff} differ from ${o.sources.mysql.name}`,
      );
    }
  } catch (e) {
    problems.push((e as Error).message);
    mismatches = Math.max(mismatches, 1);
  } finally {
    await fresh?.stop();
    fs.rmSync(work, { recursive: true, force: true });
    log("removing the drill's data from the sources and its restores from the standby NAS");
    const tidy = (what: string, f: () => void): void => {
      try {
        f();
      } catch (e) {
        problems.push(`cleanup of ${what}: ${(e as Error).message.split("\n")[0]}`);
      }
    };
    tidy("the restores", () =>
      fs.rmSync(inRoot(o.nasStandby, scratch), { recursive: true, force: true }),
    );
    tidy("the Maildir", () =>
      fs.rmSync(inRoot(o.sources.mail, mailDir), { recursive: true, force: true }),
    );
    tidy("the table", () => sh(o.sources.mysql, `mariadb -e "DROP TABLE IF EXISTS ${dbTable}"`));
    for (const s of [o.sources.pbx, o.sources.pbxPeer]) {
      tidy(`the PBX data on ${s.name}`, () => {
        for (const p of pbxPaths) {
          if (!existed.get(`${s.name}:${p}`)) {
            fs.rmSync(inRoot(s, p), { recursive: true, force: true });
          } else if (p !== PBX_COPIES_DIR && !p.endsWith(".sqlite3") && !p.endsWith(".db")) {
            fs.rmSync(inRoot(s, path.join(p, `${DRILL_MARK}-${run}`)), {
              recursive: true,
              force: true,
            });
          }
        }
      });
    }
  }
  notRehearsed.push(
    `nas: "a fresh server of the same kind" is approximated: directory jobs are restored into a fresh directory on the standby NAS (${scratch}, removed after), the dump into a fresh MariaDB on this machine's loopback (same Debian 12 MariaDB as the servers), not into newly booted mail, PBX and database servers`,
    "nas: the snapshots the drill's runs made stay on both NASes (with the drill's data, until retention prunes them), as any backup run's would",
  );
  return {
    sources: [...restored].sort(),
    jobs: jobs.length,
    files,
    rows,
    mismatches,
    changedSinceBackup,
    problems,
    notRehearsed,
  };
}

/** The running server that holds `ip` (its private or a secondary address). */
function serverAt(servers: DrillServer[], ip: string): DrillServer | undefined {
  return servers.find((s) =>
    inServer(s, ["ip", "-4", "-o", "addr", "show"])
      .split("\n")
      .some((l) => l.includes(` ${ip}/`)),
  );
}

/**
 * The drill as the registry runs it. Each source is the server its jobs' host name resolves to
 * on the active NAS (the active side of each pair, wherever the other drills left it).
 */
export async function runNasDrill(ctx: DrillContext): Promise<DrillOutcome> {
  const need = ["nas-primary", "nas-standby", "pbx-primary", "pbx-standby"];
  const fail = (problem: string): DrillOutcome => ({
    figures: {},
    problems: [problem],
    notRehearsed: [],
  });
  const refused = refuseWithout(ctx, need);
  if (refused) {
    return refused;
  }
  const nas = ctx.servers.get("nas-primary")!;
  const all = [...ctx.servers.values()];
  const env = (job: string): JobEnv =>
    parseEnvFile(fs.readFileSync(inRoot(nas, `/etc/hastack/backup/${job}.env`), "utf8"));
  const resolve = (name: string | undefined): DrillServer | undefined => {
    const ip = name
      ? inServer(nas, ["getent", "ahostsv4", name]).trim().split(/\s+/)[0]
      : undefined;
    return ip ? serverAt(all, ip) : undefined;
  };
  const mail = resolve(env("mail-maildirs").SOURCE_HOST);
  const mysql = resolve(env("mysql-dump").DB_HOST);
  const pbx = resolve(env("pbx-config").SOURCE_HOST);
  if (!mail || !mysql || !pbx) {
    return fail(
      `the NAS's sources do not resolve to running servers (mail ${mail?.name}, mysql ${mysql?.name}, pbx ${pbx?.name})`,
    );
  }
  ctx.log(`sources as the NAS resolves them: ${mail.name}, ${mysql.name}, ${pbx.name}`);
  const r = await nasDrill(
    {
      stack: ctx.stack,
      nas,
      nasStandby: ctx.servers.get("nas-standby")!,
      sources: {
        mail,
        mysql,
        pbx,
        pbxPeer: ctx.servers.get(pbx.name === "pbx-primary" ? "pbx-standby" : "pbx-primary")!,
      },
    },
    ctx.log,
  );
  const problems = [...r.problems];
  for (const want of ["mail", "mysql", "pbx"]) {
    if (!r.sources.includes(want)) {
      problems.push(`no backup of ${want} was restored and compared`);
    }
  }
  return {
    figures: {
      sources: r.sources,
      files: r.files,
      rows: r.rows,
      mismatches: r.mismatches,
      changedSinceBackup: r.changedSinceBackup,
      jobs: r.jobs,
    },
    problems,
    notRehearsed: r.notRehearsed,
  };
}
