// A server of a kept rehearsal booted again after a power-off (issue 12's fallbacks): its
// container was killed (SIGKILL of its PID 1), its disk (the overlay), data volume and network
// namespace (addresses, the router's routes and security groups) are still there. It boots
// from them as the first boot did (container.ts), recorded in made.json for teardown, and
// bootServerAgain returns once its systemd is up and its sshd answers.
//
// Reads both state formats: servers.json (written since the machine names carry the rehearsal's
// id) and, for a stack booted before, made.json alone (machine "hs-<server>", namespaces named
// from the state directory, the servers in made.json's order).
import * as fs from "fs";
import * as path from "path";
import { execFileSync, spawnSync } from "child_process";
import { ContainerSpec, rehearsalId, serversFile, startContainer } from "./container";
import { Made, Teardown } from "./teardown";

export interface RebootOptions {
  /** Seconds to wait for systemd and sshd. Defaults to 900. */
  timeout?: number;
}

export interface Rebooted {
  name: string;
  nspawnPid: number;
  leader: number;
  seconds: number;
  state: string;
}

function readMade(dir: string): Made[] {
  const file = path.join(dir, "made.json");
  if (!fs.existsSync(file)) {
    throw new Error(`no rehearsal is up in ${dir} (no made.json)`);
  }
  return (JSON.parse(fs.readFileSync(file, "utf8")) as { made: Made[] }).made;
}

function nspawnName(m: Made): string | undefined {
  return m.kind === "process" ? /^systemd-nspawn (\S+)$/.exec(m.what)?.[1] : undefined;
}

/** The rehearsal's id and every server's container, from either state format. */
export function readServers(dir: string): { id: string; servers: ContainerSpec[] } {
  const file = serversFile(dir);
  if (fs.existsSync(file)) {
    return JSON.parse(fs.readFileSync(file, "utf8")) as { id: string; servers: ContainerSpec[] };
  }
  // Before servers.json: index.ts named the namespaces from sha256(RUN_ROOT \0 stack) and
  // started the servers in the model's order, the order of made.json's nspawn entries.
  const id = rehearsalId(path.dirname(dir), path.basename(dir));
  const names: string[] = [];
  for (const m of readMade(dir)) {
    const n = nspawnName(m);
    if (n && !names.includes(n)) {
      names.push(n);
    }
  }
  const standIns = JSON.parse(fs.readFileSync(path.join(dir, "standins.json"), "utf8")) as {
    servers: { name: string; privateIp: string }[];
  };
  return {
    id,
    servers: names.map((name, i) => {
      const sdir = path.join(dir, "servers", name);
      const ip = standIns.servers.find((s) => s.name === name)?.privateIp;
      if (!ip) {
        throw new Error(`${dir}/standins.json has no server ${name}`);
      }
      return {
        name,
        machine: `hs-${name}`,
        root: path.join(sdir, "root"),
        ns: `hss-${id}-${i}`,
        data: path.join(sdir, "data"),
        console: path.join(sdir, "console.log"),
        privateIp: ip,
      };
    }),
  };
}

function alive(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(fs.readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return false;
  }
}

function firstChild(pid: number): number | undefined {
  try {
    const kids = fs
      .readdirSync(`/proc/${pid}/task`)
      .flatMap((t) =>
        fs.readFileSync(`/proc/${pid}/task/${t}/children`, "utf8").trim().split(/\s+/),
      )
      .filter(Boolean)
      .map(Number);
    return kids[0];
  } catch {
    return undefined;
  }
}

