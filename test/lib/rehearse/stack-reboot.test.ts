// A rehearsal server killed like a power-off boots again on the same disk and addresses
// (reboot.ts, issue 12's fallbacks), each container in a cgroup of its own (container.ts: the
// 219/CGROUP failures came from containers sharing one), and the teardown removes all of it. A
// real container on the base image (a small one: the stack's is not needed for this), its systemd
// on cgroup v2 as on an instance, so a service stops when its last process ends. Needs root
// and the tools test/install-deps.sh installs; skipped saying why otherwise.
import { expect } from "chai";
import * as crypto from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { execFileSync } from "child_process";
import { missingTools } from "../../../lib/rehearse/stack";
import {
  ContainerSpec,
  cgroupHierarchies,
  machineName,
  startContainer,
  writeServers,
} from "../../../lib/rehearse/stack/container";
import { ensureImage } from "../../../lib/rehearse/stack/image";
import { bootServerAgain, readServers, waitServerUp } from "../../../lib/rehearse/stack/reboot";
import { Teardown } from "../../../lib/rehearse/stack/teardown";

function inside(leader: number, argv: string[]): string {
  return execFileSync("nsenter", ["-t", String(leader), "-a", "--", ...argv], {
    encoding: "utf8",
  });
}

/** The process's cgroup in the unified hierarchy (cgroup v2), where the container's systemd runs. */
function unifiedCgroup(pid: number): string {
  return /^0::(.*)$/m.exec(fs.readFileSync(`/proc/${pid}/cgroup`, "utf8"))?.[1] ?? "";
}

describe("rehearse stack: readServers (a kept stack's containers, either state format)", () => {
  let dir: string;
  beforeEach(() => {
    const parent = fs.mkdtempSync(path.join(os.tmpdir(), "hs-reboot-"));
    dir = path.join(parent, "prod");
    fs.mkdirSync(dir);
  });
  afterEach(() => fs.rmSync(path.dirname(dir), { recursive: true, force: true }));

  it("derives machine, namespace and disk of a stack booted before servers.json", () => {
    const made = [
      { kind: "dir", path: dir },
      { kind: "netns", name: "hsr-x" },
      { kind: "process", pid: 1, what: "named" },
      { kind: "process", pid: 2, what: "systemd-nspawn mail-primary" },
      { kind: "process", pid: 3, what: "systemd-nspawn mysql-standby" },
      // booted again after a drill: not a third server
      { kind: "process", pid: 4, what: "systemd-nspawn mail-primary" },
    ];
    fs.writeFileSync(path.join(dir, "made.json"), JSON.stringify({ made }));
    fs.writeFileSync(
      path.join(dir, "standins.json"),
      JSON.stringify({
        servers: [
          { name: "mysql-standby", privateIp: "10.20.2.30" },
          { name: "mail-primary", privateIp: "10.20.1.10" },
        ],
      }),
    );
    const id = crypto
      .createHash("sha256")
      .update(`${path.dirname(dir)}\0prod`)
      .digest("hex")
      .slice(0, 6);
    const r = readServers(dir);
    expect(r.id).to.equal(id);
    expect(r.servers.map((s) => [s.name, s.machine, s.ns, s.privateIp])).to.deep.equal([
      ["mail-primary", "hs-mail-primary", `hss-${id}-0`, "10.20.1.10"],
      ["mysql-standby", "hs-mysql-standby", `hss-${id}-1`, "10.20.2.30"],
    ]);
    expect(r.servers[1].root).to.equal(path.join(dir, "servers", "mysql-standby", "root"));
  });

  it("reads servers.json when the stack wrote one", () => {
    const spec: ContainerSpec = {
      name: "nas-primary",
      machine: machineName("abc123", "nas-primary"),
      root: "/r",
      ns: "hss-abc123-6",
      data: "/d",
      console: "/c",
      privateIp: "10.20.1.60",
    };
    writeServers(dir, [spec], "abc123");
    expect(readServers(dir)).to.deep.equal({ id: "abc123", servers: [spec] });
    expect(spec.machine).to.equal("hs-abc123-nas-primary");
  });
});

describe("rehearse stack: cgroupHierarchies (where nspawn places a container)", () => {
  it("finds name=systemd and cgroup2 on a hybrid host, with this process's path in each", () => {
    const mountinfo = [
      "30 25 0:26 / /sys/fs/cgroup ro - tmpfs tmpfs ro,mode=755",
      "31 30 0:27 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw",
      "32 30 0:28 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,xattr,name=systemd",
      "33 30 0:29 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory",
    ].join("\n");
    const own = "9:name=systemd:/a\n4:memory:/m\n0::/b\n";
    expect(cgroupHierarchies(mountinfo, own)).to.deep.equal([
      { mount: "/sys/fs/cgroup/unified", own: "/b" },
      { mount: "/sys/fs/cgroup/systemd", own: "/a" },
    ]);
  });

  it("finds the one cgroup2 of a unified host", () => {
    const mountinfo = "30 25 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate";
    expect(cgroupHierarchies(mountinfo, "0::/system.slice/runner.service\n")).to.deep.equal([
      { mount: "/sys/fs/cgroup", own: "/system.slice/runner.service" },
    ]);
  });
});

