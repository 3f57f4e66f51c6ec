// Security groups and EIPs of the synth as one nftables table for the rehearsal's router
// namespace (issue 11). Every server's interface is a point-to-point link to that router, so every
// packet to or from a server crosses it and meets its security groups there, outside the server,
// as on AWS. Pure: renders text; lib/rehearse/stack/network.ts loads it with `nft -f`.
//
// Where each check sits, and why:
// - NAT: an EIP is DNATed to its private address on the way in (prerouting, and output for the
//   router's own stand-ins: health checkers, admin, the world); a server that addresses a public
//   address leaves with its EIP as source, as through an internet gateway (a hairpin via another
//   server's EIP arrives from the sender's EIP, so security-group references do not match it —
//   which is exactly what AWS does).
// - Ingress rules run in postrouting after source NAT, on the interface towards the server: they
//   see the addresses the instance would see. Egress rules run in prerouting before destination NAT:
//   they see what the instance addressed. Both are stateful (established/related pass), as SGs are.
// - The instance metadata service and the VPC resolver are not subject to security groups on AWS;
//   neither are they here.
import { RehearsalServer, SecurityGroup, SecurityGroupRule, StackModel } from "./model";

/** Addresses the router itself holds on the rehearsal network. */
export interface RouterAddresses {
  gateway: string;
  resolver: string;
  imds: string;
}

export const TABLE = "hastack_rehearsal";

/** nftables identifier for a security group id (sets and chains allow [A-Za-z0-9_]). */
export function setName(sgId: string): string {
  return `sg_${sgId.replace(/[^A-Za-z0-9]/g, "_")}`;
}

const PROTOCOLS: Record<string, string> = {
  tcp: "tcp",
  "6": "tcp",
  udp: "udp",
  "17": "udp",
  icmp: "icmp",
  "1": "icmp",
};

/** One security-group rule as an nft statement (`accept`), from the side of `direction`. */
export function ruleToNft(rule: SecurityGroupRule): string {
  const peer = rule.direction === "ingress" ? "saddr" : "daddr";
  const match: string[] = [];
  if (rule.cidr !== undefined) {
    if (rule.cidr !== "0.0.0.0/0") {
      match.push(`ip ${peer} ${rule.cidr}`);
    }
  } else if (rule.group !== undefined) {
    match.push(`ip ${peer} @${setName(rule.group)}`);
  } else {
    throw new Error(`rule "${rule.description}" has neither a CIDR nor a security group`);
  }
  if (rule.protocol !== "-1" && rule.protocol !== "all") {
    const proto = PROTOCOLS[rule.protocol.toLowerCase()];
    if (!proto) {
      throw new Error(
        `rule "${rule.description}": protocol ${rule.protocol} is not rehearsed (tcp, udp, icmp, -1)`,
      );
    }
    if (proto === "icmp") {
      match.push("meta l4proto icmp");
    } else {
      match.push(`meta l4proto ${proto}`);
      const from = rule.fromPort ?? 0;
      const to = rule.toPort ?? 65535;
      if (!(from <= 0 && to >= 65535)) {
        match.push(`th dport ${from === to ? from : `${from}-${to}`}`);
      }
    }
  }
  return `${match.join(" ")} accept`.trim();
}

/** The interface name of server number `i` on the router side (15 characters at most). */
export function routerIf(i: number): string {
  return `hsv${i}`;
}

function serverRules(
  s: RehearsalServer,
  sgs: Map<string, SecurityGroup>,
  direction: "ingress" | "egress",
): string[] {
  const out: string[] = [];
  for (const id of s.securityGroups) {
    const sg = sgs.get(id);
    if (!sg) {
      throw new Error(`${s.logical}: security group ${id} is not in the synth`);
    }
    for (const r of sg.rules.filter((x) => x.direction === direction)) {
      out.push(
        `    ${ruleToNft(r)} comment "${sg.name}: ${r.description.replace(/["\\]/g, "'").slice(0, 80)}"`,
      );
    }
  }
  return out;
}

/** The whole table: NAT for EIPs, security groups per server interface, drop counters. */
export function renderRuleset(model: StackModel, router: RouterAddresses): string {
  const lines: string[] = [`table inet ${TABLE} {`];
  // Members of each security group: the private addresses of the ENIs that carry it.
  for (const [id] of model.securityGroups) {
    const members = model.servers
      .filter((s) => s.securityGroups.includes(id))
      .flatMap((s) => [s.privateIp, ...s.secondaryIps]);
    lines.push(
      `  set ${setName(id)} {`,
      "    type ipv4_addr",
      ...(members.length ? [`    elements = { ${members.join(", ")} }`] : []),
      "  }",
    );
  }
  const dnat = model.nat.map((n) => `    ip daddr ${n.publicIp} dnat ip to ${n.privateIp}`);
  lines.push(
    "  chain nat_prerouting {",
    "    type nat hook prerouting priority dstnat; policy accept;",
    ...dnat,
    "  }",
  );
  lines.push(
    "  chain nat_output {",
    "    type nat hook output priority -100; policy accept;",
    ...dnat,
    "  }",
  );
  const snat = model.nat.map(
    (n) =>
      `    ip saddr ${n.privateIp} ct original ip daddr != ${model.vpcCidr} snat ip to ${n.publicIp}`,
  );
  lines.push(
    "  chain nat_postrouting {",
    "    type nat hook postrouting priority srcnat; policy accept;",
    ...snat,
    "  }",
  );

  const exempt = `ip daddr { ${router.imds}, ${router.resolver} }`;
  lines.push(
    "  chain sg_egress {",
    "    type filter hook prerouting priority -150; policy accept;",
    "    ct state established,related accept",
    `    ${exempt} accept`,
    ...model.servers.map((_s, i) => `    iifname "${routerIf(i)}" jump egress_${i}`),
    "  }",
  );
  lines.push(
    "  chain sg_ingress {",
    "    type filter hook postrouting priority 300; policy accept;",
    "    ct state established,related accept",
    ...model.servers.map((_s, i) => `    oifname "${routerIf(i)}" jump ingress_${i}`),
    "  }",
  );
  model.servers.forEach((s, i) => {
    lines.push(
      `  chain egress_${i} {`,
      `    # ${s.name}`,
      ...serverRules(s, model.securityGroups, "egress"),
      `    counter drop comment "${s.name}: no egress rule allows this"`,
      "  }",
      `  chain ingress_${i} {`,
      `    # ${s.name}`,
      ...serverRules(s, model.securityGroups, "ingress"),
      `    counter drop comment "${s.name}: no ingress rule allows this"`,
      "  }",
    );
  });
  lines.push("}");
  return lines.join("\n") + "\n";
}
