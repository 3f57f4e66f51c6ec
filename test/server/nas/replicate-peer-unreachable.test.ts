// The NAS replication when the standby NAS cannot be reached (server/nas/hastack-nas-replicate.sh):
// on a first boot a backup job can finish before the standby NAS is up, and in an outage it is
// down. The snapshot is taken, so that is no failure of the job nor of this NAS: the replication
// exits 75 (EX_TEMPFAIL, SuccessExitStatus=75 on its unit) naming the standby, its metric ages,
// and the job that called it succeeds. A pull from a dead source still fails the job (an alert);
// a standby that answers but refuses still fails the replication. Real rsync and ssh (to a port
// nobody listens on); the job's source is pulled through rrsync as in nas-backup-jobs.test.ts.
import { expect } from "chai";
import { spawnSync } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import {
  BACKUP_SCRIPT_SOURCE,
  REPLICATE_SCRIPT_SOURCE,
  backupJobs,
  defaultRsyncRsh,
  renderJobEnv,
  renderReplicateEnv,
  renderReplicateUnits,
} from "../../../components/backup-jobs";
import { SERVER_DIR } from "../../../components/server-files";
import { RRSYNC_SHIM, requireTools } from "../../../lib/rehearse/backup";
import { freePort } from "../../../lib/rehearse/drill";

const BACKUP = path.join(SERVER_DIR, BACKUP_SCRIPT_SOURCE);
const REPLICATE = path.join(SERVER_DIR, REPLICATE_SCRIPT_SOURCE);
const LIB = path.join(SERVER_DIR, "lib", "hastack.sh");

