// What a mail server is configured with, checked by the real tools: postconf reads main.cf and
// master.cf (any warning fails), doveconf parses dovecot.conf, systemd-analyze the timers,
// bash -n every script, cloud-init schema the whole user-data. Plus the pure helpers' tables.
import { expect } from "chai";
import { expectValidCloudConfig } from "../support/cloud-init";
import { execFileSync, spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { gzipSync } from "zlib";
import {
  MailServerSettings,
  mailCloudConfigParts,
  migrationSyncCommand,
  PRODUCTION_LAYOUT,
  renderDovecotConf,
  renderFallbackScript,
  renderMainCf,
  renderMasterCf,
  renderMigrateScript,
  renderQueueScript,
  renderRefreshScript,
  renderSetupScript,
  renderSyncScript,
  renderTimerUnits,
  spfRecord,
  testChecklist,
} from "../../components/mail";
import { shellQuote, withoutComments } from "../../components/server-files";
import { renderCloudConfig } from "../../components/server-pair";
import { selfSignedCertificate } from "../../lib/rehearse/stack/pki";

const SETTINGS: MailServerSettings = {
  hostname: "mail.kantor-contoh.co.id",
  domain: "kantor-contoh.co.id",
  pop3: false,
  ssmPrefix: "/hastack/mail",
};
const SERVER_NAMES = { primary: "mx1.kantor-contoh.co.id", standby: "mx2.kantor-contoh.co.id" };

function need(binary: string, pkg: string): void {
  const found = spawnSync("sh", ["-c", `command -v ${binary} || test -x /usr/sbin/${binary}`]);
  if (found.status !== 0) {
    throw new Error(
      `${binary} not found: install the Debian package ${pkg} (bash test/install-deps.sh)`,
    );
  }
}

function run(
  cmd: string,
  args: string[],
): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(cmd, args, { encoding: "utf8" });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe("mail rendering, checked by the real tools", () => {
  let dir: string;
  let cert: string;
  let key: string;

  before(() => {
    need("postconf", "postfix");
    need("doveconf", "dovecot-core");
    need("cloud-init", "cloud-init");
    need("systemd-analyze", "systemd");
    need("openssl", "openssl");
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "hastack-mail-render-"));
    cert = path.join(dir, "mail.crt");
    key = path.join(dir, "mail.key");
    selfSignedCertificate({
      subject: `/CN=${SETTINGS.hostname}`,
      days: 1,
      keyFile: key,
      certFile: cert,
    });
  });

  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  function postfixDir(name: string, mainCf: string, masterCf = renderMasterCf()): string {
    const d = path.join(dir, name);
    fs.mkdirSync(d, { recursive: true });
    fs.writeFileSync(path.join(d, "main.cf"), mainCf);
    fs.writeFileSync(path.join(d, "master.cf"), masterCf);
    return d;
  }

  describe("Postfix (postconf)", () => {
    it("main.cf and master.cf load without a single warning", () => {
      const d = postfixDir("postfix", renderMainCf(SETTINGS));
      for (const flag of ["-n", "-M", "-P"]) {
        const r = run("postconf", ["-c", d, flag]);
        expect(r.status, r.stderr).to.equal(0);
        expect(r.stderr, `postconf ${flag}`).to.equal("");
      }
    });

    it("the check catches a mistake (a misspelt parameter warns)", () => {
      const d = postfixDir("postfix-typo", renderMainCf(SETTINGS) + "virtual_transprot = lmtp\n");
      expect(run("postconf", ["-c", d, "-n"]).stderr).to.contain(
        "unused parameter: virtual_transprot",
      );
    });

    it("serves the domain's virtual mailboxes through Dovecot LMTP, TLS, SASL via Dovecot", () => {
      const d = postfixDir("postfix-values", renderMainCf(SETTINGS));
      const values = Object.fromEntries(
        run("postconf", ["-c", d, "-n"])
          .stdout.trim()
          .split("\n")
          .map((l) => {
            const m = /^(\S+) =\s?(.*)$/.exec(l)!;
            return [m[1], m[2]];
          }),
      );
      expect(values).to.include({
        myhostname: "mail.kantor-contoh.co.id",
        mydomain: "kantor-contoh.co.id",
        virtual_mailbox_domains: "kantor-contoh.co.id",
        virtual_transport: "lmtp:unix:private/dovecot-lmtp",
        smtpd_sasl_type: "dovecot",
        smtpd_tls_cert_file: "/srv/data/tls/mail.crt",
        smtpd_tls_security_level: "may",
        smtpd_tls_auth_only: "yes",
        mydestination: "",
      });
      expect(values.smtpd_recipient_restrictions).to.contain("reject_unlisted_recipient");
    });

    it("listens on 25, 587 (STARTTLS required) and 465 (implicit TLS); logins only on 587/465", () => {
      const d = postfixDir("postfix-ports", renderMainCf(SETTINGS));
      const services = run("postconf", ["-c", d, "-M"]).stdout;
      expect(services).to.match(/^smtp\s+inet\s/m);
      expect(services).to.match(/^submission\s+inet\s/m);
      expect(services).to.match(/^submissions\s+inet\s/m);
      const params = run("postconf", ["-c", d, "-P"]).stdout;
      expect(params).to.contain("submission/inet/smtpd_tls_security_level = encrypt");
      expect(params).to.contain("submission/inet/smtpd_sasl_auth_enable = yes");
      expect(params).to.contain("submissions/inet/smtpd_tls_wrappermode = yes");
      expect(params).to.contain("submissions/inet/smtpd_sasl_auth_enable = yes");
      expect(params).not.to.match(/^smtp\/inet\/smtpd_sasl_auth_enable/m);
      expect(renderMainCf(SETTINGS)).to.contain("smtpd_sasl_auth_enable = no");
    });
  });

  describe("Dovecot (doveconf -n)", () => {
    const layout = { ...PRODUCTION_LAYOUT, tlsCert: "", tlsKey: "" };

    function doveconf(conf: string): { status: number | null; stdout: string; stderr: string } {
      const f = path.join(dir, `dovecot-${Math.random().toString(36).slice(2)}.conf`);
      fs.writeFileSync(f, conf);
      return run("doveconf", ["-n", "-c", f]);
    }

    it("parses, with IMAPS only, Maildir on the data volume and the doveadm replication port", () => {
      const r = doveconf(renderDovecotConf(SETTINGS, { ...layout, tlsCert: cert, tlsKey: key }));
      expect(r.status, r.stderr).to.equal(0);
      expect(r.stderr).to.equal("");
      expect(r.stdout).to.contain("protocols = imap lmtp");
      expect(r.stdout).not.to.contain("pop3");
      expect(r.stdout).to.contain("mail_location = maildir:/srv/data/mail/%d/%n/Maildir");
      expect(r.stdout).to.contain("ssl = required");
      expect(r.stdout).to.match(/inet_listener imaps \{\s+port = 993\s+ssl = yes/);
      expect(r.stdout).to.match(/inet_listener imap \{\s+port = 0/);
      expect(r.stdout).to.contain("doveadm_port = 12345");
      expect(r.stdout).to.contain("unix_listener /srv/data/postfix/private/dovecot-lmtp");
      expect(r.stdout).not.to.contain("doveadm_password");
    });

    it("offers POP3S on 995 when hastack:mail.pop3 is true", () => {
      const r = doveconf(
        renderDovecotConf({ ...SETTINGS, pop3: true }, { ...layout, tlsCert: cert, tlsKey: key }),
      );
      expect(r.status, r.stderr).to.equal(0);
      expect(r.stdout).to.contain("protocols = imap lmtp pop3");
      expect(r.stdout).to.match(/inet_listener pop3s \{\s+port = 995\s+ssl = yes/);
    });

    it("the check catches a mistake (a misspelt setting fails)", () => {
      const conf = renderDovecotConf(SETTINGS, { ...layout, tlsCert: cert, tlsKey: key }).replace(
        "mail_location =",
        "mail_locaton =",
      );
      const r = doveconf(conf);
      expect(r.status).to.not.equal(0);
      expect(r.stderr).to.contain("mail_locaton");
    });
  });

  describe("both servers are configured identically (only the IP differs)", () => {
    const parts = (role: "primary" | "standby") =>
      mailCloudConfigParts({
        settings: SETTINGS,
        role,
        syncIntervalMinutes: 5,
        serverNames: SERVER_NAMES,
      });

    it("same configs, same host name; scripts differ only in which side they are", () => {
      const p = parts("primary");
      const s = parts("standby");
      expect(p.hostname).to.equal(s.hostname);
      expect(p.fqdn).to.equal("mail.kantor-contoh.co.id");
      expect(s.fqdn).to.equal(p.fqdn);
      const byPath = (x: typeof p) => new Map((x.writeFiles ?? []).map((f) => [f.path, f.content]));
      const pf = byPath(p);
      const sf = byPath(s);
      expect([...pf.keys()]).to.deep.equal([...sf.keys()]);
      const differing = [...pf.keys()].filter((k) => pf.get(k) !== sf.get(k)).sort();
      expect(differing).to.deep.equal([
        "/usr/local/sbin/hastack-mail-refresh",
        "/usr/local/sbin/hastack-mail-setup",
        "/usr/local/sbin/hastack-mail-sync",
      ]);
      for (const f of ["main.cf", "master.cf", "dovecot.conf", "virtual"]) {
        expect(pf.get(`/etc/hastack/mail/${f}`), f)
          .to.be.a("string")
          .and.not.equal("");
      }
      expect(pf.get("/usr/local/sbin/hastack-mail-setup")).to.contain(
        "systemctl enable --now hastack-mail-sync.timer",
      );
      expect(sf.get("/usr/local/sbin/hastack-mail-setup")).not.to.contain(
        "enable --now hastack-mail-sync.timer",
      );
    });

    it("no secret is in the user-data (passwords come from SSM at boot)", () => {
      const text = JSON.stringify(parts("primary"));
      expect(text).not.to.match(/doveadm_password\s*=\s*[^%\s'"]/);
      expect(text).to.contain("/hastack/mail");
      expect(text).to.contain("doveadm-password");
    });

    for (const role of ["primary", "standby"] as const) {
      it(`the ${role}'s user-data passes cloud-init schema and fits EC2's 16 KB once gzipped`, () => {
        const userData = renderCloudConfig({
          ...parts(role),
          healthAgent: { servicePort: 25, failureThreshold: 3 },
        });
        expectValidCloudConfig(userData);
        // EC2 caps user-data at 16 KB; cloud-init reads gzip. ServerPair must send it gzipped.
        expect(gzipSync(userData, { level: 9 }).length).to.be.lessThan(16384);
      });
    }
  });

  describe("scripts and timers", () => {
    const scripts: Record<string, string> = {
      refresh: renderRefreshScript({ ...SETTINGS, role: "primary" }),
      sync: renderSyncScript({ ...SETTINGS, role: "primary" }),
      fallback: renderFallbackScript(),
      migrate: renderMigrateScript(SETTINGS),
      queue: renderQueueScript(),
      setup: renderSetupScript({
        settings: SETTINGS,
        role: "primary",
        syncIntervalMinutes: 5,
        serverNames: SERVER_NAMES,
      }),
    };
    for (const [name, text] of Object.entries(scripts)) {
      it(`${name}: bash -n accepts it, strict mode on`, () => {
        const f = path.join(dir, `${name}.sh`);
        fs.writeFileSync(f, text);
        const r = run("bash", ["-n", f]);
        expect(r.status, r.stderr).to.equal(0);
        expect(text.split("\n")[0]).to.equal("#!/bin/bash");
        expect(text).to.contain("set -euo pipefail");
      });
    }

    it("the pair sync is two-way (doveadm sync, never backup) to the peer's doveadm port", () => {
      expect(scripts.sync).to.contain(
        'doveadm -c /etc/dovecot/dovecot.conf sync -A -f -l 60 -T 300 "tcp:$PEER:12345"',
      );
      expect(scripts.sync).not.to.match(/doveadm[^\n]* backup/);
    });

    it("the migration step commands: every step a one-way sync -1 -R (never backup -R), against the pinned IP", () => {
      expect(
        migrationSyncCommand({
          mode: "initial",
          oldIp: "203.0.113.25",
          masterUser: "hastack-migrate",
        }),
      ).to.equal("/usr/local/sbin/hastack-mail-migrate initial 203.0.113.25 hastack-migrate 993");
      expect(scripts.migrate).to.contain("initial | final | retire) dsync=(sync -1 -R) ;;");
      const code = scripts.migrate.split("\n").filter((l) => !/^\s*#/.test(l));
      expect(code.join("\n")).to.not.contain("backup");
      // Step 9 (issue 18): the same merge, after the old server stopped taking SMTP on port 25.
      expect(
        migrationSyncCommand({
          mode: "retire",
          oldIp: "203.0.113.25",
          masterUser: "hastack-migrate",
        }),
      ).to.equal("/usr/local/sbin/hastack-mail-migrate retire 203.0.113.25 hastack-migrate 993 25");
      expect(scripts.migrate).to.contain('commonname="$OLD_NAME"');
      expect(scripts.migrate).to.contain("verify=1,capath=/etc/ssl/certs");
    });

    it("the queue lives on the data volume; first boot moves Debian's queue there and starts the metrics timer", () => {
      const d = postfixDir("postfix-queue", renderMainCf(SETTINGS));
      const queueDir = run("postconf", ["-c", d, "-h", "queue_directory"]).stdout.trim();
      // /srv/data is the data volume's mount point (server/common/hastack-mount-data.sh).
      expect(queueDir).to.equal("/srv/data/postfix");
      expect(renderDovecotConf(SETTINGS)).to.contain(
        "unix_listener /srv/data/postfix/private/dovecot-lmtp",
      );
      const setup = scripts.setup.split("\n");
      const line = (text: string): number => {
        const i = setup.findIndex((l) => l.includes(text));
        expect(i, text).to.be.greaterThan(-1);
        return i;
      };
      // Postfix stopped, the old queue adopted, directories made — all before any daemon starts.
      expect(line("systemctl stop postfix")).to.be.lessThan(
        line("hastack-mail-queue adopt /var/spool/postfix"),
      );
      expect(line("hastack-mail-queue adopt /var/spool/postfix")).to.be.lessThan(
        line("postfix check"),
      );
      expect(line("postfix check")).to.be.lessThan(
        line("systemctl restart opendkim dovecot postfix"),
      );
      expect(setup[line("systemctl enable --now hastack-mail-refresh.timer")]).to.contain(
        "hastack-mail-queue.timer",
      );
      const files = new Map(
        (
          mailCloudConfigParts({
            settings: SETTINGS,
            role: "standby",
            syncIntervalMinutes: 5,
            serverNames: SERVER_NAMES,
          }).writeFiles ?? []
        ).map((f) => [f.path, f.content]),
      );
      expect(files.get("/etc/systemd/system/hastack-mail-queue.service")).to.contain(
        "ExecStart=/usr/local/sbin/hastack-mail-queue metrics",
      );
      expect(files.get("/etc/systemd/system/hastack-mail-queue.timer")).to.contain(
        "OnUnitActiveSec=1min",
      );
      expect(files.get("/usr/local/sbin/hastack-mail-queue")).to.contain(
        "POSTFIX_DIR=/etc/postfix",
      );
    });

    it("user-data carries every file without its comment lines, and nothing else differs", () => {
      const parts = mailCloudConfigParts({
        settings: SETTINGS,
        role: "primary",
        syncIntervalMinutes: 5,
        serverNames: SERVER_NAMES,
      });
      const files = new Map((parts.writeFiles ?? []).map((f) => [f.path, f.content]));
      const rendered: Record<string, string> = {
        "/usr/local/sbin/hastack-mail-migrate": scripts.migrate,
        "/usr/local/sbin/hastack-mail-queue": scripts.queue,
        "/usr/local/sbin/hastack-mail-setup": scripts.setup,
        "/etc/hastack/mail/main.cf": renderMainCf(SETTINGS),
      };
      const code = (t: string): string[] => t.split("\n").filter((l) => !/^\s*#/.test(l));
      for (const [file, text] of Object.entries(rendered)) {
        const shipped = files.get(file)!;
        expect(code(shipped), file).to.deep.equal(code(text));
        expect(shipped.split("\n").slice(0, 2), file).to.deep.equal(text.split("\n").slice(0, 2));
        expect(shipped.length, file).to.be.lessThan(text.length);
      }
      // A heredoc whose body has a #-line would lose it: there is none in any script.
      for (const [name, text] of Object.entries(scripts)) {
        const lines = text.split("\n");
        lines.forEach((l, i) => {
          const m = /<<-?'?"?(\w+)/.exec(l.replace(/<<</g, ""));
          if (!m) {
            return;
          }
          for (let j = i + 1; j < lines.length && lines[j].trim() !== m[1]; j++) {
            expect(lines[j], `${name}: heredoc line ${j + 1}`).not.to.match(/^\s*#/);
          }
        });
      }
      const shippedQueue = path.join(dir, "queue-shipped.sh");
      fs.writeFileSync(shippedQueue, files.get("/usr/local/sbin/hastack-mail-queue")!);
      expect(run("bash", ["-n", shippedQueue]).status).to.equal(0);
      expect(withoutComments("#!/bin/bash\n# header\n  # why\nx=1 # keep\n")).to.equal(
        "#!/bin/bash\n# header\nx=1 # keep\n",
      );
    });

    for (const retryStatus of [undefined, 75]) {
      it(`timer units pass systemd-analyze verify (retry status ${retryStatus ?? "none"})`, () => {
        const exec = path.join(dir, "hastack-mail-sync");
        fs.writeFileSync(exec, "#!/bin/sh\n", { mode: 0o755 });
        const units = renderTimerUnits({
          name: "hastack-mail-sync",
          description: "sync",
          execStart: exec,
          minutes: 7,
          retryStatus,
        });
        fs.writeFileSync(path.join(dir, "hastack-mail-sync.service"), units.service);
        fs.writeFileSync(path.join(dir, "hastack-mail-sync.timer"), units.timer);
        const r = run("systemd-analyze", [
          "verify",
          path.join(dir, "hastack-mail-sync.service"),
          path.join(dir, "hastack-mail-sync.timer"),
        ]);
        expect(r.status, r.stderr).to.equal(0);
        expect(r.stderr).to.not.match(/SuccessExitStatus/);
        expect(units.timer).to.contain("OnUnitActiveSec=7min");
        // First run 3 min after the timer starts (provisioning's end), not at once after a long first boot.
        expect(units.timer).to.match(/^OnActiveSec=3min$/m);
        expect(units.timer).to.not.match(/^OnBootSec=/m);
        expect(units.service).to.match(new RegExp(`^SuccessExitStatus=${retryStatus ?? ""}$`, "m"));
      });
    }

    it("only the pair sync treats EX_TEMPFAIL (peer unreachable) as try-again; the others fail on it", () => {
      const parts = mailCloudConfigParts({
        settings: SETTINGS,
        role: "primary",
        syncIntervalMinutes: 5,
        serverNames: SERVER_NAMES,
      });
      const retry = Object.fromEntries(
        (parts.writeFiles ?? [])
          .filter((f) => f.path.endsWith(".service"))
          .map((f) => [path.basename(f.path), /^SuccessExitStatus=(.*)$/m.exec(f.content)?.[1]]),
      );
      expect(retry).to.deep.equal({
        "hastack-mail-sync.service": "75",
        "hastack-mail-refresh.service": "",
        "hastack-mail-queue.service": "",
        "hastack-mail-cert.service": "",
      });
    });
  });

  describe("pure helpers", () => {
    it("shellQuote leaves plain words and quotes the rest", () => {
      const table: [string, string][] = [
        ["/usr/local/sbin/x", "/usr/local/sbin/x"],
        ["203.0.113.25", "203.0.113.25"],
        ["a b", "'a b'"],
        ["it's", "'it'\\''s'"],
        ["$(rm -rf /)", "'$(rm -rf /)'"],
      ];
      for (const [input, quoted] of table) {
        expect(shellQuote(input), input).to.equal(quoted);
        expect(execFileSync("sh", ["-c", `printf %s ${quoted}`], { encoding: "utf8" })).to.equal(
          input,
        );
      }
    });

    it("SPF authorises exactly the given servers, softfail for the rest", () => {
      expect(spfRecord(["198.51.100.7", "198.51.100.8"])).to.equal(
        "v=spf1 ip4:198.51.100.7 ip4:198.51.100.8 ~all",
      );
      expect(spfRecord(["198.51.100.7", "198.51.100.8", "203.0.113.25"])).to.equal(
        "v=spf1 ip4:198.51.100.7 ip4:198.51.100.8 ip4:203.0.113.25 ~all",
      );
    });

    it("the step-4 checklist tests each new server by its own name: banner, IMAP login, a delivery", () => {
      const checks = testChecklist(SETTINGS, [SERVER_NAMES.primary, SERVER_NAMES.standby]);
      expect(checks.map((c) => `${c.server} ${c.check}`)).to.deep.equal([
        "mx1.kantor-contoh.co.id SMTP banner",
        "mx1.kantor-contoh.co.id IMAP login",
        "mx1.kantor-contoh.co.id a delivery",
        "mx2.kantor-contoh.co.id SMTP banner",
        "mx2.kantor-contoh.co.id IMAP login",
        "mx2.kantor-contoh.co.id a delivery",
      ]);
      expect(checks[0].expect).to.equal("220 mail.kantor-contoh.co.id ESMTP");
      expect(checks[1].command).to.contain(
        "--connect-to mail.kantor-contoh.co.id:993:mx1.kantor-contoh.co.id:993",
      );
    });
  });
});
