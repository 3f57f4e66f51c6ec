// The internet's side of the mail drill (issue 12, issue 17): a real Postfix outside the VPC, in
// a network namespace of its own linked to the rehearsal's router, with an address in no CIDR
// any security group names. It is both the office's correspondent and a receiving domain:
// - as a sender it takes the drill's messages into its queue (sendmail) and delivers them to the
//   stack's domain as any MTA does: MX looked up through the rehearsal's resolver, the next MX
//   tried when one refuses, deferred mail retried;
// - as a receiver it is the MX of its own domain (a zone this module adds to the rehearsal's
//   bind9 and removes again), where mail the office sends OUT arrives, to be DKIM-verified.
// Everything made here is removed by `remove()`; a leftover of a killed run is removed first.
import * as fs from "fs";
import * as path from "path";
import { spawnSync } from "child_process";
import { inCidr, StackModel } from "../model";
import { DrillServer } from "./container";
import { linkToRouter, namespaceExists, removeNamespace, sh } from "./outside";

/** The correspondent's domain: `.example` is reserved (RFC 2606), never a real one. */
export const WORLD_DOMAIN = "drill-world.example";
const MARK = "# hastack mail drill: world zone";

/** An address for the world MTA: outside every CIDR a security group names and not `taken`. */
export function worldMtaAddress(model: StackModel, taken: string[]): string {
  const cidrs = [...model.securityGroups.values()]
    .flatMap((g) => g.rules.map((r) => r.cidr))
    .filter((c): c is string => c !== undefined && c !== "0.0.0.0/0");
  for (const candidate of ["192.0.2.177", "192.0.2.199", "100.64.9.9"]) {
    if (!taken.includes(candidate) && !cidrs.some((c) => inCidr(candidate, c))) {
      return candidate;
    }
  }
  throw new Error("no address for the world MTA outside the stack's CIDRs");
}

/** The world zone: its MX is the world MTA. */
export function renderWorldZone(address: string, serial: number): string {
  return [
    `$ORIGIN ${WORLD_DOMAIN}.`,
    "$TTL 60",
    `@ IN SOA ns.rehearsal.invalid. hostmaster.rehearsal.invalid. ${serial} 900 300 86400 60`,
    "@ IN NS ns.rehearsal.invalid.",
    `@ IN MX 10 mx.${WORLD_DOMAIN}.`,
    `mx IN A ${address}`,
    "",
  ].join("\n");
}

/** main.cf of the world MTA (its own directories; relays to MX hosts; a mailbox for its domain). */
export function renderWorldMainCf(o: {
  dir: string;
  address: string;
  resolverNote?: string;
}): string {
  const d = (p: string): string => path.join(o.dir, p);
  return [
    "# The mail drill's world MTA (lib/rehearse/stack/drills/mail-world.ts).",
    "compatibility_level = 3.6",
    `queue_directory = ${d("spool")}`,
    `data_directory = ${d("data")}`,
    "mail_owner = postfix",
    "setgid_group = postdrop",
    `myhostname = mx.${WORLD_DOMAIN}`,
    `mydomain = ${WORLD_DOMAIN}`,
    "myorigin = $mydomain",
    `inet_interfaces = ${o.address}`,
    "inet_protocols = ipv4",
    `smtp_bind_address = ${o.address}`,
    "mydestination =",
    `mynetworks = 127.0.0.0/8, ${o.address}/32`,
    "alias_maps =",
    "alias_database =",
    "local_transport = error:no local delivery in the drill's world",
    "default_transport = smtp",
    "relay_transport = smtp",
    // MX from DNS through /etc/resolv.conf: the namespace's, the rehearsal's resolver.
    "smtp_host_lookup = dns",
    "smtp_dns_support_level = enabled",
    "smtp_tls_security_level = may",
    "smtpd_tls_security_level = none",
    // A drill lasts minutes: retry deferred mail within seconds, not Postfix's 5 to 67 minutes.
    "queue_run_delay = 5s",
    "minimal_backoff_time = 5s",
    "maximal_backoff_time = 10s",
    // Postfix's default connect timeout (30 s), as senders on the internet use it.
    "smtp_connect_timeout = 30s",
    `virtual_mailbox_domains = ${WORLD_DOMAIN}`,
    `virtual_mailbox_base = ${d("mailboxes")}`,
    "virtual_mailbox_maps = static:inbox/",
    "virtual_uid_maps = static:65534",
    "virtual_gid_maps = static:65534",
    "virtual_minimum_uid = 1",
    "smtpd_recipient_restrictions = permit_mynetworks, reject_unauth_destination",
    `maillog_file = ${d("postfix.log")}`,
    `maillog_file_prefixes = ${o.dir}`,
    "",
  ].join("\n");
}

