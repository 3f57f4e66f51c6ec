// How one server of the stack rehearsal runs as a systemd-nspawn container (issue 11), in one
// place for the first boot (index.ts) and a boot after a power-off (reboot.ts).
//
// Two rehearsals may run side by side under different HASTACK_REHEARSAL_DIRs, so nothing here is
// machine-global: the machine name (nspawn's /run/systemd/nspawn/propagate/<machine>) carries the
// rehearsal's id, and each container gets a cgroup of its own. The cgroup is also what kept
// units from failing with 219/CGROUP: with --register=no --keep-unit nspawn puts the container
// in "<its own cgroup>/payload", and every nspawn started from the same process shares that
// cgroup, so every container's systemd managed ONE host cgroup: one container's
// systemd-tmpfiles-setup-dev.service removed /payload/system.slice/systemd-tmpfiles-setup-dev.service
// while another's was being started in it (a different unit each run, those that start at the same
// moment in every container). Each nspawn now starts in its own cgroup (per hierarchy nspawn
// manages: name=systemd and the unified one), so its payload is its own.
//
// The container's systemd runs on the unified hierarchy (cgroup v2), as Debian 12 does on an
// instance. On the legacy one (SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=0, what the first trial used)
// systemd inside a container never hears that a cgroup became empty (v1 tells that through a
// release agent, which is the host's), so stopping any service whose last process is not its main
// one waited out TimeoutStopSec: each `systemctl restart dovecot` on the mail servers took 90 s
// ("dovecot.service: State 'stop-sigterm' timed out. Killing."), twice per first boot. cgroup v2
// reports it through cgroup.events, inside the container too.
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import { spawn } from "child_process";
import type { Teardown } from "./teardown";

/** What a server's container needs to boot (kept in servers.json beside made.json). */
export interface ContainerSpec {
  name: string;
  /** nspawn's --machine: unique on the machine (the rehearsal's id is in it). */
  machine: string;
  /** The overlay mount the container boots from (its disk). */
  root: string;
  /** The network namespace (a name under /run/netns) holding its ens5. */
  ns: string;
  /** Bound at /srv/data (the data volume). */
  data: string;
  /** The console log (appended to). */
  console: string;
  privateIp: string;
}

/** A rehearsal's id: from its state directory's parent and its stack (namespaces, cgroups). */
export function rehearsalId(runRoot: string, stack: string): string {
  return crypto.createHash("sha256").update(`${runRoot}\0${stack}`).digest("hex").slice(0, 6);
}

export function machineName(id: string, server: string): string {
  return `hs-${id}-${server}`;
}

/** The cgroup hierarchies nspawn places a container in: name=systemd (v1) and cgroup2. */
export function cgroupHierarchies(
  mountinfo = fs.readFileSync("/proc/self/mountinfo", "utf8"),
  ownCgroups = fs.readFileSync("/proc/self/cgroup", "utf8"),
): { mount: string; own: string }[] {
  const own = new Map<string, string>();
  for (const l of ownCgroups.split("\n").filter(Boolean)) {
    const [, controllers, p] = /^\d+:([^:]*):(.*)$/.exec(l) ?? [];
    if (controllers === "") {
      own.set("cgroup2", p);
    } else if (controllers?.split(",").includes("name=systemd")) {
      own.set("systemd", p);
    }
  }
  const out: { mount: string; own: string }[] = [];
  for (const l of mountinfo.split("\n").filter(Boolean)) {
    const [pre, post] = l.split(" - ");
    const mountPoint = pre.split(" ")[4];
    const [fstype, , superOpts] = (post ?? "").split(" ");
    const kind =
      fstype === "cgroup2"
        ? "cgroup2"
        : fstype === "cgroup" && superOpts?.split(",").includes("name=systemd")
          ? "systemd"
          : undefined;
    if (kind && own.has(kind) && !out.some((o) => o.mount === mountPoint)) {
      out.push({ mount: mountPoint, own: own.get(kind)! });
    }
  }
  return out;
}

/**
 * Creates the container's own cgroup in every hierarchy nspawn uses, under this process's:
 * `<own>/hastack-<id>/<server>`, recording each for teardown (emptied ones are removed).
 */
export function containerCgroups(id: string, server: string, td: Teardown): string[] {
  const out: string[] = [];
  for (const h of cgroupHierarchies()) {
    const group = path.join(h.mount, h.own, `hastack-${id}`);
    if (!fs.existsSync(group)) {
      fs.mkdirSync(group);
      td.add({ kind: "cgroup", path: group });
    }
    const leaf = path.join(group, server);
    // A leftover of a killed container (empty: its processes died with its PID 1) is removed, so
    // the new systemd starts from a clean tree.
    removeCgroupTree(leaf);
    fs.mkdirSync(leaf);
    td.add({ kind: "cgroup", path: leaf });
    out.push(leaf);
  }
  return out;
}

/** rmdir of a cgroup and its descendants, deepest first; false when one is still populated. */
export function removeCgroupTree(dir: string): boolean {
  if (!fs.existsSync(dir)) {
    return true;
  }
  let ok = true;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    if (e.isDirectory()) {
      ok = removeCgroupTree(path.join(dir, e.name)) && ok;
    }
  }
  try {
    fs.rmdirSync(dir);
  } catch {
    ok = false;
  }
  return ok;
}

export function nspawnArgs(c: ContainerSpec): string[] {
  return [
    "-q",
    "-b",
    "-D",
    c.root,
    `--machine=${c.machine}`,
    "--register=no",
    "--keep-unit",
    `--network-namespace-path=/run/netns/${c.ns}`,
    // Root on an instance configures its own interface (secondary IPs); with a namespace
    // given by path nspawn withholds CAP_NET_ADMIN. The security groups stay out of reach,
    // in the router's namespace.
    "--capability=CAP_NET_ADMIN",
    `--bind=${c.data}:/srv/data`,
    "--console=read-only",
    "--timezone=off",
    "--resolv-conf=off",
    "--link-journal=no",
  ];
}

/**
 * Starts the container detached (it outlives this process), in its own cgroups, recorded for
 * teardown as "systemd-nspawn <server>" (drills/container.ts finds servers by that). Returns
 * nspawn's pid.
 */
export function startContainer(c: ContainerSpec, id: string, td: Teardown): number {
  const cgroups = containerCgroups(id, c.name, td);
  const out = fs.openSync(c.console, "a");
  // The shell moves itself into the cgroups, then becomes nspawn (same pid): nspawn derives its
  // payload cgroup from its own before it forks the container.
  const child = spawn(
    "sh",
    [
      "-c",
      'for g in $HASTACK_CGROUPS; do echo $$ > "$g/cgroup.procs" || exit 97; done; unset HASTACK_CGROUPS; exec systemd-nspawn "$@"',
      "sh",
      ...nspawnArgs(c),
    ],
    {
      stdio: ["ignore", out, out],
      detached: true,
      env: {
        ...process.env,
        HASTACK_CGROUPS: cgroups.join(" "),
        SYSTEMD_NSPAWN_UNIFIED_HIERARCHY: "1",
      },
    },
  );
  fs.closeSync(out);
  child.unref();
  td.add({ kind: "process", pid: child.pid!, what: `systemd-nspawn ${c.name}` });
  return child.pid!;
}

export function serversFile(dir: string): string {
  return path.join(dir, "servers.json");
}

export function writeServers(dir: string, specs: ContainerSpec[], id: string): void {
  fs.writeFileSync(serversFile(dir), JSON.stringify({ id, servers: specs }, null, 1));
}
