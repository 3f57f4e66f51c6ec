// NAS backup jobs: the pure job list and schedules (table-driven), then the rendered scripts run
// for real (rsync through rrsync, as the servers' authorized_keys force) for the behaviours the
// full drill does not single out: pruning, the active-side gate, a failed pull that keeps its
// work for the next run, and replication that keeps hard links and drops pruned snapshots.
import { expect } from "chai";
import * as crypto from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import {
  BACKUP_SCRIPT_SOURCE,
  BackupJob,
  REPLICATE_SCRIPT_SOURCE,
  backupJobs,
  jobRpoSeconds,
  renderBackupUserSql,
  renderJobEnv,
  renderJobUnits,
  renderReplicateEnv,
  timerSchedule,
} from "../../components/backup-jobs";
import { SERVER_DIR, shellQuote } from "../../components/server-files";
import { spawn } from "child_process";
import {
  HASTACK_LIB_FILE,
  RRSYNC_SHIM,
  compareTrees,
  hashTree,
  requireTools,
  run,
} from "../../lib/rehearse/backup";

const input = {
  domain: "example.co.id",
  hostnames: { mail: "mail", mysql: "db", pbx: "pbx" },
  intervalHours: { mail: 24, mysql: 6, pbx: 12 },
  retentionDays: { mail: 14, mysql: 30, pbx: 60 },
  databases: ["asteriskcdrdb", "app"],
};

describe("backupJobs", () => {
  const jobs = backupJobs(input);
  const PBX = ["config", "spool", "lib", "provisioning", "webroot", "copies"].map(
    (k) => `pbx-${k}`,
  );
  it("has one job per thing to keep: Maildirs, the dump, and FreePBX's replicated set by default", () => {
    expect(jobs.map((j) => [j.service, j.name, j.kind])).to.deep.equal([
      ["mail", "mail-maildirs", "rsync"],
      ["mysql", "mysql-dump", "mariadb-dump"],
      ...PBX.map((name) => ["pbx", name, "rsync"]),
    ]);
  });
  it("takes interval and retention per service from config", () => {
    expect(jobs.map((j) => [j.name, j.intervalHours, j.retentionDays])).to.deep.equal([
      ["mail-maildirs", 24, 14],
      ["mysql-dump", 6, 30],
      ...PBX.map((name) => [name, 12, 60]),
    ]);
  });
  it("pulls from the service names, which follow a failover", () => {
    expect(jobs.map((j) => j.sourceHost)).to.deep.equal([
      "mail.example.co.id",
      "db.example.co.id",
      ...PBX.map(() => "pbx.example.co.id"),
    ]);
  });
  it("never backs up Asterisk call files or scratch space", () => {
    expect(jobs.find((j) => j.name === "pbx-spool")!.excludes).to.deep.equal([
      "/tmp/",
      "/outgoing/",
    ]);
  });
  it("designs the RPO as the interval", () => {
    expect(jobs.map(jobRpoSeconds)).to.deep.equal([86400, 21600, ...PBX.map(() => 43200)]);
  });
});