export const WORLD_MASTER_CF = [
  "# The mail drill's world MTA: no chroot (its resolv.conf is the namespace's).",
  ...[
    "smtp      inet  n       -       n       -       -       smtpd",
    "pickup    unix  n       -       n       60      1       pickup",
    "cleanup   unix  n       -       n       -       0       cleanup",
    "qmgr      unix  n       -       n       300     1       qmgr",
    "tlsmgr    unix  -       -       n       1000?   1       tlsmgr",
    "rewrite   unix  -       -       n       -       -       trivial-rewrite",
    "bounce    unix  -       -       n       -       0       bounce",
    "defer     unix  -       -       n       -       0       bounce",
    "trace     unix  -       -       n       -       0       bounce",
    "verify    unix  -       -       n       -       1       verify",
    "flush     unix  n       -       n       1000?   0       flush",
    "proxymap  unix  -       -       n       -       -       proxymap",
    "smtp      unix  -       -       n       -       -       smtp",
    "relay     unix  -       -       n       -       -       smtp",
    "showq     unix  n       -       n       -       -       showq",
    "error     unix  -       -       n       -       -       error",
    "retry     unix  -       -       n       -       -       error",
    "discard   unix  -       -       n       -       -       discard",
    "virtual   unix  -       n       n       -       -       virtual",
    "anvil     unix  -       -       n       -       1       anvil",
    "scache    unix  -       -       n       -       1       scache",
    "postlog   unix-dgram n  -       n       -       1       postlogd",
  ],
  "",
].join("\n");

/** The world MTA of one drill run. */
export class WorldMta {
  readonly ns: string;
  readonly dir: string;
  private constructor(
    readonly router: string,
    readonly address: string,
    readonly resolver: string,
    readonly dnsDir: string,
    readonly rndcConf: string,
  ) {
    this.ns = router.replace(/^hsr-/, "hsw-");
    this.dir = `/run/hastack-drill-${this.ns}`;
  }

  private get etcDir(): string {
    return `/etc/netns/${this.ns}`;
  }

  /** argv run inside the world's namespace. */
  command(argv: string[]): string[] {
    return ["ip", "netns", "exec", this.ns, ...argv];
  }

  /**
   * Links a new namespace to the router, serves the world zone from the rehearsal's bind9 and
   * starts Postfix there. Removes a leftover of an earlier run first.
   */
  static create(
    o: { router: string; address: string; resolver: string; dnsDir: string; rndcConf: string },
    log: (l: string) => void,
  ): WorldMta {
    const w = new WorldMta(o.router, o.address, o.resolver, o.dnsDir, o.rndcConf);
    if (namespaceExists(w.ns) || fs.existsSync(w.dir)) {
      log(`world: removing a leftover of an earlier run (${w.ns})`);
      w.remove();
    }
    try {
      w.link();
      w.serveZone();
      w.startPostfix();
    } catch (e) {
      w.remove();
      throw e;
    }
    log(`world: Postfix at ${w.address} in ${w.ns}, MX of ${WORLD_DOMAIN}, resolver ${w.resolver}`);
    return w;
  }

  private link(): void {
    linkToRouter(this.router, this.ns, this.address, "hsw");
    fs.mkdirSync(this.etcDir, { recursive: true });
    fs.writeFileSync(path.join(this.etcDir, "resolv.conf"), `nameserver ${this.resolver}\n`);
  }

  private get zoneFile(): string {
    return path.join(this.dnsDir, `${WORLD_DOMAIN}.zone`);
  }

  private get namedConf(): string {
    return path.join(this.dnsDir, "named.conf");
  }

  private rndc(cmd: string): void {
    sh(["ip", "netns", "exec", this.router, "rndc", "-c", this.rndcConf, cmd]);
  }

  private serveZone(): void {
    fs.writeFileSync(this.zoneFile, renderWorldZone(this.address, Math.floor(Date.now() / 1000)));
    fs.appendFileSync(
      this.namedConf,
      `zone "${WORLD_DOMAIN}" { type primary; file "${this.zoneFile}"; }; ${MARK}\n`,
    );
    this.rndc("reconfig");
  }

