// MTA-STS (RFC 8461) and TLS-RPT (RFC 8460) for the mail pair (issue 17): the policy that tells
// senders to deliver only over TLS to an MX whose certificate is valid for its name, the
// `_mta-sts` record whose id tells them the policy changed, and where they report failures.
// Pure functions: MailPair declares what they return; the tests parse it back per the RFCs.
import { createHash } from "crypto";
import type { Role } from "./server-pair";

/** hastack:mail.mtaSts. */
export type MtaStsMode = "none" | "testing" | "enforce";

/** The host label the policy is served at (RFC 8461 3.3: fixed by the standard). */
export const MTA_STS_LABEL = "mta-sts";

/** Where the policy is served on `mta-sts.<domain>` (RFC 8461 3.3). */
export const MTA_STS_POLICY_PATH = "/.well-known/mta-sts.txt";

/**
 * The description of the mail servers' 443 ingress rule: the policy pack's guard of 443 (the
 * FreePBX web UI) admits a world-open rule for exactly 443 with this description.
 */
export const MTA_STS_INGRESS_DESCRIPTION = "HTTPS: the MTA-STS policy (senders)";

/** TTL of `_mta-sts` and `_smtp._tls`: a changed id reaches senders within it. */
export const MTA_STS_RECORD_TTL = 300;

/** `mta-sts.<domain>` */
export function mtaStsHost(domain: string): string {
  return `${MTA_STS_LABEL}.${domain}`;
}

/**
 * The MX host names the policy allows: both new servers in every phase, plus the old server's
 * MX name for as long as its A record is published (migration phases 1–8). A name allowed but
 * not in the MX set costs nothing, while an MX missing from a cached policy makes an enforcing
 * sender defer mail to it — so the servers are listed even before they become MX (phase 6),
 * and the policy changes only when the old server's name comes (phase 1) and goes (phase 9).
 */
export function mtaStsMxNames(
  serverNames: Record<Role, string>,
  oldServerRecordName?: string,
): string[] {
  const names = [serverNames.primary, serverNames.standby];
  if (oldServerRecordName) {
    names.push(oldServerRecordName);
  }
  return [...new Set(names.map((n) => n.toLowerCase().replace(/\.$/, "")))].sort();
}

/**
 * The policy file (RFC 8461 3.2): one `key: value` per line, LF-terminated (the RFC allows LF or
 * CRLF), version first.
 */
export function mtaStsPolicy(
  mode: Exclude<MtaStsMode, "none">,
  mx: string[],
  maxAgeSeconds: number,
): string {
  return [
    "version: STSv1",
    `mode: ${mode}`,
    ...mx.map((host) => `mx: ${host}`),
    `max_age: ${maxAgeSeconds}`,
    "",
  ].join("\n");
}

/**
 * The policy's id (RFC 8461 3.1: 1 to 32 letters or digits): derived from the policy text, so it
 * changes exactly when the policy does, and an update that leaves the policy alone leaves the
 * record alone.
 */
export function mtaStsId(policy: string): string {
  return createHash("sha256").update(policy).digest("hex").slice(0, 20);
}

/** `_mta-sts.<domain>` TXT (RFC 8461 3.1). */
export function mtaStsRecord(policy: string): string {
  return `v=STSv1; id=${mtaStsId(policy)}`;
}

/** `_smtp._tls.<domain>` TXT (RFC 8460 3): aggregate reports by mail. */
export function tlsRptRecord(reportEmail: string): string {
  return `v=TLSRPTv1; rua=mailto:${reportEmail}`;
}

/**
 * Problems of hastack:mail.mtaSts in this migration phase, naming the key. `enforce` while the
 * old server is among the MX would make senders refuse it unless its certificate is valid for
 * its MX name (`mx-old.<domain>`), which the stack neither issues nor can check: `testing` until
 * the old MX is removed (phase 8).
 */
export function checkMtaStsInput(
  mode: MtaStsMode,
  phase: number,
  mx: string[],
  oldMx?: string,
): string[] {
  const problems: string[] = [];
  const old = oldMx?.toLowerCase().replace(/\.$/, "");
  if (
    mode === "enforce" &&
    old &&
    mx.some((entry) => entry.split(/\s+/)[1]?.toLowerCase().replace(/\.$/, "") === old)
  ) {
    problems.push(
      `hastack:mail.mtaSts must be "testing" or "none" while migration phase ${phase} keeps the old ` +
        `server ${old} among the MX: "enforce" makes senders refuse it unless its certificate is ` +
        `valid for ${old}; enforce from phase 8 on`,
    );
  }
  return problems;
}