describe("timerSchedule", () => {
  const cases: [number, string[]][] = [
    [15, ["OnCalendar=*-*-* *:00/15:00", "Persistent=true"]],
    [5, ["OnCalendar=*-*-* *:00/5:00", "Persistent=true"]],
    [60, ["OnCalendar=*-*-* 00/1:00:00", "Persistent=true"]],
    [360, ["OnCalendar=*-*-* 00/6:00:00", "Persistent=true"]],
    [1440, ["OnCalendar=*-*-* 00:00:00", "Persistent=true"]],
    [7, ["OnBootSec=15min", "OnUnitActiveSec=7min"]],
    [300, ["OnBootSec=15min", "OnUnitActiveSec=300min"]],
    [2880, ["OnBootSec=15min", "OnUnitActiveSec=2880min"]],
  ];
  for (const [minutes, want] of cases) {
    it(`${minutes} min → ${want[0]}`, () => expect(timerSchedule(minutes)).to.deep.equal(want));
  }
  it("refuses a non-positive interval", () => expect(() => timerSchedule(0)).to.throw(/>= 1/));
  it("every OnCalendar it renders is accepted by systemd-analyze calendar", async () => {
    requireTools({ "systemd-analyze": "systemd" });
    for (const [minutes] of cases) {
      const onCalendar = timerSchedule(minutes).find((l) => l.startsWith("OnCalendar="));
      if (onCalendar) {
        const spec = onCalendar.slice("OnCalendar=".length);
        const r = await run("systemd-analyze", ["calendar", spec], {
          deadline: Date.now() + 10_000,
        });
        expect(r.code, `${spec}: ${r.stderr}`).to.equal(0);
        expect(r.stdout).to.contain(`Normalized form: ${spec}`);
      }
    }
  });
  it("the job timer uses the job's interval", () => {
    const timer = renderJobUnits(backupJobs(input)[1]).find((u) => u.path.endsWith(".timer"))!;
    expect(timer.content).to.contain("OnCalendar=*-*-* 00/6:00:00");
    expect(timer.path).to.equal("/etc/systemd/system/hastack-backup-mysql-dump.timer");
  });
});

