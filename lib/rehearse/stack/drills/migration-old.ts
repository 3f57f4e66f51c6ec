// The migration drill's old mail server (issue 12 item 5): the server an office moves its mail
// FROM, outside the new pair — a real Postfix and a real Dovecot in a network namespace of its
// own, linked to the rehearsal's router at the address `hastack:mail.migration.oldServer.ip`
// names. Postfix takes the domain's mail into Maildirs (its MX while the move has not reached
// it); Dovecot serves them over IMAPS with a certificate for the shared host name signed by the
// rehearsal image's CA (which the new servers trust), and lets a master user log in as any user
// — what hastack-mail-migrate's imapc needs. Everything made here is removed by `remove()`.
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import { spawnSync } from "child_process";
import { WORLD_MASTER_CF } from "./mail-world";
import { linkToRouter, namespaceExists, removeNamespace, sh } from "./outside";
import { caSignedCertificate } from "../pki";

/** main.cf of the old server: the domain's mailboxes, delivered by Postfix's virtual(8). */
export function renderOldMainCf(o: {
  dir: string;
  address: string;
  hostname: string;
  domain: string;
}): string {
  const d = (p: string): string => path.join(o.dir, p);
  return [
    "# The migration drill's old mail server (lib/rehearse/stack/drills/migration-old.ts).",
    "compatibility_level = 3.6",
    `queue_directory = ${d("spool")}`,
    `data_directory = ${d("data")}`,
    "mail_owner = postfix",
    "setgid_group = postdrop",
    `myhostname = ${o.hostname}`,
    `inet_interfaces = ${o.address}`,
    "inet_protocols = ipv4",
    "mydestination =",
    "mynetworks = 127.0.0.0/8",
    "alias_maps =",
    "alias_database =",
    "local_transport = error:no local delivery on the drill's old server",
    "default_transport = error:the drill's old server sends nothing out",
    "smtpd_tls_security_level = none",
    `virtual_mailbox_domains = ${o.domain}`,
    `virtual_mailbox_base = ${d("mailboxes")}`,
    `virtual_mailbox_maps = texthash:${d("vmailbox")}`,
    "virtual_uid_maps = static:65534",
    "virtual_gid_maps = static:65534",
    "virtual_minimum_uid = 1",
    "smtpd_recipient_restrictions = permit_mynetworks, reject_unauth_destination",
    `maillog_file = ${d("postfix.log")}`,
    `maillog_file_prefixes = ${o.dir}`,
    "",
  ].join("\n");
}

/** dovecot.conf of the old server: IMAPS only, users from a file, a master user. */
export function renderOldDovecotConf(o: { dir: string; address: string }): string {
  const d = (p: string): string => path.join(o.dir, p);
  return [
    "# The migration drill's old mail server (lib/rehearse/stack/drills/migration-old.ts).",
    "protocols = imap",
    `listen = ${o.address}`,
    `base_dir = ${d("dovecot-run")}`,
    `state_dir = ${d("dovecot-state")}`,
    "instance_name = hastack-drill-old",
    `log_path = ${d("dovecot.log")}`,
    "ssl = required",
    `ssl_cert = <${d("cert.pem")}`,
    `ssl_key = <${d("key.pem")}`,
    "ssl_min_protocol = TLSv1.2",
    "auth_mechanisms = plain",
    "first_valid_uid = 1",
    `mail_location = maildir:${d("mailboxes")}/%d/%n/Maildir`,
    "mail_uid = 65534",
    "mail_gid = 65534",
    "passdb {",
    "  driver = passwd-file",
    `  args = ${d("master-users")}`,
    "  master = yes",
    "}",
    "passdb {",
    "  driver = passwd-file",
    `  args = ${d("users")}`,
    "}",
    "userdb {",
    "  driver = static",
    `  args = uid=65534 gid=65534 home=${d("mailboxes")}/%d/%n`,
    "}",
    "service imap-login {",
    "  inet_listener imap {",
    "    port = 0",
    "  }",
    "  inet_listener imaps {",
    "    port = 993",
    "  }",
    "}",
    "",
  ].join("\n");
}