describe("NAS replication: an unreachable standby NAS is 'try again', not a failed job (real rsync, ssh)", function () {
  this.timeout(120_000);
  let tmp: string;
  const f = (...p: string[]) => path.join(tmp, ...p);
  const job = backupJobs({
    domain: "example.co.id",
    hostnames: { mail: "mail", mysql: "db", pbx: "pbx" },
    intervalHours: { mail: 24, mysql: 6, pbx: 12 },
    retentionDays: { mail: 14, mysql: 30, pbx: 60 },
    databases: ["app"],
  })[0];

  before(() => requireTools({ rsync: "rsync", rrsync: "rsync", ssh: "openssh-client" }));

  beforeEach(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), "hastack-nas-unreachable-"));
    fs.mkdirSync(f("mail", "u1", "Maildir", "cur"), { recursive: true });
    fs.writeFileSync(f("mail", "u1", "Maildir", "cur", "m1:2,S"), crypto.randomBytes(2000));
    fs.mkdirSync(f("home"));
    fs.writeFileSync(f("rsh"), RRSYNC_SHIM, { mode: 0o755 });
    fs.writeFileSync(f("known_hosts"), "");
    // The stack's own remote shell for the replication, at a port where nothing listens.
    const port = await freePort();
    writeReplicateEnv(`${defaultRsyncRsh(f("nas-key"), f("known_hosts"))} -p ${port}`);
    fs.writeFileSync(
      f("job.env"),
      renderJobEnv(job, {
        backupRoot: f("nas1"),
        nasServiceName: "nas.example.test",
        activeCheck: "always",
        rsyncRsh: `${f("rsh")} ro ${tmp}`,
        sourceHost: "mail",
        sourcePath: f("mail"),
        replicateEnvFile: f("replicate.env"),
        replicateCommand: REPLICATE,
        textfileDir: f("metrics"),
      }),
    );
  });
  afterEach(() => fs.rmSync(tmp, { recursive: true, force: true }));

  function writeReplicateEnv(rsyncRsh: string): void {
    fs.writeFileSync(
      f("replicate.env"),
      renderReplicateEnv({
        nasServiceName: "nas.example.test",
        peer: "127.0.0.1",
        peerSide: "standby",
        textfileDir: f("metrics"),
        backupRoot: f("nas1"),
        peerRoot: f("nas2"),
        activeCheck: "always",
        rsyncRsh,
      }),
    );
  }

  const bash = (argv: string[]) =>
    spawnSync("bash", argv, {
      encoding: "utf8",
      timeout: 60_000,
      env: { ...process.env, HASTACK_LIB: LIB, HOME: f("home"), HASTACK_RSYNC_RETRIES: "0" },
    });
  const metric = (name: string) => f("metrics", name);

  it("replication alone: exit 75 with a line naming the standby NAS, no replication metric", () => {
    fs.mkdirSync(f("nas1", "x"), { recursive: true });
    const r = bash([REPLICATE, f("replicate.env")]);
    expect(r.status, r.stderr).to.equal(75);
    expect(r.stderr).to.match(/Connection refused/);
    expect(r.stderr).to.contain(
      "hastack-nas-replicate: cannot reach the standby NAS 127.0.0.1 over ssh",
    );
    expect(fs.existsSync(metric("hastack_replication_nas.prom"))).to.equal(false);
  });

  it("a backup job whose replication cannot reach the standby still succeeds: the snapshot is taken", () => {
    const r = bash([BACKUP, "run", f("job.env")]);
    expect(r.status, r.stderr).to.equal(0);
    expect(r.stderr).to.contain("cannot reach the standby NAS");
    expect(fs.readdirSync(f("nas1", job.name)).filter((d) => /^\d{8}T/.test(d))).to.have.length(1);
    expect(fs.existsSync(metric(`hastack_backup_${job.name}.prom`))).to.equal(true);
    expect(fs.existsSync(metric("hastack_replication_nas.prom"))).to.equal(false);
  });

  it("a standby that answers but refuses the copy fails the replication and the job", () => {
    // rrsync read-only on the far side: the connection is made, the write is refused.
    writeReplicateEnv(`${f("rsh")} ro ${tmp}`);
    const alone = bash([REPLICATE, f("replicate.env")]);
    expect(alone.status).to.not.equal(0);
    expect(alone.status).to.not.equal(75);
    expect(alone.stderr).not.to.contain("cannot reach");
    const r = bash([BACKUP, "run", f("job.env")]);
    expect(r.status).to.not.equal(0);
    expect(r.status).to.not.equal(75);
  });

  it("a pull from a dead source still fails the job (that is an alert)", async () => {
    const port = await freePort();
    fs.writeFileSync(
      f("job.env"),
      renderJobEnv(job, {
        backupRoot: f("nas1"),
        nasServiceName: "nas.example.test",
        activeCheck: "always",
        rsyncRsh: `${defaultRsyncRsh(f("nas-key"), f("known_hosts"))} -p ${port}`,
        sourceHost: "127.0.0.1",
        sourcePath: f("mail"),
        replicateEnvFile: f("replicate.env"),
        replicateCommand: REPLICATE,
        textfileDir: f("metrics"),
      }),
    );
    const r = bash([BACKUP, "run", f("job.env")]);
    expect(r.status).to.not.equal(0);
    expect(r.status).to.not.equal(75);
    expect(r.stderr).to.match(/rsync from 127\.0\.0\.1:.* failed/);
  });

  it("the replication unit counts 75 as success (systemd-analyze verify)", () => {
    requireTools({ "systemd-analyze": "systemd" });
    const service = renderReplicateUnits().find((u) => u.path.endsWith(".service"))!;
    expect(
      service.content.split("\n").filter((l) => l.startsWith("SuccessExitStatus=")),
    ).to.deep.equal(["SuccessExitStatus=75"]);
    const exec = /^ExecStart=(\S+)/m.exec(service.content)![1];
    fs.writeFileSync(f("replicate-stub"), "#!/bin/sh\n", { mode: 0o755 });
    const unit = f(path.basename(service.path));
    // srv-data.mount (After=) is only ordering: verify needs no such unit.
    fs.writeFileSync(unit, service.content.replace(exec, f("replicate-stub")));
    const r = spawnSync("systemd-analyze", ["verify", "--man=no", unit], {
      encoding: "utf8",
      timeout: 60_000,
    });
    expect(r.status, r.stderr).to.equal(0);
  });
});
