// Values for the stack's SSM parameters in a rehearsal (issue 11). The synth shows secrets as
// "[secret]", so the rehearsal generates them the way the stack does (random passwords, SSH key
// pairs) and keeps equal what the components make equal — the two halves of an account's
// password, a key pair's private and public halves, a service's copy of another's public key.
// A secret no rule below covers is an error naming the parameter, never a guess.
import * as crypto from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { execFileSync } from "child_process";
import { dkimRecord, route53Txt } from "../../../components/mail";
import { StackModel } from "./model";

/** "<service>/<name>" tails whose values are the same secret (the two ends of one account). */
export const SHARED_SECRETS: string[][] = [
  ["nas/mysql-backup-password", "mysql/backup-user-password"],
  ["pbx/cdr-db-password", "mysql/cdr-user-password"],
];

/** `<svc>/<peer>-backup-ssh-public-key` is `<peer>`'s "ssh" key pair's public half. */
const PEER_PUBLIC_KEY = /^[a-z0-9-]+\/([a-z0-9]+)-backup-ssh-public-key$/;
const KEY_HALF = /^([a-z0-9-]+\/(?:[a-z0-9-]+-)?ssh)-(private|public)-key$/;

/** The "<service>/<name>" tail of a parameter name (`/hastack[/<stack>]/<service>/<name...>`). */
export function parameterTail(name: string, services: string[]): string {
  const parts = name.split("/").filter(Boolean);
  const i = parts.findIndex((p) => services.includes(p));
  return i < 0 ? parts.join("/") : parts.slice(i).join("/");
}

