// Test support: parsers for MTA-STS (RFC 8461) and TLS-RPT (RFC 8460) as a sending MTA reads
// them — the `_mta-sts` and `_smtp._tls` TXT records, the policy file, and how a policy's mx
// patterns match an MX host. Strict: anything a sender would reject (or that is ambiguous)
// throws, so a test that parses what the stack publishes can fail.

/** RFC 8461 3.1 / RFC 8460 3: `key=value` fields separated by `;` (optional WSP), v first. */
function parseFields(text: string, version: string, what: string): Map<string, string> {
  const fields = new Map<string, string>();
  const parts = text.split(";").map((p) => p.trim());
  if (parts[parts.length - 1] === "") {
    parts.pop();
  }
  for (const part of parts) {
    const m = /^([A-Za-z0-9_.-]{1,32})=([\x21-\x3a\x3c\x3e-\x7e]+)$/.exec(part);
    if (!m) {
      throw new Error(`${what}: malformed field ${JSON.stringify(part)}`);
    }
    if (fields.has(m[1])) {
      throw new Error(`${what}: field ${m[1]} repeated`);
    }
    fields.set(m[1], m[2]);
  }
  if ([...fields.keys()][0] !== "v" || fields.get("v") !== version) {
    throw new Error(`${what}: must start with v=${version}, got ${JSON.stringify(text)}`);
  }
  return fields;
}

/** `_mta-sts.<domain>` TXT: v=STSv1 first, id of 1 to 32 letters or digits. */
export function parseStsRecord(text: string): { id: string } {
  const fields = parseFields(text, "STSv1", "_mta-sts record");
  const id = fields.get("id");
  if (!id || !/^[A-Za-z0-9]{1,32}$/.test(id)) {
    throw new Error(`_mta-sts record: id must be 1 to 32 letters or digits, got ${String(id)}`);
  }
  return { id };
}

/** `_smtp._tls.<domain>` TXT: v=TLSRPTv1 first, rua a comma list of mailto: or https: URIs. */
export function parseTlsRptRecord(text: string): { rua: string[] } {
  const fields = parseFields(text, "TLSRPTv1", "_smtp._tls record");
  const rua = (fields.get("rua") ?? "").split(",").filter((u) => u !== "");
  if (rua.length === 0) {
    throw new Error("_smtp._tls record: rua missing");
  }
  for (const uri of rua) {
    if (!/^mailto:[^@\s,!]+@[A-Za-z0-9.-]+$/.test(uri) && !/^https:\/\/[^\s,!]+$/.test(uri)) {
      throw new Error(`_smtp._tls record: rua ${uri} is neither mailto: nor https:`);
    }
  }
  return { rua };
}

export interface StsPolicy {
  version: "STSv1";
  mode: "enforce" | "testing" | "none";
  mx: string[];
  maxAge: number;
}

const LABEL = "[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?";
const MX_PATTERN = new RegExp(`^(\\*\\.)?${LABEL}(\\.${LABEL})+$`);

/**
 * The policy file (RFC 8461 3.2): `field: value` lines ended by LF or CRLF; version STSv1,
 * mode, max_age (at most 31557600) and, unless mode is none, at least one mx (a host name or
 * `*.` plus one); repeated fields other than mx, blank or malformed lines are refused.
 */
export function parseStsPolicy(text: string): StsPolicy {
  if (!/\n$/.test(text)) {
    throw new Error("policy: the last line must end with LF or CRLF");
  }
  const lines = text.replace(/\n$/, "").split("\n");
  const seen = new Map<string, string>();
  const mx: string[] = [];
  for (const raw of lines) {
    const line = raw.replace(/\r$/, "");
    const m = /^([A-Za-z0-9_.-]{1,32}):[ \t]*([\x21-\x7e]([\x20-\x7e]*[\x21-\x7e])?)$/.exec(line);
    if (!m) {
      throw new Error(`policy: malformed line ${JSON.stringify(raw)}`);
    }
    const [, key, value] = m;
    if (key === "mx") {
      if (!MX_PATTERN.test(value)) {
        throw new Error(`policy: mx ${JSON.stringify(value)} is not a host name pattern`);
      }
      mx.push(value.toLowerCase());
    } else if (seen.has(key)) {
      throw new Error(`policy: field ${key} repeated`);
    } else {
      seen.set(key, value);
    }
  }
  if (seen.get("version") !== "STSv1") {
    throw new Error(`policy: version must be STSv1, got ${String(seen.get("version"))}`);
  }
  const mode = seen.get("mode");
  if (mode !== "enforce" && mode !== "testing" && mode !== "none") {
    throw new Error(`policy: mode must be enforce, testing or none, got ${String(mode)}`);
  }
  const maxAge = seen.get("max_age");
  if (!maxAge || !/^[0-9]{1,10}$/.test(maxAge) || Number(maxAge) > 31557600) {
    throw new Error(`policy: max_age must be 0 to 31557600 seconds, got ${String(maxAge)}`);
  }
  if (mode !== "none" && mx.length === 0) {
    throw new Error(`policy: mode ${mode} needs at least one mx`);
  }
  return { version: "STSv1", mode, mx, maxAge: Number(maxAge) };
}

/**
 * RFC 8461 4.1: an MX host matches a policy's mx pattern exactly (case-insensitive, the final
 * dot ignored), or `*.example.net` matches exactly one label more (`a.example.net`, not
 * `a.b.example.net`).
 */
export function mxMatches(pattern: string, host: string): boolean {
  const p = pattern.toLowerCase().replace(/\.$/, "");
  const h = host.toLowerCase().replace(/\.$/, "");
  if (p.startsWith("*.")) {
    const dot = h.indexOf(".");
    return dot > 0 && h.slice(dot + 1) === p.slice(2);
  }
  return p === h;
}

/** The MX hosts (from `preference host` values) that no mx pattern of the policy matches. */
export function mxNotCovered(policy: StsPolicy, mxValues: string[]): string[] {
  return mxValues
    .map((v) => v.trim().split(/\s+/)[1] ?? "")
    .filter((host) => !policy.mx.some((pattern) => mxMatches(pattern, host)));
}
