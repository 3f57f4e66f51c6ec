// Issue 17: mail a user sends through either server of the pair carries a DKIM signature that
// verifies against the TXT record the stack publishes. Real Postfix + OpenDKIM (the rendered
// main.cf, opendkim.conf and the refresh script that installs the key from the SSM stub) sign;
// a real bind9 serves the selector record exactly as MailPair renders it for Route 53
// (route53Txt(dkimRecord(publicKeyPem)), quoted as the AWS provider sends it); an independent
// verifier (dkimpy, Debian's python3-dkim) checks the delivered message through that DNS server.
// Then a key rotation as the stack performs it: both selectors published (phase publish), the
// dkim-signing-selector parameter switched (phase sign), the refresh on each server installs the
// new key: new mail is signed with the new selector, and mail signed before with the old one
// still verifies while both records are published.
import { expect } from "chai";
import { ChildProcess, execFile, spawnSync } from "child_process";
import { generateKeyPairSync } from "crypto";
import * as fs from "fs";
import * as path from "path";
import { dkimRecord, route53Txt } from "../../../components/mail";
import {
  DKIM_SELECTOR,
  DOMAIN,
  freePort,
  MailServer,
  MailWorld,
  requireBinaries,
  run,
  SETTINGS,
  startBind9,
  stopProcess,
  waitFor,
} from "../../support/mail-harness";

const USER = `alice@${DOMAIN}`;
const PASSWORD = "secret-alice";

/** dkimpy's verify with DNS from our bind9 only; prints {"ok": bool, "d": ..., "s": ...}. */
const VERIFIER = `
import json, sys, dkim, dns.resolver
r = dns.resolver.Resolver(configure=False)
r.nameservers = ["127.0.0.1"]
r.port = int(sys.argv[1])
def txt(name, timeout=5):
    try:
        answer = r.resolve(name.decode().rstrip("."), "TXT", lifetime=timeout)
    except Exception:
        return None
    return b"".join(answer[0].strings)
msg = sys.stdin.buffer.read().replace(b"\\r\\n", b"\\n").replace(b"\\n", b"\\r\\n")
d = dkim.DKIM(msg)
try:
    ok = d.verify(dnsfunc=txt)
except dkim.DKIMException:
    ok = False
print(json.dumps({"ok": bool(ok), "d": (d.domain or b"").decode(), "s": (d.selector or b"").decode()}))
`;