  private startPostfix(): void {
    const d = (p: string): string => path.join(this.dir, p);
    fs.mkdirSync(this.dir, { recursive: true, mode: 0o755 });
    for (const sub of ["spool", "data", "mailboxes"]) {
      fs.mkdirSync(d(sub), { recursive: true });
    }
    const postfixUid = Number(sh(["id", "-u", "postfix"]).trim());
    fs.chownSync(d("data"), postfixUid, 0);
    fs.chownSync(d("mailboxes"), 65534, 65534);
    fs.writeFileSync(d("main.cf"), renderWorldMainCf({ dir: this.dir, address: this.address }));
    fs.writeFileSync(d("master.cf"), WORLD_MASTER_CF);
    fs.writeFileSync(d("postfix.log"), "");
    fs.chownSync(d("postfix.log"), postfixUid, 0);
    sh(this.command(["postfix", "-c", this.dir, "start"]));
  }

  /** Hands one message to the world MTA (its sendmail); true when its queue took it. */
  send(from: string, to: string, message: string): boolean {
    const r = spawnSync(
      "ip",
      ["netns", "exec", this.ns, "sendmail", "-C", this.dir, "-i", "-f", from, to],
      { input: message, encoding: "utf8", timeout: 30_000 },
    );
    return r.status === 0;
  }

  /** Messages still in the world MTA's queue (active, deferred, incoming, hold). */
  queued(): number {
    const out = sh(this.command(["postqueue", "-c", this.dir, "-j"]));
    return out.split("\n").filter((l) => l.trim().startsWith("{")).length;
  }

  /** Asks Postfix to retry deferred mail now (`postqueue -f`), as an operator would. */
  flush(): void {
    sh(this.command(["postqueue", "-c", this.dir, "-f"]));
  }

  log(): string {
    const f = path.join(this.dir, "postfix.log");
    return fs.existsSync(f) ? fs.readFileSync(f, "utf8") : "";
  }

  /** Messages delivered to the world's mailbox (files of its Maildir), oldest first. */
  inbox(): { file: string; text: string }[] {
    const out: { file: string; text: string }[] = [];
    for (const sub of ["new", "cur"]) {
      const dir = path.join(this.dir, "mailboxes", "inbox", sub);
      if (fs.existsSync(dir)) {
        for (const f of fs.readdirSync(dir).sort()) {
          out.push({ file: path.join(dir, f), text: fs.readFileSync(path.join(dir, f), "utf8") });
        }
      }
    }
    return out;
  }

  /** An A or MX answer of the rehearsal's resolver, seen from the world ("" when none). */
  resolve(name: string, type: "A" | "MX"): string {
    try {
      return sh(
        this.command(["dig", "+short", "+time=2", "+tries=1", `@${this.resolver}`, name, type]),
      )
        .trim()
        .split("\n")
        .filter(Boolean)
        .sort()
        .join(" ");
    } catch {
      return "";
    }
  }

  /** Stops Postfix, removes the namespace, its files and the world zone (idempotent). */
  remove(): void {
    removeNamespace(this.ns, [["postfix", "-c", this.dir, "stop"]]);
    fs.rmSync(this.etcDir, { recursive: true, force: true });
    fs.rmSync(this.dir, { recursive: true, force: true });
    if (fs.existsSync(this.namedConf)) {
      const conf = fs.readFileSync(this.namedConf, "utf8");
      if (conf.includes(MARK)) {
        fs.writeFileSync(
          this.namedConf,
          conf
            .split("\n")
            .filter((l) => !l.includes(MARK))
            .join("\n"),
        );
        spawnSync("ip", ["netns", "exec", this.router, "rndc", "-c", this.rndcConf, "reconfig"], {
          stdio: "ignore",
          timeout: 30_000,
        });
      }
    }
    fs.rmSync(this.zoneFile, { force: true });
  }
}

/** The Message-ID header lines of every message in `user`'s mailboxes on a mail server. */
export function mailboxHeaderLines(s: DrillServer, mailRoot: string, user: string): string {
  const [local, domain] = user.split("@");
  const root = path.join(mailRoot, domain, local, "Maildir");
  const r = spawnSync(
    "nsenter",
    [
      "-t",
      String(s.leader),
      "-a",
      "--",
      "sh",
      "-c",
      // Every stored message (INBOX and folders), one header line each; none is not an error.
      `test -d "$1" || exit 0; find "$1" -type f \\( -path '*/cur/*' -o -path '*/new/*' \\) -exec grep -m1 -ih '^message-id:' {} +; exit 0`,
      "sh",
      root,
    ],
    { encoding: "utf8", timeout: 120_000 },
  );
  if (r.status !== 0) {
    throw new Error(`${s.name}: cannot read ${root}: ${(r.stderr ?? "").trim()}`);
  }
  return r.stdout;
}
