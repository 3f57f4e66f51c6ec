// A host outside the VPC for a drill (the world's sending MTA, the migration's old mail server):
// a network namespace of its own, linked to the rehearsal's router by a veth pair at one address,
// and removed again with everything running in it.
import * as fs from "fs";
import { execFileSync, spawnSync } from "child_process";

/** Runs argv, returning stdout; throws on a non-zero exit or after `timeoutMs`. */
export function sh(argv: string[], input?: string, timeoutMs = 60_000): string {
  return execFileSync(argv[0], argv.slice(1), {
    encoding: "utf8",
    input,
    stdio: [input === undefined ? "ignore" : "pipe", "pipe", "pipe"],
    timeout: timeoutMs,
  });
}

/** Whether the namespace exists. */
export function namespaceExists(ns: string): boolean {
  return fs.existsSync(`/run/netns/${ns}`);
}

/**
 * Makes namespace `ns` with `address`/32 on its eth0, linked to `router` by the veth `<tag>d`
 * (router side, proxy ARP on, a host route to the address), so every packet crosses the router
 * as the servers' do.
 */
export function linkToRouter(router: string, ns: string, address: string, tag: string): void {
  const routerEnd = `${tag}d`;
  const tmp = `${tag}tmp`;
  sh(["ip", "netns", "add", ns]);
  sh([
    "ip",
    "link",
    "add",
    routerEnd,
    "netns",
    router,
    "type",
    "veth",
    "peer",
    "name",
    tmp,
    "netns",
    ns,
  ]);
  sh(["ip", "-n", ns, "link", "set", tmp, "name", "eth0"]);
  sh(["ip", "-n", ns, "link", "set", "lo", "up"]);
  sh(["ip", "-n", ns, "addr", "add", `${address}/32`, "dev", "eth0"]);
  sh(["ip", "-n", ns, "link", "set", "eth0", "up"]);
  // The router answers ARP for everything it routes (proxy ARP), as for the servers.
  sh(["ip", "-n", ns, "route", "add", "default", "dev", "eth0"]);
  sh(["ip", "-n", router, "link", "set", routerEnd, "up"]);
  sh([
    "ip",
    "netns",
    "exec",
    router,
    "sysctl",
    "-q",
    "-w",
    `net.ipv4.conf.${routerEnd}.proxy_arp=1`,
  ]);
  sh(["ip", "-n", router, "route", "add", `${address}/32`, "dev", routerEnd]);
}

/**
 * Removes namespace `ns`: runs each of `stops` inside it (bounded, failures ignored: the daemon
 * may be gone), kills what is left in it, deletes it. The router's end of the link goes with the
 * namespace, its route with the link.
 */
export function removeNamespace(ns: string, stops: string[][]): void {
  if (!namespaceExists(ns)) {
    return;
  }
  for (const argv of stops) {
    spawnSync("ip", ["netns", "exec", ns, ...argv], { stdio: "ignore", timeout: 30_000 });
  }
  const pids = (spawnSync("ip", ["netns", "pids", ns], { encoding: "utf8" }).stdout ?? "")
    .split(/\s+/)
    .filter(Boolean)
    .map(Number);
  for (const pid of pids) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // already gone
    }
  }
  spawnSync("ip", ["netns", "del", ns]);
}