describe("rehearse stack: bootServerAgain (a killed server boots again, same disk and address)", function () {
  this.timeout(3600_000);
  let dir = "";
  let td: Teardown | undefined;
  const ns = `hst-${process.pid}`;

  before(function () {
    if (process.getuid?.() !== 0) {
      process.stderr.write("bootServerAgain: skipped (needs root)\n");
      this.skip();
    }
    const missing = missingTools();
    if (missing.length > 0) {
      process.stderr.write(
        `bootServerAgain: skipped (missing ${missing.join(", ")}: run test/install-deps.sh)\n`,
      );
      this.skip();
    }
  });

  after(() => {
    if (td) {
      expect(td.runSync()).to.deep.equal([]);
    }
    if (dir) {
      expect(fs.existsSync(dir)).to.equal(false);
      expect(fs.existsSync(`/run/netns/${ns}`)).to.equal(false);
    }
  });

  it("keeps the disk, answers on the same address, and teardown removes every part", async () => {
    const image = ensureImage(["hello"], (l) => process.stderr.write(`  ${l}\n`));
    dir = fs.mkdtempSync("/var/lib/hastack-rehearsal-test-");
    td = new Teardown(path.join(dir, "made.json"));
    td.add({ kind: "dir", path: dir });
    execFileSync("ip", ["netns", "add", ns]);
    td.add({ kind: "netns", name: ns });
    execFileSync("ip", ["-n", ns, "link", "set", "lo", "up"]);
    const sdir = path.join(dir, "servers", "db");
    for (const d of ["upper", "work", "root", "data"]) {
      fs.mkdirSync(path.join(sdir, d), { recursive: true });
    }
    const root = path.join(sdir, "root");
    execFileSync("mount", [
      "-t",
      "overlay",
      "overlay",
      "-o",
      `lowerdir=${image.root},upperdir=${sdir}/upper,workdir=${sdir}/work`,
      root,
    ]);
    td.add({ kind: "mount", target: root });
    const seed = path.join(root, "var/lib/cloud/seed/nocloud");
    fs.mkdirSync(seed, { recursive: true });
    fs.writeFileSync(path.join(seed, "meta-data"), "instance-id: i-0reboot\nlocal-hostname: db\n");
    fs.writeFileSync(path.join(seed, "user-data"), "#cloud-config\n{}\n");
    // This container's namespace has only lo, where an instance (and the stack's servers) has a
    // NIC that networkd configures: without one, systemd-networkd-wait-online waits out its
    // 2-minute timeout before cloud-init's later stages, at each of the two boots.
    fs.mkdirSync(path.join(root, "etc/systemd/system"), { recursive: true });
    fs.symlinkSync(
      "/dev/null",
      path.join(root, "etc/systemd/system/systemd-networkd-wait-online.service"),
    );
    const id = crypto.randomBytes(3).toString("hex");
    const spec: ContainerSpec = {
      name: "db",
      machine: machineName(id, "db"),
      root,
      ns,
      data: path.join(sdir, "data"),
      console: path.join(sdir, "console.log"),
      // sshd listens on every address; the namespace's loopback is this server's.
      privateIp: "127.0.0.1",
    };
    writeServers(dir, [spec], id);
    const first = startContainer(spec, id, td);
    const up = await waitServerUp(spec, first, 900);
    expect(unifiedCgroup(up.leader)).to.match(new RegExp(`/hastack-${id}/db/payload/`));
    inside(up.leader, ["sh", "-c", "echo kept > /var/tmp/power-off-marker"]);
    // A service whose last process is not its main one (dovecot's log process outlives its
    // master) stops as soon as that process is gone: the container's systemd hears its cgroup
    // empty. On the legacy hierarchy it never did and waited out TimeoutStopSec, ending in
    // Result=timeout (90 s per `systemctl restart dovecot` on the mail servers).
    inside(up.leader, [
      "systemd-run",
      "--unit=hastack-linger",
      "-p",
      "TimeoutStopSec=120",
      "/bin/sh",
      "-c",
      `/bin/sh -c 'trap "sleep 1; exit 0" TERM; while :; do sleep 1; done' & exec sleep infinity`,
    ]);
    inside(up.leader, ["systemctl", "stop", "hastack-linger.service"]);
    expect(
      inside(up.leader, ["systemctl", "show", "-p", "Result", "hastack-linger.service"]).trim(),
    ).to.equal("Result=success");

    // A power-off: SIGKILL of its PID 1.
    process.kill(up.leader, "SIGKILL");
    const again = await bootServerAgain(dir, "db", () => undefined, { timeout: 900 });
    expect(again.leader).to.not.equal(up.leader);
    expect(again.nspawnPid).to.not.equal(first);
    expect(inside(again.leader, ["cat", "/var/tmp/power-off-marker"]).trim()).to.equal("kept");
    // The same network namespace as before, by inode.
    expect(fs.statSync(`/proc/${again.leader}/ns/net`).ino).to.equal(
      fs.statSync(`/run/netns/${ns}`).ino,
    );
    expect(unifiedCgroup(again.leader)).to.match(new RegExp(`/hastack-${id}/db/payload/`));
    const made = (
      JSON.parse(fs.readFileSync(path.join(dir, "made.json"), "utf8")) as {
        made: { kind: string; pid?: number; what?: string }[];
      }
    ).made;
    expect(made.filter((m) => m.what === "systemd-nspawn db").map((m) => m.pid)).to.deep.equal([
      first,
      again.nspawnPid,
    ]);
    // Booting it again while it runs is refused, naming it.
    let refused = "";
    await bootServerAgain(dir, "db", () => undefined, { timeout: 60 }).catch(
      (e: Error) => (refused = e.message),
    );
    expect(refused).to.match(/db is still running/);
    const cgroups = cgroupHierarchies().map((h) => path.join(h.mount, h.own, `hastack-${id}`));
    td.runSync();
    td = undefined;
    for (const g of cgroups) {
      expect(fs.existsSync(g), g).to.equal(false);
    }
  });
});