async function poll<T>(
  what: string,
  seconds: number,
  probe: () => T | undefined,
  last: () => string = () => "",
): Promise<T> {
  const end = Date.now() + seconds * 1000;
  while (Date.now() < end) {
    const v = probe();
    if (v !== undefined) {
      return v;
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
  const l = last();
  throw new Error(`gave up after ${seconds} s waiting for ${what}${l ? ` (last: ${l})` : ""}`);
}

function isMountPoint(p: string): boolean {
  return fs
    .readFileSync("/proc/self/mountinfo", "utf8")
    .split("\n")
    .some((l) => l.split(" ")[4] === path.resolve(p));
}

/**
 * Boots server `name` of the kept rehearsal in `dir` again, on the disk and addresses it had.
 * Throws when it is still running, when its disk or namespace is gone, or when systemd does not
 * reach running/degraded or sshd does not answer within the timeout.
 */
export async function bootServerAgain(
  dir: string,
  name: string,
  log: (line: string) => void,
  o: RebootOptions = {},
): Promise<Rebooted> {
  const timeout = o.timeout ?? 900;
  const started = Date.now();
  const { id, servers } = readServers(dir);
  const spec = servers.find((s) => s.name === name);
  if (!spec) {
    throw new Error(
      `no server ${name} in the rehearsal in ${dir} (servers: ${servers.map((s) => s.name).join(", ")})`,
    );
  }
  // Never a second container on the same disk: refuse while its PID 1 lives; once that is
  // killed, its nspawn exits shortly after (bounded wait).
  const previous = readMade(dir)
    .filter((m): m is Extract<Made, { kind: "process" }> => nspawnName(m) === name)
    .map((m) => m.pid)
    .filter(alive);
  // A PID 1 just killed is gone within moments (a zombie until nspawn reaps it counts as gone).
  const leaderAlive = (p: number): boolean => {
    const c = firstChild(p);
    return c !== undefined && alive(c);
  };
  const settleUntil = Date.now() + 15000;
  while (previous.some(leaderAlive) && Date.now() < settleUntil) {
    await new Promise((r) => setTimeout(r, 500));
  }
  const running = previous.filter(leaderAlive);
  if (running.length > 0) {
    throw new Error(
      `${name} is still running (systemd-nspawn ${running.join(", ")}): kill its PID 1 first`,
    );
  }
  await poll(`the previous systemd-nspawn of ${name} (${previous.join(", ")}) to exit`, 60, () =>
    previous.some(alive) ? undefined : true,
  );
  if (!isMountPoint(spec.root)) {
    throw new Error(`${name}: its disk ${spec.root} is not mounted any more`);
  }
  if (!fs.existsSync(`/run/netns/${spec.ns}`)) {
    throw new Error(`${name}: its network namespace ${spec.ns} is gone`);
  }
  const td = new Teardown(path.join(dir, "made.json"));
  const nspawnPid = startContainer(spec, id, td);
  log(`${name}: booting again (systemd-nspawn ${nspawnPid}, ${spec.privateIp})`);
  const { leader, state } = await waitServerUp(spec, nspawnPid, timeout);
  const seconds = Math.round((Date.now() - started) / 1000);
  log(`${name}: up again in ${seconds} s (systemd ${state}, sshd answers)`);
  return { name, nspawnPid, leader, seconds, state };
}

/**
 * Waits for a just-started container: its PID 1, systemd running or degraded, sshd answering on
 * its private address (ssh-keyscan from inside its namespace). Throws when it stops meanwhile.
 */
export async function waitServerUp(
  spec: ContainerSpec,
  nspawnPid: number,
  timeout: number,
): Promise<{ leader: number; state: string }> {
  const started = Date.now();
  const name = spec.name;
  let lastState = "";
  const leader = await poll(`${name}'s PID 1`, 60, () => {
    if (!alive(nspawnPid)) {
      throw new Error(`${name}: systemd-nspawn exited at once (see ${spec.console})`);
    }
    return firstChild(nspawnPid);
  });
  const state = await poll(
    `${name}'s systemd to be running`,
    timeout,
    () => {
      if (!alive(nspawnPid)) {
        throw new Error(`${name}: the container stopped while booting (see ${spec.console})`);
      }
      const r = spawnSync(
        "nsenter",
        ["-t", String(leader), "-a", "--", "systemctl", "is-system-running"],
        { encoding: "utf8", timeout: 30000 },
      );
      lastState = (r.stdout ?? "").trim() || (r.stderr ?? "").trim();
      return lastState === "running" || lastState === "degraded" ? lastState : undefined;
    },
    () => lastState,
  );
  let lastSsh = "";
  await poll(
    `${name}'s sshd to answer on ${spec.privateIp}:22`,
    Math.max(60, timeout - (Date.now() - started) / 1000),
    () => {
      try {
        const out = execFileSync(
          "ip",
          ["netns", "exec", spec.ns, "ssh-keyscan", "-T", "5", spec.privateIp],
          { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], timeout: 30000 },
        );
        lastSsh = out.trim() ? "" : "no host key offered";
        return out.includes(spec.privateIp) ? true : undefined;
      } catch (e) {
        lastSsh = (e as Error).message.split("\n")[0];
        return undefined;
      }
    },
    () => lastSsh,
  );
  return { leader, state };
}