describe("renderJobEnv / shellQuote", () => {
  it("quotes values so the scripts can source them", () => {
    expect(shellQuote("it's")).to.equal(`'it'\\''s'`);
  });
  it("production env: dns active check, NAS key, the job's source", () => {
    const env = renderJobEnv(backupJobs(input)[0], { nasServiceName: "nas.example.co.id" });
    expect(env).to.contain("ACTIVE_CHECK=dns\n");
    expect(env).to.contain("SOURCE_HOST=mail.example.co.id\n");
    expect(env).to.contain("SOURCE_PATH=/srv/data/mail\n");
    expect(env).to.contain("RETENTION_DAYS=14\n");
    expect(env).to.contain("EXCLUDES=''\n");
    expect(env).to.match(/RSYNC_RSH='ssh -i \/root\/.ssh\/hastack_nas -o BatchMode=yes/);
  });
  it("the backup account can read and lock but not write", () => {
    const sql = renderBackupUserSql({ host: "10.20.%", passwordSql: "@pw" });
    expect(sql).to.contain(
      "GRANT SELECT, SHOW VIEW, TRIGGER, EVENT, LOCK TABLES, RELOAD, BINLOG MONITOR ON *.*",
    );
    expect(sql).not.to.match(/INSERT|UPDATE|DELETE|ALL PRIVILEGES/);
  });
});

const replicateScript = path.join(SERVER_DIR, REPLICATE_SCRIPT_SOURCE);

describe("hastack-backup and hastack-nas-replicate scripts (real rsync)", function () {
  this.timeout(180_000);
  let tmp: string;
  let source: string;
  let nas: string;
  let standby: string;
  let backup: string;
  let job: BackupJob;

  before(() =>
    requireTools({ rsync: "rsync", rrsync: "rsync", flock: "util-linux", sha256sum: "coreutils" }),
  );

  beforeEach(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), "hastack-nasjob-"));
    source = path.join(tmp, "mail");
    nas = path.join(tmp, "nas1");
    standby = path.join(tmp, "nas2");
    fs.mkdirSync(path.join(source, "u1", "Maildir", "cur"), { recursive: true });
    for (let i = 0; i < 20; i++) {
      fs.writeFileSync(
        path.join(source, "u1", "Maildir", "cur", `m${i}:2,S`),
        crypto.randomBytes(3000),
      );
    }
    // The very files the stack installs on the NAS, run in place.
    backup = path.join(SERVER_DIR, BACKUP_SCRIPT_SOURCE);
    fs.writeFileSync(path.join(tmp, "rsh"), RRSYNC_SHIM, { mode: 0o755 });
    job = backupJobs(input)[0];
    writeEnvs("always", source);
  });
  afterEach(() => fs.rmSync(tmp, { recursive: true, force: true }));

  function writeEnvs(activeCheck: "always" | "never", sourcePath: string): void {
    fs.writeFileSync(
      path.join(tmp, "job.env"),
      renderJobEnv(job, {
        backupRoot: nas,
        nasServiceName: "nas.example.test",
        activeCheck,
        rsyncRsh: `${path.join(tmp, "rsh")} ro ${tmp}`,
        sourceHost: "mail",
        sourcePath,
        replicateEnvFile: path.join(tmp, "replicate.env"),
        replicateCommand: replicateScript,
        textfileDir: path.join(tmp, "metrics"),
      }),
    );
    fs.writeFileSync(
      path.join(tmp, "replicate.env"),
      renderReplicateEnv({
        nasServiceName: "nas.example.test",
        peer: "nas2",
        peerSide: "standby",
        textfileDir: path.join(tmp, "metrics"),
        backupRoot: nas,
        peerRoot: standby,
        activeCheck,
        rsyncRsh: `${path.join(tmp, "rsh")} wo ${tmp}`,
      }),
    );
  }
  const at = (iso: string): string => String(Math.floor(Date.parse(iso) / 1000));
  const backupRun = (cmd: string, now: string, ...rest: string[]) =>
    run("bash", [backup, cmd, path.join(tmp, "job.env"), ...rest], {
      env: { HASTACK_NOW: at(now) },
      deadline: Date.now() + 30_000,
    });
  const snapshots = (root: string): string[] =>
    fs.existsSync(path.join(root, job.name))
      ? fs
          .readdirSync(path.join(root, job.name))
          .filter((d) => /^\d{8}T\d{6}Z$/.test(d))
          .sort()
      : [];

  it("takes a verified snapshot, replicates it with hard links kept, and restores it exactly", async () => {
    expect((await backupRun("run", "2024-05-01T00:00:00Z")).code).to.equal(0);
    fs.writeFileSync(path.join(source, "u1", "Maildir", "cur", "new-one:2,S"), "hello");
    const second = await backupRun("run", "2024-05-02T00:00:00Z");
    expect(second.code, second.stderr).to.equal(0);
    expect(snapshots(standby)).to.deep.equal(["20240501T000000Z", "20240502T000000Z"]);
    // Success metrics for monitoring, in node_exporter's textfile format (docs/outputs.md).
    const metric = (f: string) => fs.readFileSync(path.join(tmp, "metrics", f), "utf8");
    expect(metric("hastack_backup_mail-maildirs.prom")).to.match(
      /^hastack_backup_last_success_timestamp_seconds\{service="mail",backup="mail-maildirs"\} \d{10}\n$/,
    );
    expect(metric("hastack_replication_nas.prom")).to.match(
      /^hastack_replication_last_success_timestamp_seconds\{service="nas",side="standby"\} \d{10}\n$/,
    );
    // Unchanged mail is one inode shared by both snapshots, on the standby too (-H).
    const f = (root: string, snap: string) =>
      path.join(root, job.name, snap, "data", "u1", "Maildir", "cur", "m0:2,S");
    expect(fs.statSync(f(standby, "20240501T000000Z")).ino).to.equal(
      fs.statSync(f(standby, "20240502T000000Z")).ino,
    );
    const dest = path.join(tmp, "restored");
    const r = await backupRun("restore", "2024-05-02T00:00:00Z", "latest", dest);
    expect(r.code, r.stderr).to.equal(0);
    expect(compareTrees(hashTree(source, []), hashTree(dest, []))).to.deep.equal([]);
  });

  it("verify catches a snapshot that was altered after it was taken", async () => {
    expect((await backupRun("run", "2024-05-01T00:00:00Z")).code).to.equal(0);
    const victim = path.join(nas, job.name, "latest", "data", "u1", "Maildir", "cur", "m3:2,S");
    fs.writeFileSync(victim, "tampered");
    const r = await backupRun("verify", "2024-05-01T00:00:00Z");
    expect(r.code).to.equal(1);
    expect(r.stderr).to.contain("does not match its MANIFEST");
  });

  it("prunes snapshots past retention (14 days) on both NAS, never the latest", async () => {
    for (const day of ["2024-05-01", "2024-05-10", "2024-05-20"]) {
      expect((await backupRun("run", `${day}T00:00:00Z`)).code).to.equal(0);
    }
    // On 2024-05-20 the cutoff is 2024-05-06: only 05-01 goes.
    expect(snapshots(nas)).to.deep.equal(["20240510T000000Z", "20240520T000000Z"]);
    expect(snapshots(standby)).to.deep.equal(["20240510T000000Z", "20240520T000000Z"]);
    // Long after, with no new run: everything but latest goes.
    expect((await backupRun("prune", "2024-08-01T00:00:00Z")).code).to.equal(0);
    expect(snapshots(nas)).to.deep.equal(["20240520T000000Z"]);
  });

  it("does nothing on the NAS that is not active", async () => {
    writeEnvs("never", source);
    const r = await backupRun("run", "2024-05-01T00:00:00Z");
    expect(r.code).to.equal(0);
    expect(r.stderr).to.contain("not the active one");
    expect(snapshots(nas)).to.deep.equal([]);
    expect(fs.existsSync(path.join(tmp, "metrics"))).to.equal(false);
  });

  it("a failed pull keeps .incoming for the next run and never moves latest", async () => {
    expect((await backupRun("run", "2024-05-01T00:00:00Z")).code).to.equal(0);
    writeEnvs("always", path.join(tmp, "no-such-dir"));
    const failed = await backupRun("run", "2024-05-02T00:00:00Z");
    expect(failed.code).to.equal(1);
    expect(failed.stderr).to.match(/rsync from mail:.* failed .*the next run resumes/);
    expect(fs.readlinkSync(path.join(nas, job.name, "latest"))).to.equal("20240501T000000Z");
    expect(fs.existsSync(path.join(nas, job.name, ".incoming"))).to.equal(true);
    // Replication never carries a run in progress.
    await run("bash", [replicateScript, path.join(tmp, "replicate.env")], {
      deadline: Date.now() + 30_000,
    });
    expect(fs.existsSync(path.join(standby, job.name, ".incoming"))).to.equal(false);
    writeEnvs("always", source);
    expect((await backupRun("run", "2024-05-03T00:00:00Z")).code).to.equal(0);
    expect(snapshots(nas)).to.deep.equal(["20240501T000000Z", "20240503T000000Z"]);
  });

  // Issue 15: rrsync -wo locks its directory, so two transfers into one place collide; and two
  // jobs reading one source (pbx-config and pbx-spool) should not run side by side.
  describe("collisions: nothing is lost to a busy source or a busy peer", () => {
    /** Holds flock(1) on `target` (the lock rrsync takes on its directory) until released. */
    function holdLock(target: string): { release: () => Promise<void> } {
      // -o: only flock itself holds the lock, so ending its process group releases it.
      const child = spawn("flock", ["-o", target, "sleep", "60"], {
        stdio: "ignore",
        detached: true,
      });
      return {
        release: () =>
          new Promise((res) => {
            if (child.exitCode !== null) {
              return res();
            }
            child.once("exit", () => res());
            process.kill(-child.pid!, "SIGTERM");
          }),
      };
    }
    const fast = { HASTACK_RSYNC_RETRY_DELAY: "1" };

    it("a push into a directory another rrsync holds waits and then succeeds (bounded retries)", async () => {
      // The shim's rrsync root is tmp: the replication's `rrsync -wo` locks it, as a real
      // standby NAS's does.
      const held = holdLock(tmp);
      await new Promise((res) => setTimeout(res, 300));
      const noRetry = await run("bash", [backup, "run", path.join(tmp, "job.env")], {
        env: { HASTACK_NOW: at("2024-05-01T00:00:00Z"), HASTACK_RSYNC_RETRIES: "0" },
        deadline: Date.now() + 30_000,
      });
      expect(noRetry.code, "without retries the busy peer fails the run").not.to.equal(0);
      expect(noRetry.stderr).to.contain("Another instance of rrsync");
      // The next run meets the busy peer, retries, and gets through once the lock is gone.
      const child = spawn("bash", [backup, "run", path.join(tmp, "job.env")], {
        env: {
          ...process.env,
          HASTACK_LIB: HASTACK_LIB_FILE,
          HASTACK_NOW: at("2024-05-02T00:00:00Z"),
          ...fast,
        },
        stdio: ["ignore", "ignore", "pipe"],
      });
      let stderr = "";
      child.stderr.on("data", (d) => (stderr += d));
      const code = new Promise<number | null>((res) => child.once("close", (c) => res(c)));
      const until = Date.now() + 60_000;
      while (!/busy with another transfer; retry 1\/8/.test(stderr) && Date.now() < until) {
        await new Promise((res) => setTimeout(res, 100));
      }
      expect(stderr, "the run met the busy peer and said it retries").to.match(
        /busy with another transfer; retry 1\/8/,
      );
      await held.release();
      expect(await code, stderr).to.equal(0);
      expect(snapshots(standby)).to.include("20240502T000000Z");
    });

    it("a job waits while another job reads the same source, and says so when the wait runs out", async () => {
      const lock = path.join(nas, ".locks", "source-mail.lock");
      fs.mkdirSync(path.dirname(lock), { recursive: true });
      const held = holdLock(lock);
      await new Promise((res) => setTimeout(res, 300));
      const timedOut = await run("bash", [backup, "run", path.join(tmp, "job.env")], {
        env: { HASTACK_NOW: at("2024-05-01T00:00:00Z"), SOURCE_LOCK_WAIT_SECONDS: "1" },
        deadline: Date.now() + 30_000,
      });
      expect(timedOut.code).to.equal(1);
      expect(timedOut.stderr).to.contain("another job still reads mail after 1 s");
      const pending = run("bash", [backup, "run", path.join(tmp, "job.env")], {
        env: { HASTACK_NOW: at("2024-05-02T00:00:00Z") },
        deadline: Date.now() + 60_000,
      });
      await new Promise((res) => setTimeout(res, 1500));
      expect(snapshots(nas), "no pull while the source is busy").to.deep.equal([]);
      await held.release();
      const r = await pending;
      expect(r.code, r.stderr).to.equal(0);
      expect(snapshots(nas)).to.deep.equal(["20240502T000000Z"]);
    });

    it("two jobs started together against one source both succeed and both reach the standby", async () => {
      const pbxJobs = backupJobs(input)
        .filter((j) => j.service === "pbx")
        .slice(0, 2);
      const envs = pbxJobs.map((j) => {
        const file = path.join(tmp, `${j.name}.env`);
        fs.writeFileSync(
          file,
          renderJobEnv(j, {
            backupRoot: nas,
            nasServiceName: "nas.example.test",
            activeCheck: "always",
            rsyncRsh: `${path.join(tmp, "rsh")} ro ${tmp}`,
            sourceHost: "pbx",
            sourcePath: source,
            replicateEnvFile: path.join(tmp, "replicate.env"),
            replicateCommand: replicateScript,
            textfileDir: path.join(tmp, "metrics"),
          }),
        );
        return file;
      });
      const results = await Promise.all(
        envs.map((env) =>
          run("bash", [backup, "run", env], {
            env: { HASTACK_NOW: at("2024-05-01T00:00:00Z"), ...fast },
            deadline: Date.now() + 60_000,
          }),
        ),
      );
      results.forEach((r, i) => expect(r.code, `${pbxJobs[i].name}: ${r.stderr}`).to.equal(0));
      for (const j of pbxJobs) {
        for (const root of [nas, standby]) {
          expect(fs.readlinkSync(path.join(root, j.name, "latest")), `${root} ${j.name}`).to.equal(
            "20240501T000000Z",
          );
        }
      }
      // The lock files stay on the active NAS: replication never carries them.
      expect(fs.existsSync(path.join(standby, ".locks"))).to.equal(false);
    });
  });
});