function keyPair(): { privateKey: string; publicKey: string } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "hastack-key-"));
  try {
    execFileSync("ssh-keygen", [
      "-q",
      "-t",
      "ed25519",
      "-N",
      "",
      "-C",
      "hastack-rehearsal",
      "-f",
      path.join(dir, "k"),
    ]);
    return {
      privateKey: fs.readFileSync(path.join(dir, "k"), "utf8"),
      publicKey: fs.readFileSync(path.join(dir, "k.pub"), "utf8").trim(),
    };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** A CA and a server certificate it signed, as the MySQL pair's @pulumi/tls resources make. */
function pairTls(commonName: string): { ca: string; cert: string; key: string } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "hastack-tls-"));
  const f = (name: string): string => path.join(dir, name);
  try {
    const openssl = (args: string[]): void => {
      execFileSync("openssl", args, { stdio: ["ignore", "ignore", "pipe"] });
    };
    openssl([
      "req",
      "-x509",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-days",
      "30",
      "-subj",
      "/CN=hastack rehearsal CA",
      "-keyout",
      f("ca.key"),
      "-out",
      f("ca.pem"),
    ]);
    openssl([
      "req",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-subj",
      `/CN=${commonName}`,
      "-keyout",
      f("key.pem"),
      "-out",
      f("req.pem"),
    ]);
    openssl([
      "x509",
      "-req",
      "-in",
      f("req.pem"),
      "-CA",
      f("ca.pem"),
      "-CAkey",
      f("ca.key"),
      "-CAcreateserial",
      "-days",
      "30",
      "-out",
      f("cert.pem"),
    ]);
    return {
      ca: fs.readFileSync(f("ca.pem"), "utf8"),
      cert: fs.readFileSync(f("cert.pem"), "utf8"),
      key: fs.readFileSync(f("key.pem"), "utf8"),
    };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

function password(): string {
  return crypto.randomBytes(18).toString("base64url");
}

export interface GeneratedSecrets {
  values: Record<string, { type: string; value: string; keyId?: string }>;
  /** A mailbox the rehearsal can log in to: user and clear-text password. */
  mailUser?: { user: string; password: string };
}

/** Generates every parameter's value; throws one error listing every parameter it cannot make. */
export function generateParameters(model: StackModel, domain: string): GeneratedSecrets {
  const services = [...new Set(model.servers.map((s) => s.service))];
  const out: GeneratedSecrets = { values: {} };
  const pairs = new Map<string, { privateKey: string; publicKey: string }>();
  const shared = new Map<number, string>();
  const pairOf = (base: string): { privateKey: string; publicKey: string } => {
    if (!pairs.has(base)) {
      pairs.set(base, keyPair());
    }
    return pairs.get(base)!;
  };
  const problems: string[] = [];
  let tls: { ca: string; cert: string; key: string } | undefined;
  for (const p of model.parameters) {
    const tail = parameterTail(p.name, services);
    let value: string | undefined = p.value;
    if (value === undefined) {
      const peer = PEER_PUBLIC_KEY.exec(tail);
      const half = KEY_HALF.exec(tail);
      const sharedIdx = SHARED_SECRETS.findIndex((g) => g.includes(tail));
      const ipRole = /^([a-z0-9]+)\/private-ip\/([a-z]+)$/.exec(tail);
      if (peer) {
        value = pairOf(`${peer[1]}/ssh`).publicKey;
      } else if (half) {
        const kp = pairOf(half[1]);
        value = half[2] === "private" ? kp.privateKey : kp.publicKey;
      } else if (sharedIdx >= 0) {
        if (!shared.has(sharedIdx)) {
          shared.set(sharedIdx, password());
        }
        value = shared.get(sharedIdx);
      } else if (ipRole) {
        value = model.servers.find(
          (s) => s.service === ipRole[1] && s.role === ipRole[2],
        )?.privateIp;
      } else if (tail === "mail/users") {
        const pw = password();
        const hash = execFileSync("openssl", ["passwd", "-6", "-stdin"], {
          input: pw,
          encoding: "utf8",
        }).trim();
        out.mailUser = { user: `rehearsal@${domain}`, password: pw };
        value = `rehearsal@${domain}:{SHA512-CRYPT}${hash}\n`;
      } else if (/^[a-z0-9]+\/ssh-host-key\/(primary|standby)$/.test(tail)) {
        // Each server's own host key (the stack's tls.PrivateKey, OpenSSH form); its public
        // half replaces the synth's mock key in the known_hosts lines (below).
        value = pairOf(tail).privateKey;
      } else if (/^mail\/dkim\/[a-z0-9-]+$/.test(tail)) {
        value = crypto
          .generateKeyPairSync("rsa", { modulusLength: 2048 })
          .privateKey.export({ type: "pkcs1", format: "pem" })
          .toString();
      } else if (/^mysql\/tls-(ca|cert|key)$/.test(tail)) {
        tls ??= pairTls(`db.internal.${domain}`);
        value = tls[tail.slice("mysql/tls-".length) as "ca" | "cert" | "key"];
      } else if (/password$/.test(tail)) {
        value = password();
      }
    }
    if (value === undefined) {
      problems.push(
        `${p.name}: no rule makes a rehearsal value for this secret (lib/rehearse/stack/secrets.ts)`,
      );
      continue;
    }
    out.values[p.name] = { type: p.type, value, keyId: p.keyId };
  }
  if (problems.length > 0) {
    throw new Error(problems.join("\n"));
  }
  pinGeneratedHostKeys(model, services, out, pairOf);
  publishGeneratedDkimKeys(model, services, out);
  return out;
}

/**
 * The DKIM records (`<selector>._domainkey.<domain>` TXT) carry the synth's mock public key: each
 * is replaced by the public half of the key generated for that selector (`mail/dkim/<selector>`),
 * as `pulumi up` publishes the public half of the key it stores — else no signature of the
 * rehearsal's servers could verify (the mail drill checks it, issue 17).
 */
export function publishGeneratedDkimKeys(
  model: StackModel,
  services: string[],
  out: GeneratedSecrets,
): void {
  for (const p of model.parameters) {
    const selector = /^mail\/dkim\/([a-z0-9-]+)$/.exec(parameterTail(p.name, services))?.[1];
    const pem = out.values[p.name]?.value;
    if (!selector || !pem) {
      continue;
    }
    const publicPem = crypto
      .createPublicKey(pem)
      .export({ type: "spki", format: "pem" })
      .toString();
    for (const zone of model.zones.filter((z) => !z.private)) {
      for (const r of zone.records) {
        if (r.type === "TXT" && r.name === `${selector}._domainkey.${zone.name}`) {
          r.values = [route53Txt(dkimRecord(publicPem))];
        }
      }
    }
  }
}

/**
 * known_hosts lines (`<svc>/ssh-known-hosts/<side>`: the peer's; `nas/ssh-known-hosts-sources`:
 * the NAS's sources) name the synth's mock host keys: each is replaced by the public half of the
 * key generated for that server, found through the per-side lines (side S pins the other side).
 */
function pinGeneratedHostKeys(
  model: StackModel,
  services: string[],
  out: GeneratedSecrets,
  pairOf: (base: string) => { privateKey: string; publicKey: string },
): void {
  const keyOf = (line: string): string => line.trim().split(/\s+/).slice(1, 3).join(" ");
  const generated = new Map<string, string>();
  for (const p of model.parameters) {
    const m = /^([a-z0-9]+)\/ssh-known-hosts\/(primary|standby)$/.exec(
      parameterTail(p.name, services),
    );
    if (m && p.value) {
      const peer = m[2] === "primary" ? "standby" : "primary";
      generated.set(keyOf(p.value), pairOf(`${m[1]}/ssh-host-key/${peer}`).publicKey);
    }
  }
  for (const p of model.parameters) {
    if (p.value && /\/ssh-known-hosts(\/|-sources$)/.test(p.name) && out.values[p.name]) {
      out.values[p.name].value = p.value
        .split("\n")
        .map((line) => {
          const real = generated.get(keyOf(line));
          return real ? `${line.trim().split(/\s+/)[0]} ${real}` : line;
        })
        .join("\n");
    }
  }
}
