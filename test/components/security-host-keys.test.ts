// Host keys pinned (issue 13): server/common/hastack-install-host-key.sh installs the key the
// stack generated, and a real sshd then presents exactly that key (ssh-keyscan reads it), so the
// `hostKey` pinned on remote commands matches the server. The AWS CLI is the only stand-in: a
// script answering `aws ssm get-parameter` from files, as SSM would.
import { expect } from "chai";
import { ChildProcess, execFileSync, spawn, spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { PROJECT_DIR } from "../support/stack-files";
import { freePort } from "../../lib/rehearse/drill";

const SCRIPT = path.join(PROJECT_DIR, "server", "common", "hastack-install-host-key.sh");
const LIB = path.join(PROJECT_DIR, "server", "lib", "hastack.sh");

describe("host key installed at boot is the one sshd serves", function () {
  this.timeout(120_000);
  let dir: string;
  let sshd: ChildProcess | undefined;
  const run = (env: Record<string, string>) =>
    spawnSync(
      "bash",
      [SCRIPT, "/hastack/mail/ssh-host-key/primary", "/hastack/mail/ssh-known-hosts/primary"],
      {
        env: { ...process.env, ...env },
        encoding: "utf8",
      },
    );

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "hastack-hostkey-"));
    fs.mkdirSync(path.join(dir, "ssh"));
    fs.mkdirSync(path.join(dir, "bin"));
    fs.mkdirSync(path.join(dir, "ssm"));
    // The image's own keys, as cloud-init generated them.
    for (const t of ["rsa", "ecdsa", "ed25519"]) {
      execFileSync("ssh-keygen", [
        "-q",
        "-t",
        t,
        "-N",
        "",
        "-f",
        path.join(dir, "ssh", `ssh_host_${t}_key`),
      ]);
    }
    // What the stack put in SSM: a fresh ed25519 key and the peer's known_hosts line.
    execFileSync("ssh-keygen", [
      "-q",
      "-t",
      "ed25519",
      "-N",
      "",
      "-C",
      "",
      "-f",
      path.join(dir, "stack-key"),
    ]);
    fs.copyFileSync(path.join(dir, "stack-key"), path.join(dir, "ssm", "ssh-host-key"));
    fs.writeFileSync(
      path.join(dir, "ssm", "ssh-known-hosts"),
      `mx2.internal.example.co.id,10.20.1.11 ${fs.readFileSync(path.join(dir, "stack-key.pub"), "utf8").trim()}\n`,
    );
    fs.writeFileSync(
      path.join(dir, "bin", "aws"),
      `#!/bin/bash\n# aws ssm get-parameter … --name NAME …: the value from $SSM_DIR/<last path segment>\n` +
        `while [ $# -gt 0 ]; do [ "$1" = --name ] && name=$2; shift; done\n` +
        `cat "$SSM_DIR/$(basename "$(dirname "$name")")" 2>/dev/null || exit 254\n`,
      { mode: 0o755 },
    );
  });

  afterEach(() => {
    sshd?.kill("SIGTERM");
    sshd = undefined;
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const env = () => ({
    PATH: `${path.join(dir, "bin")}:${process.env.PATH}`,
    SSM_DIR: path.join(dir, "ssm"),
    HASTACK_LIB: LIB,
    HASTACK_SSH_DIR: path.join(dir, "ssh"),
    HASTACK_AWS_REGION: "ap-southeast-3",
    HASTACK_SSM_ATTEMPTS: "1",
  });

  it("installs the stack's key, drops other key types, pins the peer, and sshd serves that key", async () => {
    const r = run(env());
    expect(r.status, r.stderr).to.equal(0);
    const ssh = path.join(dir, "ssh");
    expect(fs.readdirSync(ssh).filter((f) => /rsa|ecdsa/.test(f))).to.deep.equal([]);
    expect(fs.statSync(path.join(ssh, "ssh_host_ed25519_key")).mode & 0o777).to.equal(0o600);
    const stackPub = fs
      .readFileSync(path.join(dir, "stack-key.pub"), "utf8")
      .trim()
      .split(" ")
      .slice(0, 2)
      .join(" ");
    expect(fs.readFileSync(path.join(ssh, "ssh_known_hosts"), "utf8")).to.contain(stackPub);

    const sshdBin = ["/usr/sbin/sshd", "/usr/bin/sshd"].find((p) => fs.existsSync(p));
    expect(sshdBin, "sshd (Debian package openssh-server)").to.not.equal(undefined);
    fs.mkdirSync("/run/sshd", { recursive: true });
    const port = await freePort();
    sshd = spawn(sshdBin!, [
      "-D",
      "-e",
      "-f",
      "/dev/null",
      "-o",
      `HostKey=${path.join(ssh, "ssh_host_ed25519_key")}`,
      "-o",
      `ListenAddress=127.0.0.1:${port}`,
      "-o",
      "PidFile=none",
    ]);
    // Bounded wait for the port, then read the key the server presents.
    let served = "";
    for (let i = 0; i < 60 && !served; i++) {
      const scan = spawnSync(
        "ssh-keyscan",
        ["-T", "5", "-p", String(port), "-t", "ed25519", "127.0.0.1"],
        {
          encoding: "utf8",
        },
      );
      served = scan.stdout.trim();
      if (!served) {
        await new Promise((res) => setTimeout(res, 500));
      }
    }
    expect(served.split(" ").slice(1, 3).join(" ")).to.equal(stackPub);
  });

  it("refuses a value that is not a private key and leaves the working key alone", () => {
    fs.writeFileSync(path.join(dir, "ssm", "ssh-host-key"), "not a key\n");
    const before = fs.readFileSync(path.join(dir, "ssh", "ssh_host_ed25519_key"), "utf8");
    const r = run(env());
    expect(r.status).to.not.equal(0);
    expect(fs.readFileSync(path.join(dir, "ssh", "ssh_host_ed25519_key"), "utf8")).to.equal(before);
    expect(
      fs.readdirSync(path.join(dir, "ssh")).filter((f) => f.startsWith(".hastack")),
    ).to.deep.equal([]);
  });

  it("fails naming the parameter when SSM has no key", () => {
    fs.rmSync(path.join(dir, "ssm", "ssh-host-key"));
    const r = run(env());
    expect(r.status).to.equal(1);
    expect(r.stderr).to.contain("cannot read /hastack/mail/ssh-host-key/primary");
  });
});
