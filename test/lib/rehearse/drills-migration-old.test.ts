// The migration drill's old mail server (drills/migration-old.ts), on its own: in a router
// namespace this test makes, a message sent to it over SMTP lands in the user's Maildir, and a
// real IMAPS client that verifies the certificate against the shared host name logs in as the
// master user for that user and finds it and the mail stored before — what
// hastack-mail-migrate's imapc does on the new server.
import { expect } from "chai";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { execFileSync, spawnSync } from "child_process";
import { OldMailServer } from "../../../lib/rehearse/stack/drills/migration-old";
import { selfSignedCertificate } from "../../../lib/rehearse/stack/pki";

const root = process.getuid?.() === 0;
const haveTools = ["postfix", "dovecot", "openssl", "swaks"].every(
  (t) => spawnSync("sh", ["-c", `command -v ${t}`]).status === 0,
);

(root && haveTools ? describe : describe.skip)(
  "rehearse drills: the migration's old server",
  function () {
    this.timeout(300_000);
    const router = `hsr-mo${process.pid.toString(36)}`;
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "hastack-old-"));
    let old: OldMailServer | undefined;
    const hostname = "mail.kantor-contoh.co.id";
    const user = "rehearsal@kantor-contoh.co.id";

    before(() => {
      execFileSync("ip", ["netns", "add", router]);
      execFileSync("ip", ["-n", router, "link", "set", "lo", "up"]);
      // The router's own address (the rehearsal's router holds its admin addresses on lo).
      execFileSync("ip", ["-n", router, "addr", "add", "192.0.2.10/32", "dev", "lo"]);
      selfSignedCertificate({
        subject: "/CN=test CA",
        days: 2,
        keyFile: path.join(tmp, "ca.key"),
        certFile: path.join(tmp, "ca.crt"),
      });
      old = OldMailServer.create(
        {
          router,
          address: "203.0.113.25",
          hostname,
          domain: "kantor-contoh.co.id",
          users: [user],
          masterUser: "hastack-migrate",
          masterPassword: "s3cret-master",
          // The INBOX an earlier run's new servers copied: this old server continues it.
          uidValidity: { [user]: 1700000123 },
          ca: {
            cert: fs.readFileSync(path.join(tmp, "ca.crt"), "utf8"),
            key: path.join(tmp, "ca.key"),
          },
        },
        () => {},
      );
    });
    after(() => {
      old?.remove();
      spawnSync("ip", ["netns", "del", router]);
      fs.rmSync(tmp, { recursive: true, force: true });
    });

    it("takes mail over SMTP and serves it over verified IMAPS to the master user", async () => {
      old!.store(user, "From: a@b.example\nMessage-ID: <before@drill>\nSubject: old\n\nold\n", 1);
      execFileSync("ip", [
        "netns",
        "exec",
        router,
        "swaks",
        "--server",
        "203.0.113.25",
        "--to",
        user,
        "--from",
        "x@drill-world.example",
        "--header",
        "Message-Id: <smtp@drill>",
        "--silent",
        "2",
      ]);
      const deadline = Date.now() + 60_000;
      while (!old!.messageIds(user).includes("smtp@drill") && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 250));
      }
      expect(old!.messageIds(user).sort()).to.deep.equal(["before@drill", "smtp@drill"]);
      const py = [
        "import imaplib, ssl, sys",
        `c = ssl.create_default_context(cafile=${JSON.stringify(path.join(tmp, "ca.crt"))})`,
        "import socket",
        "class Old(imaplib.IMAP4_SSL):",
        "    def _create_socket(self, timeout):",
        '        return self.ssl_context.wrap_socket(socket.create_connection(("203.0.113.25", 993), 30), server_hostname=self.host)',
        `m = Old(${JSON.stringify(hostname)}, 993, ssl_context=c)`,
        `m.authenticate("PLAIN", lambda _: b"${user}\\0hastack-migrate\\0s3cret-master")`,
        "print(m.select('INBOX')[1][0].decode())",
        "print(m.status('INBOX', '(UIDVALIDITY)')[1][0].decode())",
      ].join("\n");
      const out = execFileSync("ip", ["netns", "exec", router, "/usr/bin/python3", "-c", py], {
        encoding: "utf8",
      });
      const [count, status] = out.trim().split("\n");
      expect(count).to.equal("2");
      expect(status).to.match(/UIDVALIDITY 1700000123\b/);
      // A wrong master password is refused.
      const bad = spawnSync(
        "ip",
        ["netns", "exec", router, "/usr/bin/python3", "-c", py.replace("s3cret-master", "wrong")],
        { encoding: "utf8" },
      );
      expect(bad.status).to.not.equal(0);
      expect(bad.stderr).to.match(/AUTHENTICATIONFAILED|authentication failed/i);
    });
  },
);
