// Issue 11: the NAS must be able to pull the Maildirs, and nothing else. The mail server's own
// refresh script (server/mail/hastack-mail-refresh.sh) installs the NAS's public key from SSM
// into root's authorized_keys; a real sshd on loopback then serves the NAS job's rsync through
// that line's forced command (rrsync -ro): the Maildirs come across byte for byte, while
// reading the users file, writing into the mail root and a malformed key are all refused.
import { expect } from "chai";
import { spawn, ChildProcess, spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { backupJobs } from "../../../components/backup-jobs";
import { PRODUCTION_LAYOUT } from "../../../components/mail";
import {
  canConnect,
  DOMAIN,
  freePort,
  MailServer,
  MailWorld,
  requireBinaries,
  run,
  stopProcess,
  waitFor,
} from "../../support/mail-harness";

const MARK = " hastack-mail-nas-backup";

describe("NAS backup pulls from a mail server (rrsync -ro through a real sshd)", function () {
  let world: MailWorld;
  let server: MailServer;
  let sshd: ChildProcess | undefined;
  let nasKey: string;
  let sshPort: number;
  let sshdLog: string;

  before(async function () {
    requireBinaries();
    for (const bin of ["/usr/sbin/sshd", "ssh", "ssh-keygen", "rsync", "/usr/bin/rrsync"]) {
      const found = spawnSync("sh", ["-c", `command -v ${bin}`]).status === 0;
      if (!found) {
        throw new Error(
          `${bin} not found: install openssh-server openssh-client rsync (test/install-deps.sh)`,
        );
      }
    }
    world = await MailWorld.create();
    nasKey = path.join(world.root, "nas_key");
    await run("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "nas@test", "-f", nasKey]);
    // What NasBackups stores at /hastack/mail/nas-backup-ssh-public-key.
    world.setParameter("nas-backup-ssh-public-key", fs.readFileSync(`${nasKey}.pub`, "utf8"));
    await world.setUsers({ [`alice@${DOMAIN}`]: "secret-a" });
    // Starting runs the refresh once, as the first boot does.
    server = await world.server("mx1", "primary", world.ips[0], { postfix: false });
    await server.deliverLda(`alice@${DOMAIN}`, "nasbackup1");
    await server.deliverLda(`alice@${DOMAIN}`, "nasbackup2");

    // A real sshd on the server's loopback address, reading the authorized_keys the refresh
    // script wrote (root's, in production; the server's own directory here).
    fs.mkdirSync("/run/sshd", { recursive: true, mode: 0o755 });
    const hostKey = path.join(world.root, "ssh_host_ed25519_key");
    await run("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", hostKey]);
    sshPort = await freePort(server.ip);
    const config = path.join(world.root, "sshd_config");
    fs.writeFileSync(
      config,
      [
        `Port ${sshPort}`,
        `ListenAddress ${server.ip}`,
        `HostKey ${hostKey}`,
        `AuthorizedKeysFile ${path.join(server.layout.backupSshDir, "authorized_keys")}`,
        `PidFile ${path.join(world.root, "sshd.pid")}`,
        "StrictModes no",
        "UsePAM no",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "PermitRootLogin prohibit-password",
        "LogLevel VERBOSE",
        "",
      ].join("\n"),
    );
    sshdLog = path.join(world.root, "sshd.log");
    sshd = spawn("/usr/sbin/sshd", ["-D", "-f", config, "-E", sshdLog], { stdio: "ignore" });
    await waitFor(
      "sshd",
      () => canConnect(server.ip, sshPort),
      20000,
      () => (fs.existsSync(sshdLog) ? fs.readFileSync(sshdLog, "utf8") : ""),
    );
  });

  after(async function () {
    await stopProcess(sshd, 5000);
    await world?.dispose();
  });

  const rsh = (): string =>
    `ssh -i ${nasKey} -p ${sshPort} -o BatchMode=yes -o StrictHostKeyChecking=no ` +
    `-o UserKnownHostsFile=/dev/null -o ConnectTimeout=20 -o LogLevel=ERROR`;

  /** The NAS job's pull (hastack-backup pull_rsync's flags), from `remote` into `dest`. */
  async function pull(remote: string, dest: string): Promise<{ code: number; stderr: string }> {
    fs.mkdirSync(dest, { recursive: true });
    try {
      await run(
        "rsync",
        [
          "-aH",
          "--numeric-ids",
          "--delete",
          "--partial-dir=.rsync-partial",
          "--timeout=600",
          "-e",
          rsh(),
          `root@${server.ip}:${remote}`,
          dest,
        ],
        { timeout: 120000 },
      );
      return { code: 0, stderr: "" };
    } catch (e) {
      const err = e as { code?: number; stderr?: string };
      return { code: err.code ?? -1, stderr: err.stderr ?? "" };
    }
  }

  function authorizedKeys(): string[] {
    return fs
      .readFileSync(path.join(server.layout.backupSshDir, "authorized_keys"), "utf8")
      .split("\n")
      .filter((l) => l !== "");
  }

  it("the NAS's job reads the mail root, the same path this server's layout keeps mail in", () => {
    const [mailJob] = backupJobs({
      domain: DOMAIN,
      hostnames: { mail: "mail", mysql: "db", pbx: "pbx" },
      intervalHours: { mail: 24, mysql: 6, pbx: 24 },
      retentionDays: { mail: 14, mysql: 30, pbx: 30 },
      databases: [],
    }).filter((j) => j.service === "mail");
    expect(mailJob.sourcePath).to.equal(PRODUCTION_LAYOUT.mailRoot);
  });

  it("installs the NAS key once, forced through rrsync -ro under the mail root", async () => {
    const other = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOtherAdminKeyOnlyForThisTest admin@office";
    fs.appendFileSync(path.join(server.layout.backupSshDir, "authorized_keys"), `${other}\n`);
    await server.script("hastack-mail-refresh");
    const lines = authorizedKeys();
    const nasLines = lines.filter((l) => l.endsWith(MARK));
    expect(nasLines).to.have.length(1);
    const pub = fs.readFileSync(`${nasKey}.pub`, "utf8").split(" ").slice(0, 2).join(" ");
    expect(nasLines[0]).to.equal(
      `command="/usr/bin/rrsync -ro -absolute ${server.layout.mailRoot}",restrict ${pub}${MARK}`,
    );
    expect(lines).to.include(other);
  });

  it("the NAS pulls every Maildir file byte for byte through the forced command", async () => {
    const dest = path.join(world.root, "nas-copy");
    const r = await pull(`${server.layout.mailRoot}/`, `${dest}/`);
    expect(r.code, r.stderr).to.equal(0);
    const files = (dir: string): string[] =>
      fs
        .readdirSync(dir, { recursive: true, withFileTypes: true })
        .filter((e) => e.isFile())
        .map((e) => path.relative(dir, path.join(e.parentPath ?? e.path, e.name)))
        .filter((f) => /\/Maildir\/(cur|new)\//.test(f))
        .sort();
    const source = files(server.layout.mailRoot);
    expect(source.length).to.be.greaterThanOrEqual(2);
    expect(files(dest)).to.deep.equal(source);
    for (const f of source) {
      const copy = fs.readFileSync(path.join(dest, f));
      expect(copy.equals(fs.readFileSync(path.join(server.layout.mailRoot, f))), f).to.equal(true);
    }
  });

  it("refuses to read outside the mail root (the users file with the password hashes)", async () => {
    const r = await pull(server.layout.usersFile, path.join(world.root, "stolen") + "/");
    expect(r.code).to.not.equal(0);
    expect(fs.readdirSync(path.join(world.root, "stolen"))).to.deep.equal([]);
  });

  it("refuses to write into the mail root (read-only)", async () => {
    const planted = path.join(world.root, "planted.eml");
    fs.writeFileSync(planted, "From: x\n\nplanted\n");
    let code = 0;
    try {
      await run(
        "rsync",
        ["-a", "-e", rsh(), planted, `root@${server.ip}:${server.layout.mailRoot}/`],
        {
          timeout: 120000,
        },
      );
    } catch (e) {
      code = (e as { code?: number }).code ?? -1;
    }
    expect(code).to.not.equal(0);
    expect(fs.existsSync(path.join(server.layout.mailRoot, "planted.eml"))).to.equal(false);
  });

  it("a parameter that is not an SSH public key changes nothing", async () => {
    const before = authorizedKeys();
    world.setParameter("nas-backup-ssh-public-key", 'ssh-ed25519 AAAA" ,command="/bin/sh"\n');
    const { stderr } = await server.script("hastack-mail-refresh");
    expect(stderr).to.contain("keeping the installed NAS key");
    expect(authorizedKeys()).to.deep.equal(before);
    world.setParameter("nas-backup-ssh-public-key", fs.readFileSync(`${nasKey}.pub`, "utf8"));
  });
});
