// The one CIDR parser (issue 13): every CIDR the stack config holds and every CIDR the policy
// pack reads goes through here. A string compare cannot guard address space — "0.0.0.0/00",
// "000.0.0.0/0", "203.0.113.10/0" and two /1 halves all open the world while differing from
// "0.0.0.0/0" — so CIDRs are parsed (ipaddr.js), held to their canonical spelling, and judged by
// how many addresses they open, alone and as a list.
import * as ipaddr from "ipaddr.js";

/** A parsed IPv4 CIDR: its network address as a 32-bit number and its prefix length. */
export interface Cidr {
  text: string;
  network: number;
  prefix: number;
  /** How many addresses it covers: 2^(32 - prefix). */
  size: number;
}

/** Every IPv4 address: 2^32. */
export const IPV4_SPACE = 2 ** 32;

/**
 * Parses an IPv4 CIDR strictly: four plain decimal octets without leading zeros, a prefix of
 * 0–32 without leading zeros, and no host bits. Returns the reason (phrased to follow "must be")
 * when the text is not such a CIDR.
 */
export function parseCidr(text: string): { ok: true; cidr: Cidr } | { ok: false; reason: string } {
  const example = "an IPv4 CIDR such as 203.0.113.10/32";
  const slash = text.indexOf("/");
  if (slash < 0) {
    return { ok: false, reason: `${example} (a prefix length is required)` };
  }
  const address = text.slice(0, slash);
  if (!ipaddr.IPv4.isValidFourPartDecimal(address)) {
    return {
      ok: false,
      reason: `${example} (four decimal octets 0–255 without leading zeros)`,
    };
  }
  let parsed: [ipaddr.IPv4, number];
  try {
    parsed = ipaddr.IPv4.parseCIDR(text);
  } catch {
    return { ok: false, reason: `${example} (prefix length 0–32)` };
  }
  const [addr, prefix] = parsed;
  // ipaddr.js reads "/00" and "/032" as /0 and /32: only the canonical spelling is one value.
  if (`${addr.toString()}/${prefix}` !== text) {
    return { ok: false, reason: `${example} (prefix length 0–32 without leading zeros)` };
  }
  const networkText = ipaddr.IPv4.networkAddressFromCIDR(text).toString();
  if (networkText !== addr.toString()) {
    return {
      ok: false,
      reason: `a network address without host bits (${networkText}/${prefix} is the network of ${text}; a single host is /32)`,
    };
  }
  return {
    ok: true,
    cidr: { text, network: toNumber(addr), prefix, size: 2 ** (32 - prefix) },
  };
}

/** Parses or throws; for CIDRs the program itself writes. */
export function mustParseCidr(text: string): Cidr {
  const r = parseCidr(text);
  if (!r.ok) {
    throw new Error(`${JSON.stringify(text)} must be ${r.reason}`);
  }
  return r.cidr;
}

/** How many distinct addresses a list of CIDRs opens (overlaps counted once). */
export function addressCount(cidrs: readonly Cidr[]): number {
  const ranges = cidrs
    .map((c) => [c.network, c.network + c.size] as const)
    .sort((a, b) => a[0] - b[0]);
  let total = 0;
  let end = -1;
  for (const [from, to] of ranges) {
    if (from >= end) {
      total += to - from;
      end = to;
    } else if (to > end) {
      total += to - end;
      end = to;
    }
  }
  return total;
}

/** Whether `inner` lies wholly inside one of `outer`. */
export function coveredBy(inner: Cidr, outer: readonly Cidr[]): boolean {
  return outer.some(
    (o) => o.prefix <= inner.prefix && inner.network - (inner.network % o.size) === o.network,
  );
}

/** Whether an address (a 32-bit number) lies in a CIDR. */
export function contains(cidr: Cidr, address: number): boolean {
  return address >= cidr.network && address < cidr.network + cidr.size;
}

/** "a /16's worth" for a count that is a power of two, else the number of addresses. */
export function describeCount(count: number): string {
  const bits = Math.log2(count);
  return Number.isInteger(bits)
    ? `${count} addresses (a /${32 - bits}'s worth)`
    : `${count} addresses`;
}

function toNumber(addr: ipaddr.IPv4): number {
  return addr.octets.reduce((n, o) => n * 256 + o, 0);
}
