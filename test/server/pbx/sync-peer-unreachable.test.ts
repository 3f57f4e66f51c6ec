// The PBX sync when its peer cannot be reached (server/pbx/hastack-pbx-sync.sh): on a first boot
// the primary's timer can run before the standby is up, and in an outage the standby is down.
// That is "try at the next timer" — exit 75 (EX_TEMPFAIL), which the unit counts as success
// (SuccessExitStatus=75) — with a log line naming the peer and the replication metric left to
// age; any other failure (a key the peer does not accept, a changed host key) still fails.
// Real ssh, rsync and sshd on loopback: the peer's authorized key forces rrsync as on the stack.
import { expect } from "chai";
import { ChildProcess, execFileSync, spawn, spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import {
  PBX_SYNC_SCRIPT_SOURCE,
  renderPbxSyncEnv,
  renderPbxSyncUnits,
} from "../../../components/pbx";
import { replicatedSet, syncPlan } from "../../../components/pbx-replicated-set";
import { SERVER_DIR } from "../../../components/server-files";
import { requireTools } from "../../../lib/rehearse/backup";
import { freePort } from "../../../lib/rehearse/drill";
import { keygen } from "../../support/ssh-keys";

const SCRIPT = path.join(SERVER_DIR, PBX_SYNC_SCRIPT_SOURCE);
const LIB = path.join(SERVER_DIR, "lib", "hastack.sh");
const PBX_SYNC_KEY_PATH_RE = /-i (\S+)/;

describe("PBX sync: an unreachable peer is 'try at the next timer' (real ssh, rsync, sshd)", function () {
  this.timeout(180_000);
  let dir: string;
  let port: number;
  let sshd: ChildProcess | undefined;
  const f = (...p: string[]) => path.join(dir, ...p);
  const metricFile = () => f("metrics", "hastack_replication_pbx.prom");

  async function stopSshd(): Promise<void> {
    const s = sshd;
    sshd = undefined;
    if (!s || s.exitCode !== null || s.signalCode !== null) {
      return;
    }
    const gone = new Promise((r) => s.once("exit", r));
    s.kill("SIGTERM");
    await gone;
  }

  /** sshd on 127.0.0.1:port presenting `hostKey`, with `authorizedKeys` for root. */
  async function startSshd(hostKey: string, authorizedKeys: string): Promise<void> {
    await stopSshd();
    fs.writeFileSync(f("authorized_keys"), authorizedKeys);
    const sshdBin = ["/usr/sbin/sshd", "/usr/bin/sshd"].find((p) => fs.existsSync(p));
    expect(sshdBin, "sshd (Debian package openssh-server)").to.not.equal(undefined);
    fs.mkdirSync("/run/sshd", { recursive: true });
    sshd = spawn(
      sshdBin!,
      [
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
      ],
      { stdio: "ignore" },
    );
    // Bounded wait until it serves the expected key.
    const want = fs.readFileSync(`${hostKey}.pub`, "utf8").split(" ")[1];
    for (let i = 0; i < 60; i++) {
      const scan = spawnSync("ssh-keyscan", ["-T", "5", "-p", String(port), "127.0.0.1"], {
        encoding: "utf8",
      });
      if (scan.stdout.includes(want)) {
        return;
      }
      await new Promise((res) => setTimeout(res, 500));
    }
    throw new Error("sshd did not come up serving the expected key");
  }

  /** The peer's authorized key for the sync, as the stack installs it: rrsync, write-only. */
  const syncKeyLine = (): string =>
    `command="/usr/bin/rrsync -wo -no-lock /",restrict ${fs.readFileSync(f("sync-key.pub"), "utf8").trim()}\n`;

  function sync(cmd: "sync" | "final" = "sync"): { status: number | null; stderr: string } {
    const r = spawnSync("bash", [SCRIPT, cmd, f("sync.env")], {
      encoding: "utf8",
      timeout: 120_000,
      env: {
        ...process.env,
        HASTACK_LIB: LIB,
        LOCK_FILE: f("sync.lock"),
        HOME: f("home"),
        HASTACK_RSYNC_RETRIES: "0",
      },
    });
    return { status: r.status, stderr: r.stderr };
  }

  before(async () => {
    requireTools({ rsync: "rsync", rrsync: "rsync", "ssh-keygen": "openssh-client" });
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "hastack-pbx-unreachable-"));
    for (const d of ["home", "src/etc/asterisk", "peer", "metrics"]) {
      fs.mkdirSync(f(d), { recursive: true });
    }
    fs.writeFileSync(f("src/etc/asterisk/pjsip.conf"), "[transport-udp]\ntype=transport\n");
    keygen(f("host-a"));
    keygen(f("host-b"));
    keygen(f("sync-key"));
    keygen(f("other-key"));
    port = await freePort();
    fs.writeFileSync(
      f("known_hosts"),
      `[127.0.0.1]:${port} ${fs.readFileSync(f("host-a.pub"), "utf8").trim()}\n`,
    );
    const plan = syncPlan(replicatedSet("freepbx"));
    const env = (rsh?: string) =>
      renderPbxSyncEnv({
        serviceName: "pbx.example.test",
        peer: "127.0.0.1",
        peerSide: "standby",
        plan,
        activeCheck: "always",
        syncRoot: f("src"),
        peerRoot: f("peer"),
        textfileDir: f("metrics"),
        rsyncRsh: rsh,
      });
    // The stack's own remote shell (BatchMode, pinned host keys, ConnectTimeout), pointed at
    // this test's key, known_hosts and port.
    fs.writeFileSync(f("sync.env"), env());
    const rendered = execFileSync(
      "bash",
      ["-c", '. "$1"; printf %s "$RSYNC_RSH"', "-", f("sync.env")],
      {
        encoding: "utf8",
      },
    );
    expect(rendered).to.match(/StrictHostKeyChecking=yes/);
    const rsh = `${rendered.replace(PBX_SYNC_KEY_PATH_RE, `-i ${f("sync-key")}`)} -o UserKnownHostsFile=${f("known_hosts")} -p ${port}`;
    fs.writeFileSync(f("sync.env"), env(rsh));
  });

  after(async () => {
    await stopSshd();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it("no sshd on the peer yet (first boot): exit 75, a line naming the peer, no metric, nothing pushed", () => {
    const r = sync();
    expect(r.status, r.stderr).to.equal(75);
    expect(r.stderr).to.match(/Connection refused/);
    expect(r.stderr).to.match(
      /hastack-pbx-sync: cannot reach the peer 127\.0\.0\.1 over ssh \(exit \d+\): nothing pushed, the next run tries again; last push never/,
    );
    expect(fs.existsSync(metricFile()), "no replication metric without a push").to.equal(false);
    expect(fs.readdirSync(f("peer"))).to.deep.equal([]);
    // The operator's handover sync says the same, and fails (not 0) for its caller.
    expect(sync("final").status).to.equal(75);
  });

  it("once the peer is up, the next run pushes and writes the metric", async () => {
    await startSshd(f("host-a"), syncKeyLine());
    const r = sync();
    expect(r.status, r.stderr).to.equal(0);
    expect(r.stderr).to.contain("pushed to 127.0.0.1");
    expect(fs.readFileSync(f("peer/etc/asterisk/pjsip.conf"), "utf8")).to.contain("transport");
    expect(fs.readFileSync(metricFile(), "utf8")).to.match(
      /^hastack_replication_last_success_timestamp_seconds\{service="pbx",side="standby"\} \d{10}\n$/,
    );
  });

  it("the peer down again: exit 75 naming the last push; the metric keeps its age", async () => {
    await stopSshd();
    const before = fs.readFileSync(metricFile(), "utf8");
    fs.writeFileSync(f("src/etc/asterisk/extensions.conf"), "[from-internal]\n");
    const r = sync();
    expect(r.status, r.stderr).to.equal(75);
    expect(r.stderr).to.match(/cannot reach the peer 127\.0\.0\.1 .* last push \d{4}-\d\d-\d\dT/);
    expect(fs.readFileSync(metricFile(), "utf8")).to.equal(before);
    expect(fs.existsSync(f("peer/etc/asterisk/extensions.conf"))).to.equal(false);
  });

  it("a peer that refuses the sync's key is a failure, not 'unreachable'", async () => {
    await startSshd(
      f("host-a"),
      `command="/usr/bin/rrsync -wo -no-lock /",restrict ${fs.readFileSync(f("other-key.pub"), "utf8").trim()}\n`,
    );
    const r = sync();
    expect(r.status).to.not.equal(0);
    expect(r.status).to.not.equal(75);
    expect(r.stderr).to.contain("Permission denied");
    expect(r.stderr).not.to.contain("cannot reach the peer");
  });

  it("a peer whose host key changed is a failure, not 'unreachable'", async () => {
    await startSshd(f("host-b"), syncKeyLine());
    const r = sync();
    expect(r.status).to.not.equal(0);
    expect(r.status).to.not.equal(75);
    expect(r.stderr).to.match(
      /REMOTE HOST IDENTIFICATION HAS CHANGED|Host key verification failed/,
    );
    expect(r.stderr).not.to.contain("cannot reach the peer");
  });

  it("the unit counts 75 as success and nothing else (systemd-analyze verify)", () => {
    requireTools({ "systemd-analyze": "systemd" });
    const [service] = renderPbxSyncUnits(15);
    const lines = service.content.split("\n").filter((l) => l.startsWith("SuccessExitStatus="));
    expect(lines).to.deep.equal(["SuccessExitStatus=75"]);
    const exec = /^ExecStart=(\S+)/m.exec(service.content)![1];
    const stub = f("hastack-pbx-sync");
    fs.writeFileSync(stub, "#!/bin/sh\n", { mode: 0o755 });
    const unit = f(path.basename(service.path));
    fs.writeFileSync(unit, service.content.replace(exec, stub));
    const r = spawnSync("systemd-analyze", ["verify", "--man=no", unit], {
      encoding: "utf8",
      timeout: 60_000,
    });
    expect(r.status, r.stderr).to.equal(0);
    expect(r.stderr).not.to.match(/SuccessExitStatus/);
  });
});