/** The old mail server of one drill run. */
export class OldMailServer {
  readonly ns: string;
  readonly dir: string;
  private constructor(
    readonly router: string,
    readonly address: string,
    readonly hostname: string,
    readonly domain: string,
  ) {
    this.ns = router.replace(/^hsr-/, "hso-");
    this.dir = `/run/hastack-drill-${this.ns}`;
  }

  command(argv: string[]): string[] {
    return ["ip", "netns", "exec", this.ns, ...argv];
  }

  /**
   * Links a namespace at `address` to the router, makes the certificate (signed by `ca`), the
   * users (each with a password no one keeps: only the master user logs in) and starts Postfix
   * and Dovecot. Removes a leftover of an earlier run first.
   */
  static create(
    o: {
      router: string;
      address: string;
      hostname: string;
      domain: string;
      users: string[];
      masterUser: string;
      masterPassword: string;
      ca: { cert: string; key: string };
      /**
       * Per user, the UIDVALIDITY of the INBOX the new servers already copied from "the old
       * server" (an earlier run): this run's old server continues it, as the one real old server
       * would. Dovecot's imapc names every old INBOX by the same GUID (a hash of its name), so
       * one-way dsync copies nothing from an INBOX of another UIDVALIDITY whose UIDs the new
       * server already holds (exit 0; the retire check then refuses).
       */
      uidValidity?: Record<string, number>;
    },
    log: (l: string) => void,
  ): OldMailServer {
    const s = new OldMailServer(o.router, o.address, o.hostname, o.domain);
    if (namespaceExists(s.ns) || fs.existsSync(s.dir)) {
      log(`old server: removing a leftover of an earlier run (${s.ns})`);
      s.remove();
    }
    try {
      linkToRouter(s.router, s.ns, s.address, "hso");
      s.files(o);
      sh(s.command(["postfix", "-c", s.dir, "start"]));
      // Dovecot's master daemonizes keeping the caller's descriptors: none to wait on.
      const dv = spawnSync(
        "ip",
        s.command(["dovecot", "-c", path.join(s.dir, "dovecot.conf")]).slice(1),
        {
          stdio: ["ignore", "ignore", "pipe"],
          encoding: "utf8",
          timeout: 60_000,
        },
      );
      if (dv.status !== 0) {
        throw new Error(`old server: dovecot did not start: ${(dv.stderr ?? "").trim()}`);
      }
    } catch (e) {
      s.remove();
      throw e;
    }
    log(
      `old server: Postfix and Dovecot (IMAPS) at ${o.address} in ${s.ns}, ${o.users.length} user(s)`,
    );
    return s;
  }