describe("DKIM: both servers sign; the signature verifies against the published record", function () {
  let world: MailWorld;
  const servers: MailServer[] = [];
  let named: ChildProcess | undefined;
  let dnsPort: number;
  let privatePem: string;
  let publicPem: string;
  let nextPublicPem: string;
  let nextPrivatePem: string;
  const NEXT = "hastack2";
  /** Messages signed with the first selector, kept for the rotation test. */
  const signedBefore: string[] = [];

  before(async function () {
    requireBinaries(
      ["/usr/sbin/opendkim", "opendkim"],
      ["/usr/sbin/named", "bind9"],
      ["dig", "bind9-dnsutils"],
    );
    const py = spawnSync("/usr/bin/python3", ["-c", "import dkim, dns.resolver"]);
    if (py.status !== 0) {
      throw new Error(
        "dkimpy missing: install python3-dkim python3-dnspython (test/install-deps.sh)",
      );
    }
    // What tls.PrivateKey (RSA 2048) gives MailPair: PKCS#1 private PEM, SPKI public PEM.
    const pair = generateKeyPairSync("rsa", {
      modulusLength: 2048,
      privateKeyEncoding: { type: "pkcs1", format: "pem" },
      publicKeyEncoding: { type: "spki", format: "pem" },
    });
    privatePem = pair.privateKey;
    publicPem = pair.publicKey;
    const next = generateKeyPairSync("rsa", {
      modulusLength: 2048,
      privateKeyEncoding: { type: "pkcs1", format: "pem" },
      publicKeyEncoding: { type: "spki", format: "pem" },
    });
    nextPrivatePem = next.privateKey;
    nextPublicPem = next.publicKey;

    world = await MailWorld.create();
    world.setParameter(`dkim/${DKIM_SELECTOR}`, privatePem);
    world.setParameter("dkim-signing-selector", DKIM_SELECTOR);
    await world.setUsers({ [USER]: PASSWORD });
    servers.push(
      ...(await Promise.all([
        world.server("mx1", "primary", world.ips[0], { dkim: true }),
        world.server("mx2", "standby", world.ips[1], { dkim: true }),
      ])),
    );

    // bind9 serving the zone with the record as the stack renders it.
    dnsPort = await freePort();
    const dir = path.join(world.root, "named");
    fs.mkdirSync(dir);
    named = await startBind9({
      dir,
      port: dnsPort,
      zone: [
        // The AWS provider sends a TXT value to Route 53 wrapped in one pair of quotes.
        `${DKIM_SELECTOR}._domainkey IN TXT "${route53Txt(dkimRecord(publicPem))}"`,
        // The rotation's phase publish: the next selector's record beside the first.
        `${NEXT}._domainkey IN TXT "${route53Txt(dkimRecord(nextPublicPem))}"`,
      ],
      ready: { name: `${DKIM_SELECTOR}._domainkey.${DOMAIN}`, type: "TXT", contains: "v=DKIM1" },
    });
  });

  after(async function () {
    await stopProcess(named);
    await world?.dispose();
  });

  async function verify(message: string): Promise<{ ok: boolean; d: string; s: string }> {
    const child = execFile("/usr/bin/python3", ["-c", VERIFIER, String(dnsPort)], {
      timeout: 60000,
    });
    const out = new Promise<string>((resolve, reject) => {
      let stdout = "";
      let stderr = "";
      child.stdout!.on("data", (c) => (stdout += c));
      child.stderr!.on("data", (c) => (stderr += c));
      child.once("exit", (code) => (code === 0 ? resolve(stdout) : reject(new Error(stderr))));
    });
    child.stdin!.end(message);
    return JSON.parse(await out) as { ok: boolean; d: string; s: string };
  }

  /** Sends as the user through the server's submission port (STARTTLS + login), to the user. */
  async function submit(server: MailServer, token: string): Promise<string> {
    await run(
      "swaks",
      [
        "--server",
        `${server.ip}:${server.layout.ports.submission}`,
        "--tls",
        "--auth",
        "PLAIN",
        "--auth-user",
        USER,
        "--auth-password",
        PASSWORD,
        "--from",
        USER,
        "--to",
        USER,
        "--header",
        `Subject: dkim test ${token}`,
        "--header",
        `Message-Id: <${token}@example.net>`,
        "--body",
        `token ${token}\nsent through ${server.name}\n`,
      ],
      { timeout: 60000 },
    );
    await waitFor(
      `message ${token} on ${server.name}`,
      async () => (await server.tokens(USER)).includes(token),
      60000,
      () => server.log("postfix").split("\n").slice(-10).join("\n"),
    );
    // The stored bytes (Maildir), not a re-rendering of them.
    const maildir = path.join(server.layout.mailRoot, DOMAIN, "alice", "Maildir");
    const stored = ["new", "cur"]
      .flatMap((sub) =>
        fs.existsSync(path.join(maildir, sub))
          ? fs.readdirSync(path.join(maildir, sub)).map((f) => path.join(maildir, sub, f))
          : [],
      )
      .map((f) => fs.readFileSync(f, "utf8"))
      .filter((text) => text.includes(`<${token}@example.net>`));
    expect(stored, `stored copies of ${token}`).to.have.length(1);
    return stored[0];
  }

  for (const i of [0, 1]) {
    it(`mail sent through ${i === 0 ? "the primary" : "the standby"} verifies against the stack's record`, async () => {
      const server = servers[i];
      const text = await submit(server, `dkim${i}x${Date.now()}`);
      expect(text).to.match(new RegExp(`^DKIM-Signature:.*\\bs=${DKIM_SELECTOR};`, "ms"));
      const result = await verify(text);
      expect(result).to.deep.equal({ ok: true, d: DOMAIN, s: DKIM_SELECTOR });
      // The verifier can fail: the same message with one body byte changed does not verify.
      const tampered = await verify(text.replace(/sent through/, "sent thru"));
      expect(tampered.ok).to.equal(false);
      signedBefore.push(text);
    });
  }

  it("a rotation: after the switch both servers sign with the new selector; mail signed with the old one still verifies", async () => {
    expect(signedBefore, "messages from the tests above").to.have.length(2);
    // Phase sign: the stack stores the new key (since phase publish) and switches the selector.
    world.setParameter(`dkim/${NEXT}`, nextPrivatePem);
    world.setParameter("dkim-signing-selector", NEXT);
    for (const [i, server] of servers.entries()) {
      const { stderr } = await server.script("hastack-mail-refresh");
      expect(stderr).to.contain(`DKIM selector ${NEXT}`);
      const text = await submit(server, `rotated${i}x${Date.now()}`);
      expect(text).to.match(new RegExp(`^DKIM-Signature:.*\\bs=${NEXT};`, "ms"));
      expect(await verify(text)).to.deep.equal({ ok: true, d: DOMAIN, s: NEXT });
    }
    for (const text of signedBefore) {
      expect(await verify(text)).to.deep.equal({ ok: true, d: DOMAIN, s: DKIM_SELECTOR });
    }
    // An unreadable parameter later keeps the installed selector (never falls back to the old).
    fs.rmSync(path.join(world.ssmDir, SETTINGS.ssmPrefix, "dkim-signing-selector"));
    const { stderr } = await servers[0].script("hastack-mail-refresh");
    expect(stderr).to.contain("keeping the installed one");
    expect(fs.readFileSync(path.join(servers[0].layout.dkimKeyDir, "keytable"), "utf8")).to.contain(
      `:${NEXT}:`,
    );
  });
});
