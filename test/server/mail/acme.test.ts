// Issue 17, certificates: hastack-mail-cert (server/mail/hastack-mail-cert.sh as components/mail.ts
// renders it) obtains, installs and renews each mail server's certificate by ACME DNS-01, against
// a real ACME server (Debian's pebble) on loopback whose validation queries a real bind9 the test
// runs. What is proven here: the whole ACME flow — account, order for the service name and both
// server names, DNS-01 TXT records created and validated, the certificate installed where Postfix
// reads it, Postfix serving it after the reload, renewal with `--force-renewal` — on both servers.
// What is NOT proven here: the Route 53 API (no honest stand-in exists offline), so the challenge
// plugin is certbot's RFC 2136 one (python3-certbot-dns-rfc2136) against bind9 instead of
// production's `--dns-route53`; the IAM scope of the Route 53 path is checked under mocks
// (test/components/mail-pair.test.ts).
import { expect } from "chai";
import { ChildProcess, spawn, spawnSync } from "child_process";
import { randomBytes } from "crypto";
import * as fs from "fs";
import * as https from "https";
import * as path from "path";
import { renderCertScript } from "../../../components/mail";
import { mtaStsHost } from "../../../components/mail-mta-sts";
import {
  DOMAIN,
  freePort,
  HOSTNAME,
  MailServer,
  MailWorld,
  requireBinaries,
  run,
  SETTINGS,
  startBind9,
  stopProcess,
  waitFor,
} from "../../support/mail-harness";

const SERVER_NAMES = { primary: `mx1.${DOMAIN}`, standby: `mx2.${DOMAIN}` };

