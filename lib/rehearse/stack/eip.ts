// An Elastic IP moving to another server in the rehearsal (issue 12): what AWS does on an
// EipAssociation to a new network interface (AllowReassociation). In the rehearsal an EIP is 1:1
// NAT in the router's nftables table (nft.ts); a move replaces exactly the NAT rules of that one
// address, in one nft transaction, re-routes the address to the new server's link and forgets
// the connections NATed to the old server (on AWS their packets now reach the new instance,
// which knows nothing of them). Nothing else in the table changes: the security groups stay as
// they are, as on AWS.
import { execFileSync } from "child_process";
import { NatMapping, StackModel } from "./model";
import { TABLE, routerIf } from "./nft";

/** A NAT rule of one address, with the handle nft gave it. */
export interface NatRule {
  chain: "nat_prerouting" | "nat_output" | "nat_postrouting";
  handle: number;
  text: string;
}

const CHAINS: NatRule["chain"][] = ["nat_prerouting", "nat_output", "nat_postrouting"];

/** The NAT rules of `publicIp` in `nft -a list table` output (the rule text without its handle). */
export function natRulesOf(listing: string, publicIp: string): NatRule[] {
  const out: NatRule[] = [];
  let chain: NatRule["chain"] | undefined;
  for (const line of listing.split("\n")) {
    const c = /^\s*chain (\S+) \{/.exec(line);
    if (c) {
      chain = CHAINS.find((x) => x === c[1]);
      continue;
    }
    const m = /^\s*(.*\S)\s+# handle (\d+)\s*$/.exec(line);
    if (!chain || !m) {
      continue;
    }
    const text = m[1];
    const dnat = text.startsWith(`ip daddr ${publicIp} dnat`);
    const snat = / snat ip to (\S+)$/.exec(text)?.[1] === publicIp;
    if (dnat || snat) {
      out.push({ chain, handle: Number(m[2]), text });
    }
  }
  return out;
}

/**
 * The nft script that moves `publicIp` from `from` to `to`: each of its NAT rules replaced in
 * place (same chain, same position), all in one transaction. Throws when the table does not
 * hold the rules the rehearsal made for `from` (the EIP is not where the plan says it is).
 */
export function renderEipMove(
  rules: NatRule[],
  publicIp: string,
  from: string,
  to: string,
  vpcCidr: string,
): string {
  const expect: Record<NatRule["chain"], string> = {
    nat_prerouting: `ip daddr ${publicIp} dnat ip to ${from}`,
    nat_output: `ip daddr ${publicIp} dnat ip to ${from}`,
    nat_postrouting: `ip saddr ${from} ct original ip daddr != ${vpcCidr} snat ip to ${publicIp}`,
  };
  const lines: string[] = [];
  for (const chain of CHAINS) {
    const found = rules.filter((r) => r.chain === chain);
    if (found.length !== 1 || found[0].text !== expect[chain]) {
      throw new Error(
        `EIP ${publicIp}: expected one rule \`${expect[chain]}\` in ${chain}, found ${found.length ? found.map((r) => `\`${r.text}\``).join(", ") : "none"}`,
      );
    }
    const next = expect[chain].split(from).join(to);
    lines.push(`replace rule inet ${TABLE} ${chain} handle ${found[0].handle} ${next}`);
  }
  return lines.join("\n") + "\n";
}

function run(argv: string[], input?: string): string {
  return execFileSync(argv[0], argv.slice(1), {
    encoding: "utf8",
    input,
    stdio: [input === undefined ? "ignore" : "pipe", "pipe", "pipe"],
  });
}

/**
 * Moves `publicIp` to `to` in the router namespace `router` and records it in `model.nat`.
 * `conntrack` (Debian package conntrack) forgets the old server's NATed connections.
 */
export function moveEip(
  router: string,
  model: StackModel,
  publicIp: string,
  from: NatMapping,
  to: NatMapping,
): void {
  const target = model.servers.findIndex(
    (s) => s.privateIp === to.privateIp || s.secondaryIps.includes(to.privateIp),
  );
  if (target < 0) {
    throw new Error(`EIP ${publicIp}: ${to.privateIp} is no address of a rehearsed server`);
  }
  const listing = run(["ip", "netns", "exec", router, "nft", "-a", "list", "table", "inet", TABLE]);
  const script = renderEipMove(
    natRulesOf(listing, publicIp),
    publicIp,
    from.privateIp,
    to.privateIp,
    model.vpcCidr,
  );
  run(["ip", "netns", "exec", router, "nft", "-f", "-"], script);
  run(["ip", "-n", router, "route", "replace", `${publicIp}/32`, "dev", routerIf(target)]);
  for (const dir of ["--orig-dst", "--reply-dst"]) {
    try {
      run(["ip", "netns", "exec", router, "conntrack", "-D", dir, publicIp]);
    } catch (e) {
      // conntrack exits 1 when no entry matched: nothing to forget.
      if (!/0 flow entries/.test(String((e as { stderr?: string }).stderr ?? ""))) {
        throw new Error(`EIP ${publicIp}: conntrack -D ${dir}: ${(e as Error).message}`);
      }
    }
  }
  const m = model.nat.find((n) => n.publicIp === publicIp);
  if (m) {
    m.privateIp = to.privateIp;
    m.server = to.server;
  } else {
    model.nat.push({ ...to });
  }
}
