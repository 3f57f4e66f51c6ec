// The NAS's pulls pin the host keys the stack generated (issue 13: no `accept-new` anywhere): the
// real server/nas/hastack-backup.sh, with the env file and remote shell components/backup-jobs.ts
// renders, pulls over real ssh/rsync from a real sshd on loopback. The sources' known_hosts
// comes from SSM (a stand-in `aws` answering from a file) before each pull. A changed host key,
// or a host the stack never pinned, is refused — and nothing is learned from it.
import { expect } from "chai";
import { ChildProcess, spawn, spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import {
  BackupJob,
  defaultRsyncRsh,
  renderJobEnv,
  SOURCES_KNOWN_HOSTS_PATH,
} from "../../../components/backup-jobs";
import { renderPbxSyncEnv } from "../../../components/pbx";
import { replicatedSet, syncPlan } from "../../../components/pbx-replicated-set";
import { PROJECT_DIR } from "../../support/stack-files";
import { freePort } from "../../../lib/rehearse/drill";
import { keygen } from "../../support/ssh-keys";

const SCRIPT = path.join(PROJECT_DIR, "server", "nas", "hastack-backup.sh");
const LIB = path.join(PROJECT_DIR, "server", "lib", "hastack.sh");
const PARAMETER = "/hastack/test/nas/ssh-known-hosts-sources";

describe("NAS pulls pin the sources' host keys (real sshd on loopback)", function () {
  this.timeout(180_000);
  let dir: string;
  let port: number;
  let sshd: ChildProcess | undefined;
  let keyA: string;
  let keyB: string;
  const f = (...p: string[]) => path.join(dir, ...p);

  /** sshd on 127.0.0.1:port presenting `hostKey`, letting the NAS's client key in as root. */
  async function startSshd(hostKey: string): Promise<void> {
    sshd?.kill("SIGTERM");
    const sshdBin = ["/usr/sbin/sshd", "/usr/bin/sshd"].find((p) => fs.existsSync(p));
    expect(sshdBin, "sshd (Debian package openssh-server)").to.not.equal(undefined);
    fs.mkdirSync("/run/sshd", { recursive: true });
    sshd = spawn(sshdBin!, [
      "-D",
      "-e",
      "-f",
      "/dev/null",
      "-o",
      `HostKey=${hostKey}`,
      "-o",
      `ListenAddress=127.0.0.1:${port}`,
      "-o",
      "PidFile=none",
      "-o",
      `AuthorizedKeysFile=${f("authorized_keys")}`,
      "-o",
      "StrictModes=no",
      "-o",
      "PermitRootLogin=prohibit-password",
      "-o",
      "UsePAM=no",
    ]);
    // Bounded wait until it serves the expected key.
    const want = fs.readFileSync(`${hostKey}.pub`, "utf8").split(" ").slice(0, 2).join(" ");
    for (let i = 0; i < 60; i++) {
      const scan = spawnSync("ssh-keyscan", ["-T", "5", "-p", String(port), "127.0.0.1"], {
        encoding: "utf8",
      });
      if (scan.stdout.includes(want.split(" ")[1])) {
        return;
      }
      await new Promise((res) => setTimeout(res, 500));
    }
    throw new Error("sshd did not come up serving the expected key");
  }

  const job: BackupJob = {
    service: "mail",
    name: "mail-maildirs",
    description: "test",
    kind: "rsync",
    sourceHost: "127.0.0.1",
    sourcePath: "/unused",
    excludes: [],
    intervalHours: 1,
    retentionDays: 7,
  };

  function runBackup(): { status: number | null; stderr: string } {
    const env = renderJobEnv(job, {
      nasServiceName: "nas.example.co.id",
      activeCheck: "always",
      backupRoot: f("backups"),
      sourcePath: f("source"),
      replicateAfter: false,
      textfileDir: f("metrics"),
      knownHostsParameter: PARAMETER,
      knownHostsFile: f("known_hosts"),
      // The rendered remote shell, pointed at the test port.
      rsyncRsh: `${defaultRsyncRsh(f("nas-key"), f("known_hosts"))} -p ${port}`,
    });
    fs.writeFileSync(f("job.env"), env);
    const r = spawnSync("bash", [SCRIPT, "run", f("job.env")], {
      encoding: "utf8",
      env: {
        ...process.env,
        PATH: `${f("bin")}:${process.env.PATH}`,
        HOME: f("home"),
        SSM_FILE: f("ssm-known-hosts"),
        HASTACK_LIB: LIB,
        HASTACK_AWS_REGION: "ap-southeast-3",
        HASTACK_RSYNC_RETRIES: "0",
      },
    });
    return { status: r.status, stderr: r.stderr };
  }

  const snapshots = () =>
    fs.existsSync(f("backups", job.name))
      ? fs.readdirSync(f("backups", job.name)).filter((n) => /^\d/.test(n))
      : [];

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "hastack-pinned-"));
    for (const d of ["bin", "home", "source", "backups", "metrics"]) {
      fs.mkdirSync(f(d));
    }
    fs.writeFileSync(f("source", "mail.eml"), "Subject: kept\n\nbody\n");
    keyA = keygen(f("host-a"));
    keyB = keygen(f("host-b"));
    fs.writeFileSync(f("authorized_keys"), `${keygen(f("nas-key"))}\n`);
    // `aws ssm get-parameter … --name NAME …`: the stand-in answers from $SSM_FILE for our name.
    fs.writeFileSync(
      f("bin", "aws"),
      `#!/bin/bash\nwhile [ $# -gt 0 ]; do [ "$1" = --name ] && name=$2; shift; done\n` +
        `[ "$name" = ${PARAMETER} ] && [ -s "$SSM_FILE" ] && cat "$SSM_FILE" || exit 254\n`,
      { mode: 0o755 },
    );
    port = await freePort();
  });

  after(() => {
    sshd?.kill("SIGTERM");
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it("renders no accept-new: StrictHostKeyChecking=yes with the pinned file", () => {
    const env = renderJobEnv(job, { nasServiceName: "nas.example.co.id" });
    expect(env).to.contain("StrictHostKeyChecking=yes");
    expect(env).to.contain(`UserKnownHostsFile=${SOURCES_KNOWN_HOSTS_PATH}`);
    expect(env).not.to.contain("accept-new");
    const pbx = renderPbxSyncEnv({
      serviceName: "pbx.example.co.id",
      peer: "pbx2.internal.example.co.id",
      peerSide: "standby",
      plan: syncPlan(replicatedSet("freepbx")),
    });
    expect(pbx).to.contain("StrictHostKeyChecking=yes");
    expect(pbx).not.to.contain("accept-new");
    const shipped = spawnSync("grep", ["-rl", "accept-new", "server", "components"], {
      cwd: PROJECT_DIR,
      encoding: "utf8",
    });
    expect(shipped.stdout, "files that still trust a first-seen key").to.equal("");
  });

  it("pulls from the source whose key the stack pinned (the key arrives from SSM)", async () => {
    await startSshd(f("host-a"));
    fs.writeFileSync(
      f("ssm-known-hosts"),
      `mail.internal.example.co.id,[127.0.0.1]:${port} ${keyA}\n`,
    );
    const r = runBackup();
    expect(r.status, r.stderr).to.equal(0);
    expect(snapshots()).to.have.length(1);
    expect(fs.readFileSync(f("known_hosts"), "utf8")).to.contain(keyA.split(" ")[1]);
  });

  it("refuses the source when its host key changed, and learns nothing", async () => {
    await startSshd(f("host-b"));
    const before = fs.readFileSync(f("known_hosts"), "utf8");
    const r = runBackup();
    expect(r.status).to.not.equal(0);
    expect(r.stderr).to.match(
      /REMOTE HOST IDENTIFICATION HAS CHANGED|Host key verification failed/,
    );
    expect(snapshots()).to.have.length(1);
    expect(fs.readFileSync(f("known_hosts"), "utf8")).to.equal(before);
    expect(fs.readFileSync(f("known_hosts"), "utf8")).not.to.contain(keyB.split(" ")[1]);
  });

  it("refuses a host the stack never pinned (no first-use trust), keeping the last good keys", async () => {
    // SSM unreadable: the last good copy stays; it does not list this port's host at all.
    fs.writeFileSync(f("ssm-known-hosts"), "");
    fs.writeFileSync(f("known_hosts"), `mail.internal.example.co.id ${keyA}\n`);
    const r = runBackup();
    expect(r.status).to.not.equal(0);
    expect(r.stderr).to.contain("keeping");
    expect(r.stderr).to.match(/Host key verification failed|No ED25519 host key is known/);
    expect(fs.readFileSync(f("known_hosts"), "utf8")).to.equal(
      `mail.internal.example.co.id ${keyA}\n`,
    );
    expect(snapshots()).to.have.length(1);
  });
});
