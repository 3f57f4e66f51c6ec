// The rehearsal's VPC (issue 11): a router namespace and one namespace per server, all created
// here and none of them the host's. Each server's interface is a veth whose other end sits in the
// router; the router answers ARP for the whole VPC (proxy ARP), so every packet between servers
// crosses it and meets the security groups (nft.ts) there. The router holds the VPC's gateway
// and resolver addresses, 169.254.169.254 and the stand-ins' addresses; anything else is
// unreachable. The host's namespace gets nothing but the two ends of the veth while they move.
import * as fs from "fs";
import { execFileSync } from "child_process";
import { RehearsalServer, StackModel, inCidr } from "./model";
import { RouterAddresses, renderRuleset, routerIf } from "./nft";
import { Teardown } from "./teardown";

export interface RehearsalNet {
  router: string;
  serverNs: string[];
  addresses: RouterAddresses & { ssm: string; checker: string; admin: string; world: string };
}

function ip(args: string[]): void {
  execFileSync("ip", args, { stdio: ["ignore", "ignore", "pipe"] });
}

function inNs(ns: string, argv: string[], input?: string): void {
  execFileSync("ip", ["netns", "exec", ns, ...argv], {
    stdio: [input === undefined ? "ignore" : "pipe", "ignore", "pipe"],
    input,
  });
}

/** First usable address of a CIDR (the CIDR itself for a /32). */
function hostOf(cidr: string): string {
  const [base, bits] = cidr.split("/");
  if (bits === "32" || bits === undefined) {
    return base;
  }
  const o = base.split(".").map(Number);
  o[3] += 1;
  return o.join(".");
}

/** An address the world sends from: in no CIDR any security group names, except 0.0.0.0/0. */
export function worldAddress(model: StackModel): string {
  const cidrs = [...model.securityGroups.values()]
    .flatMap((g) => g.rules.map((r) => r.cidr))
    .filter((c): c is string => c !== undefined && c !== "0.0.0.0/0");
  for (const candidate of ["192.0.2.77", "192.0.2.177", "100.64.7.7"]) {
    if (!cidrs.some((c) => inCidr(candidate, c))) {
      return candidate;
    }
  }
  throw new Error("no world address outside the stack's CIDRs");
}

export function createNetwork(
  model: StackModel,
  id: string,
  dir: string,
  td: Teardown,
): RehearsalNet {
  const router = `hsr-${id}`;
  const checker = "15.177.0.10"; // inside Route 53's published health-checker range (the SG's CIDR)
  const addresses = {
    gateway: "10.20.0.1",
    resolver: "10.20.0.2",
    imds: "169.254.169.254",
    ssm: "198.18.0.10",
    checker,
    admin: hostOf(model.adminCidrs[0] ?? "203.0.113.10/32"),
    world: worldAddress(model),
  };
  for (const s of model.servers) {
    if (!inCidr(s.privateIp, model.vpcCidr)) {
      throw new Error(`${s.logical}: private address ${s.privateIp} is outside ${model.vpcCidr}`);
    }
  }
  ip(["netns", "add", router]);
  td.add({ kind: "netns", name: router });
  ip(["-n", router, "link", "set", "lo", "up"]);
  for (const a of [
    addresses.gateway,
    addresses.resolver,
    addresses.imds,
    addresses.ssm,
    addresses.checker,
    addresses.admin,
    addresses.world,
  ]) {
    // On the router's loopback: local to the router, answered to ARP on every server link.
    ip(["-n", router, "addr", "add", `${a}/32`, "dev", "lo"]);
  }
  for (const [k, v] of [
    ["net.ipv4.ip_forward", "1"],
    ["net.ipv4.conf.all.rp_filter", "0"],
    ["net.ipv4.conf.default.rp_filter", "0"],
  ]) {
    inNs(router, ["sysctl", "-q", "-w", `${k}=${v}`]);
  }
  // Nothing outside the rehearsal is reachable: fail fast instead of timing out.
  ip(["-n", router, "route", "add", "unreachable", "default"]);
  const serverNs: string[] = [];
  model.servers.forEach((s: RehearsalServer, i: number) => {
    const ns = `hss-${id}-${i}`;
    ip(["netns", "add", ns]);
    td.add({ kind: "netns", name: ns });
    serverNs.push(ns);
    const outer = routerIf(i);
    const tmpPeer = `hsp${id.slice(0, 4)}${i}`;
    ip([
      "link",
      "add",
      outer,
      "netns",
      router,
      "type",
      "veth",
      "peer",
      "name",
      tmpPeer,
      "netns",
      ns,
    ]);
    ip(["-n", ns, "link", "set", tmpPeer, "name", "ens5"]);
    ip(["-n", ns, "link", "set", "ens5", "address", s.mac]);
    ip(["-n", ns, "link", "set", "lo", "up"]);
    // Down and unaddressed, as an instance's interface before its OS runs: systemd-networkd in the
    // container applies the seed's network-config (an address set from here too made
    // systemd-networkd-wait-online fail in most containers).
    ip(["-n", router, "link", "set", outer, "up"]);
    inNs(router, ["sysctl", "-q", "-w", `net.ipv4.conf.${outer}.proxy_arp=1`]);
    for (const a of [s.privateIp, ...s.secondaryIps]) {
      ip(["-n", router, "route", "add", `${a}/32`, "dev", outer]);
    }
    for (const n of model.nat.filter(
      (x) => x.privateIp === s.privateIp || s.secondaryIps.includes(x.privateIp),
    )) {
      ip(["-n", router, "route", "add", `${n.publicIp}/32`, "dev", outer]);
    }
  });
  const rules = renderRuleset(model, addresses);
  fs.writeFileSync(`${dir}/rehearsal.nft`, rules);
  inNs(router, ["nft", "-f", `${dir}/rehearsal.nft`]);
  return { router, serverNs, addresses };
}