describe("ACME certificates: both servers obtain, install and renew theirs (pebble + bind9)", function () {
  let world: MailWorld;
  const servers: MailServer[] = [];
  let named: ChildProcess | undefined;
  let pebble: ChildProcess | undefined;
  let dir: string;
  let pebbleRoots: string;

  before(async function () {
    requireBinaries(
      ["pebble", "pebble"],
      ["certbot", "certbot"],
      ["/usr/sbin/named", "bind9"],
      ["tsig-keygen", "bind9"],
    );
    if (spawnSync("/usr/bin/python3", ["-c", "import certbot_dns_rfc2136"]).status !== 0) {
      throw new Error(
        "certbot's RFC 2136 plugin missing: install python3-certbot-dns-rfc2136 (test/install-deps.sh)",
      );
    }
    world = await MailWorld.create();
    dir = path.join(world.root, "acme");
    fs.mkdirSync(dir);

    // bind9: the domain's zone, dynamic updates of TXT records signed with the test's TSIG key.
    const dnsPort = await freePort();
    const secret = randomBytes(32).toString("base64");
    named = await startBind9({
      dir,
      port: dnsPort,
      zone: [],
      keys: `key "hastack-acme." { algorithm hmac-sha256; secret "${secret}"; };`,
      zoneOptions: 'update-policy { grant "hastack-acme." zonesub TXT; };',
      ready: { name: `ns.${DOMAIN}`, type: "A", contains: "127.0.0.1" },
    });
    const credentials = path.join(dir, "rfc2136.ini");
    fs.writeFileSync(
      credentials,
      [
        "dns_rfc2136_server = 127.0.0.1",
        `dns_rfc2136_port = ${dnsPort}`,
        "dns_rfc2136_name = hastack-acme.",
        `dns_rfc2136_secret = ${secret}`,
        "dns_rfc2136_algorithm = HMAC-SHA256",
        "",
      ].join("\n"),
      { mode: 0o600 },
    );

    // pebble: its HTTPS endpoint's certificate from the world's CA; DNS-01 checked through bind9.
    const acmePort = await freePort();
    const mgmtPort = await freePort();
    await world.issueCertificate(
      ["IP:127.0.0.1", "DNS:localhost"],
      path.join(dir, "pebble.key"),
      path.join(dir, "pebble.crt"),
    );
    fs.writeFileSync(
      path.join(dir, "pebble.json"),
      JSON.stringify({
        pebble: {
          listenAddress: `127.0.0.1:${acmePort}`,
          managementListenAddress: `127.0.0.1:${mgmtPort}`,
          certificate: path.join(dir, "pebble.crt"),
          privateKey: path.join(dir, "pebble.key"),
          httpPort: 5002,
          tlsPort: 5001,
          ocspResponderURL: "",
          externalAccountBindingRequired: false,
        },
      }),
    );
    pebble = spawn(
      "pebble",
      ["-config", path.join(dir, "pebble.json"), "-dnsserver", `127.0.0.1:${dnsPort}`],
      {
        env: { ...process.env, PEBBLE_VA_NOSLEEP: "1", PEBBLE_WFE_NONCEREJECT: "0" },
        stdio: [
          "ignore",
          fs.openSync(path.join(dir, "pebble.log"), "w"),
          fs.openSync(path.join(dir, "pebble.err"), "w"),
        ],
      },
    );
    await waitFor(
      "pebble listening",
      () => world.canConnect("127.0.0.1", mgmtPort),
      60000,
      () => fs.readFileSync(path.join(dir, "pebble.err"), "utf8"),
    );
    // The root that signs what pebble issues (random per run): what a client would trust.
    pebbleRoots = path.join(dir, "pebble-roots.pem");
    const ca = fs.readFileSync(world.caCert);
    const root = await new Promise<string>((resolve, reject) => {
      https
        .get(`https://127.0.0.1:${mgmtPort}/roots/0`, { ca }, (res) => {
          let body = "";
          res.on("data", (c) => (body += c));
          res.on("end", () => resolve(body));
        })
        .on("error", reject);
    });
    fs.writeFileSync(pebbleRoots, root);

    await world.setUsers({ [`alice@${DOMAIN}`]: "secret-alice" });
    // nginx too: it serves the MTA-STS policy with the same certificate (mta-sts.<domain>).
    const started = await Promise.all([
      world.server("mx1", "primary", world.ips[0], { web: true }),
      world.server("mx2", "standby", world.ips[1], { web: true }),
    ]);
    for (const server of started) {
      server.layout.acmeArgs = [
        "--server",
        `https://127.0.0.1:${acmePort}/dir`,
        "--dns-rfc2136",
        "--dns-rfc2136-credentials",
        credentials,
        "--dns-rfc2136-propagation-seconds",
        "1",
      ];
      fs.writeFileSync(
        path.join(server.layout.sbinDir, "hastack-mail-cert"),
        renderCertScript(SETTINGS, SERVER_NAMES, server.layout),
        { mode: 0o755 },
      );
      servers.push(server);
    }
  });

  after(async function () {
    await stopProcess(pebble);
    await stopProcess(named);
    await world?.dispose();
  });

  /** certbot trusts pebble's HTTPS endpoint through the world's CA (requests' CA bundle). */
  async function cert(server: MailServer, ...args: string[]): Promise<string> {
    const { stderr } = await run(path.join(server.layout.sbinDir, "hastack-mail-cert"), args, {
      env: { ...world.env(), REQUESTS_CA_BUNDLE: world.caCert },
      timeout: 240000,
    }).catch((e: { message: string; stderr?: string }) => {
      const logFile = path.join(server.layout.acmeDir, "logs", "letsencrypt.log");
      const tail = fs.existsSync(logFile)
        ? fs.readFileSync(logFile, "utf8").split("\n").slice(-25).join("\n")
        : "";
      throw new Error(`${e.message}\n${e.stderr ?? ""}\n--- certbot log (tail) ---\n${tail}`);
    });
    return stderr;
  }

  /**
   * The certificate Postfix presents on the submission port after STARTTLS, or (`web`) the one
   * nginx presents for mta-sts.<domain> — verified for that name against pebble's root.
   */
  function served(server: MailServer, web = false): { pem: string; text: string } {
    const name = web ? mtaStsHost(DOMAIN) : HOSTNAME;
    const port = web ? server.layout.ports.https : server.layout.ports.submission;
    const r = spawnSync(
      "openssl",
      [
        "s_client",
        "-connect",
        `${server.ip}:${port}`,
        ...(web ? [] : ["-starttls", "smtp"]),
        "-servername",
        name,
        "-verify_hostname",
        name,
        "-CAfile",
        pebbleRoots,
        "-verify_return_error",
      ],
      { input: "QUIT\r\n", encoding: "utf8", timeout: 30000 },
    );
    const pem =
      /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(r.stdout)?.[0] ?? "";
    const text = spawnSync("openssl", ["x509", "-noout", "-text"], {
      input: pem,
      encoding: "utf8",
    }).stdout;
    expect(r.stdout + r.stderr, `${server.name} s_client`).to.contain("Verify return code: 0 (ok)");
    return { pem, text };
  }

  for (const i of [0, 1]) {
    it(`${i === 0 ? "the primary" : "the standby"} obtains a certificate for the service name and Postfix serves it`, async () => {
      const server = servers[i];
      // Before: the first-boot certificate (not from pebble) does not verify against pebble's root.
      const before = spawnSync(
        "openssl",
        ["verify", "-CAfile", pebbleRoots, server.layout.tlsCert],
        { encoding: "utf8" },
      );
      expect(before.status).to.not.equal(0);
      const log = await cert(server, "obtain");
      expect(log).to.contain("installed");
      const verified = spawnSync(
        "openssl",
        [
          "verify",
          "-CAfile",
          pebbleRoots,
          "-untrusted",
          server.layout.tlsCert,
          server.layout.tlsCert,
        ],
        { encoding: "utf8" },
      );
      expect(verified.status, verified.stdout + verified.stderr).to.equal(0);
      const { text } = served(server);
      for (const name of [
        HOSTNAME,
        SERVER_NAMES.primary,
        SERVER_NAMES.standby,
        mtaStsHost(DOMAIN),
      ]) {
        expect(text, name).to.contain(`DNS:${name}`);
      }
      // nginx (the MTA-STS policy) serves the same certificate, reloaded by the deploy hook.
      await waitFor(
        "nginx serving the ACME certificate",
        async () => served(server, true).pem === served(server).pem,
        60000,
      );
      // certbot's state is on the data volume (a rebuild keeps it).
      expect(
        fs.existsSync(path.join(server.layout.acmeDir, "config", "renewal", "hastack-mail.conf")),
      ).to.equal(true);
    });
  }

  it("renewal (--force-renewal) installs a new certificate and Postfix serves it without a restart", async () => {
    const server = servers[0];
    const old = served(server).pem;
    // Without --force-renewal nothing is due: the same certificate stays.
    // (certbot sleeps up to 8 min before a renewal when not on a terminal, to spread the load on
    // Let's Encrypt — right for the timer, not for a test.)
    await cert(server, "renew", "--no-random-sleep-on-renew");
    expect(served(server).pem).to.equal(old);
    await cert(server, "renew", "--force-renewal", "--no-random-sleep-on-renew");
    await waitFor(
      "Postfix serving the renewed certificate",
      () => served(server).pem !== old,
      60000,
    );
    await waitFor(
      "nginx serving the renewed certificate",
      async () => served(server, true).pem === served(server).pem,
      60000,
    );
  });
});