  private files(o: {
    users: string[];
    masterUser: string;
    masterPassword: string;
    ca: { cert: string; key: string };
    uidValidity?: Record<string, number>;
  }): void {
    const d = (p: string): string => path.join(this.dir, p);
    fs.mkdirSync(this.dir, { recursive: true, mode: 0o755 });
    for (const sub of ["spool", "data", "mailboxes", "dovecot-run", "dovecot-state"]) {
      fs.mkdirSync(d(sub), { recursive: true });
    }
    const postfixUid = Number(sh(["id", "-u", "postfix"]).trim());
    fs.chownSync(d("data"), postfixUid, 0);
    fs.chownSync(d("mailboxes"), 65534, 65534);
    fs.writeFileSync(
      d("main.cf"),
      renderOldMainCf({
        dir: this.dir,
        address: this.address,
        hostname: this.hostname,
        domain: this.domain,
      }),
    );
    fs.writeFileSync(d("master.cf"), WORLD_MASTER_CF.replace("world MTA", "old server"));
    fs.writeFileSync(d("postfix.log"), "");
    fs.chownSync(d("postfix.log"), postfixUid, 0);
    for (const [user, uv] of Object.entries(o.uidValidity ?? {})) {
      const maildir = path.join(this.dir, "mailboxes", this.maildirOf(user));
      fs.mkdirSync(maildir, { recursive: true });
      fs.writeFileSync(path.join(maildir, "dovecot-uidlist"), `3 V${uv} N1\n`);
    }
    sh(["chown", "-R", "65534:65534", d("mailboxes")]);
    fs.writeFileSync(d("vmailbox"), o.users.map((u) => `${u} ${this.maildirOf(u)}/\n`).join(""));
    fs.writeFileSync(
      d("users"),
      o.users.map((u) => `${u}:{PLAIN}${crypto.randomBytes(18).toString("base64url")}\n`).join(""),
      { mode: 0o640 },
    );
    fs.writeFileSync(d("master-users"), `${o.masterUser}:{PLAIN}${o.masterPassword}\n`, {
      mode: 0o640,
    });
    // Dovecot's auth process reads them as its internal user (dovecot), never anyone else.
    const dovecotGid = Number(sh(["id", "-g", "dovecot"]).trim());
    fs.chownSync(d("users"), 0, dovecotGid);
    fs.chownSync(d("master-users"), 0, dovecotGid);
    fs.writeFileSync(
      d("dovecot.conf"),
      renderOldDovecotConf({ dir: this.dir, address: this.address }),
    );
    // The certificate names the shared host name, as the old server's real one does.
    fs.writeFileSync(d("ca.crt"), o.ca.cert);
    caSignedCertificate({
      dnsName: this.hostname,
      days: 2,
      caCert: d("ca.crt"),
      caKey: o.ca.key,
      keyFile: d("key.pem"),
      certFile: d("cert.pem"),
    });
  }

  /** A user's Maildir, relative to the mailbox base. */
  maildirOf(user: string): string {
    const [local, domain] = user.split("@");
    return `${domain}/${local}/Maildir`;
  }

  /** Puts a message straight into a user's Maildir (the mail the old server held before the move). */
  store(user: string, message: string, n: number): void {
    const dir = path.join(this.dir, "mailboxes", this.maildirOf(user));
    for (const sub of ["new", "cur", "tmp"]) {
      fs.mkdirSync(path.join(dir, sub), { recursive: true });
    }
    const f = path.join(dir, "cur", `${Math.floor(Date.now() / 1000)}.drill${n}.old:2,S`);
    fs.writeFileSync(f, message);
    sh(["chown", "-R", "65534:65534", path.join(this.dir, "mailboxes")]);
  }

  /** Message-IDs of every message in `user`'s mailboxes here. */
  messageIds(user: string): string[] {
    const root = path.join(this.dir, "mailboxes", this.maildirOf(user));
    const r = spawnSync(
      "sh",
      [
        "-c",
        `test -d "$1" || exit 0; find "$1" -type f \\( -path '*/cur/*' -o -path '*/new/*' \\) -exec grep -m1 -ih '^message-id:' {} +; exit 0`,
        "sh",
        root,
      ],
      { encoding: "utf8" },
    );
    return [...(r.stdout ?? "").matchAll(/^message-id:\s*<?([^>\s]+)>?/gim)].map((m) => m[1]);
  }

  /** README step 9's check on the old server: hastack-mail-retire-old (exit code, its stderr). */
  retire(script: string): { status: number; output: string } {
    const r = spawnSync(
      "ip",
      ["netns", "exec", this.ns, "bash", script, "--config-dir", this.dir, "--wait", "120"],
      { encoding: "utf8", timeout: 180_000 },
    );
    return { status: r.status ?? 1, output: `${r.stdout ?? ""}${r.stderr ?? ""}`.trim() };
  }

  log(): string {
    const f = path.join(this.dir, "postfix.log");
    return fs.existsSync(f) ? fs.readFileSync(f, "utf8") : "";
  }

  /** Stops Postfix and Dovecot, removes the namespace and its files (idempotent). */
  remove(): void {
    removeNamespace(this.ns, [
      ["postfix", "-c", this.dir, "stop"],
      ["doveadm", "-c", path.join(this.dir, "dovecot.conf"), "stop"],
    ]);
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}
