// The mail pair (issue 3): two identical Postfix + Dovecot servers — same host name and mail
// domain, only the IP differs — with Maildir storage on each server's data volume, TLS, one MX
// record set, SPF for both servers, a two-way dsync every few minutes (the mail RPO), and the
// planned migration from an old server in nine reviewed phases (components/mail-migration.ts).
//
// Everything a server runs is rendered here by pure functions and delivered as cloud-init
// user-data. The renderers take a MailLayout (paths, ports, users) so the tests run the very
// same configs and scripts against real postconf/doveconf/dovecot on loopback; production uses
// PRODUCTION_LAYOUT.
import * as pulumi from "@pulumi/pulumi";
import * as aws from "@pulumi/aws";
import * as command from "@pulumi/command";
import * as random from "@pulumi/random";
import type { MailConfig } from "../lib/config/stack-config";
import {
  checkMigrationInput,
  checkPhaseTransition,
  LAST_PHASE,
  MigrationPhaseError,
  migrationPlan,
  MigrationPlan,
  phaseTitle,
} from "./mail-migration";
import {
  CloudConfigParts,
  otherRole,
  pairBasics,
  PairPlacement,
  Role,
  ROLES,
  ServerPair,
  ServicePort,
  ServiceSummary,
} from "./server-pair";

/** Where the mail servers read their secrets and users (ServerPair grants `/hastack/mail/*`). */
export const MAIL_SSM_PREFIX = "/hastack/mail";

export interface MailPairArgs extends PairPlacement {
  /** hastack:mail, validated by parseStackConfig. */
  config: MailConfig;
  /**
   * The migration phase the stack's last update applied — index.ts reads it from the previous
   * outputs (services.mail.migrationPhase) or `synth --previous`. A move of more than one phase
   * is refused. Defaults to unknown (a new stack): not checked.
   */
  previousPhase?: pulumi.Input<number | undefined>;
  /** SSH user for the migration steps run on the active server. Defaults to "admin". */
  sshUser?: string;
  /**
   * hastack:sshPrivateKey (secret): the migration steps 2, 3 and 7 run as remote commands.
   * Defaults to none: they are not declared and the outputs list the commands to run by hand.
   */
  sshPrivateKey?: pulumi.Input<string>;
}

/** What an operator runs or checks: the migration step, the fallback, the PTRs (stack outputs). */
export interface MailOperations {
  migration: {
    phase: number;
    title: string;
    mx: string[];
    oldServerRecord: { name: string; ip: string } | null;
    next: { phase: number; title: string } | null;
    testChecklist: ServerCheck[];
    stepCommands: Record<string, string>;
  };
  fallbackCommand: string;
  /** Each server EIP's PTR (set by ServerPair's reverseDns): what receivers check. */
  reverseDns: Record<Role, { ip: pulumi.Input<string>; ptr: string }>;
}

/** ServiceSummary plus what only mail has (docs/outputs.md). */
export interface MailSummary extends ServiceSummary {
  migrationPhase: pulumi.Output<number>;
  syncIntervalMinutes: number;
}

/**
 * The mail pair: a ServerPair of two identical Postfix + Dovecot servers, the domain's MX, SPF
 * and migration records, the secrets the servers read from SSM, and the migration steps that
 * run commands. The per-phase records come from migrationPlan; nothing here depends on the
 * phase except those records and step commands, so a phase change never touches a server.
 */
export class MailPair extends pulumi.ComponentResource {
  public readonly pair: ServerPair;
  /** `mail.<domain>`: the host name of both servers and the name clients use. */
  public readonly serviceName: string;
  /** FQDN of each server's own A record (mx1/mx2): MX targets and PTR names. */
  public readonly serverNames: Record<Role, string>;
  /** What the configured phase declares. */
  public readonly migration: MigrationPlan;
  /** The applied phase, checked against previousPhase (a refused move fails the update). */
  public readonly migrationPhase: pulumi.Output<number>;
  public readonly summary: MailSummary;
  /** Everything an operator needs for the migration and the fallback, for the stack outputs. */
  public readonly operations: pulumi.Output<MailOperations>;
  /** The migration step commands, when hastack:sshPrivateKey is set. */
  public readonly commands: Record<string, command.remote.Command>;

  constructor(name: string, args: MailPairArgs, opts?: pulumi.ComponentResourceOptions) {
    super("hastack:mail:MailPair", name, {}, opts);
    const cfg = args.config;
    const switchover = cfg.switchover ?? "dns";
    const sshUser = args.sshUser ?? "admin";
    const layout = PRODUCTION_LAYOUT;
    this.serviceName = `${cfg.hostname}.${args.domain}`;
    this.serverNames = {
      primary: `${cfg.serverNames.primary}.${args.domain}`,
      standby: `${cfg.serverNames.standby}.${args.domain}`,
    };
    const active = cfg.active;
    const old = cfg.migration.oldServer;
    const phase = cfg.migration.phase;
    const planInput = {
      phase,
      oldServer: old,
      domain: args.domain,
      activeServer: this.serverNames[active],
      standbyServer: this.serverNames[otherRole(active)],
    };
    const problems = checkMigrationInput(planInput);
    if (old && old.hostname.toLowerCase() !== this.serviceName) {
      problems.push(
        `hastack:mail.migration.oldServer.hostname must be the new servers' host name ` +
          `${this.serviceName} (hastack:mail.hostname + hastack:domain) — step 1 builds them with ` +
          `the old server's name, only the IP differs — got "${old.hostname}"`,
      );
    }
    if (problems.length > 0) {
      throw new Error(`MailPair ${name}: ${problems.join("; ")}`);
    }
    // A plain previous phase is checked now, before anything is declared; one that is still
    // an Output (read from the stack's own state) fails the update when it resolves.
    const check = (previous: number | undefined): void => checkMigrationStep(previous, phase);
    if (!pulumi.Output.isInstance(args.previousPhase)) {
      check(args.previousPhase as number | undefined);
    }
    this.migrationPhase = pulumi.output(args.previousPhase).apply((previous) => {
      check(previous);
      return phase;
    });
    this.migration = migrationPlan(planInput);

    const settings: MailServerSettings = {
      hostname: this.serviceName,
      domain: args.domain,
      pop3: cfg.pop3,
      ssmPrefix: MAIL_SSM_PREFIX,
    };
    const cloudConfig = {} as Record<Role, CloudConfigParts>;
    for (const side of ROLES) {
      cloudConfig[side] = mailCloudConfigParts({
        settings,
        role: side,
        syncIntervalMinutes: cfg.syncIntervalMinutes,
        serverNames: this.serverNames,
        layout,
      });
    }
    this.pair = new ServerPair(
      `${name}-pair`,
      {
        ...pairBasics("mail", cfg, args, switchover),
        cloudConfig,
        servicePorts: mailServicePorts(cfg.pop3, layout.ports),
        // dsync between the servers: the doveadm server, reachable from the peer only.
        peerPorts: [22, layout.ports.doveadm],
        // SMTP delivery to the world; during a migration, IMAPS to the old server (steps 3, 7).
        egress: [
          { protocol: "tcp", fromPort: 25, cidrs: ["0.0.0.0/0"], description: "SMTP delivery" },
          ...(old
            ? [
                {
                  protocol: "tcp" as const,
                  fromPort: 993,
                  cidrs: [`${old.ip}/32`],
                  description: "IMAPS to the old mail server (migration sync)",
                },
              ]
            : []),
        ],
        healthCheck: {
          type: "TCP",
          port: layout.ports.smtp,
          failureThreshold: cfg.healthCheck.failureThreshold,
        },
        serviceName: this.serviceName,
        serverNames: this.serverNames,
        // Receivers check that a sending IP's PTR names a host that resolves back to it.
        reverseDns: true,
        // Until step 6 moves new mail to the new servers, clients keep using the old one.
        serviceAddressOverride: this.migration.clientsOnOldServer && old ? old.ip : undefined,
      },
      { parent: this },
    );
    if (this.pair.ssmPrefix !== MAIL_SSM_PREFIX) {
      throw new Error(
        `MailPair ${name}: the servers may read ${this.pair.ssmPrefix}/*, but their scripts read ${MAIL_SSM_PREFIX}`,
      );
    }

    // Secrets and settings the servers pull at boot and before every sync.
    const doveadmPassword = new random.RandomPassword(
      `${name}-doveadm-password`,
      // Alphanumeric: it lands unquoted in a Dovecot setting.
      { length: 32, special: false },
      { parent: this },
    );
    new aws.ssm.Parameter(
      `${name}-doveadm-password`,
      {
        name: `${MAIL_SSM_PREFIX}/doveadm-password`,
        type: "SecureString",
        keyId: args.secretsKeyArn,
        value: doveadmPassword.result,
        description: "hastack: password of the doveadm server the peer's dsync logs in to",
      },
      { parent: this },
    );
    new aws.ssm.Parameter(
      `${name}-users`,
      {
        name: `${MAIL_SSM_PREFIX}/users`,
        type: "SecureString",
        keyId: args.secretsKeyArn,
        // Advanced: up to 8 KB of passwd-file lines (about 50 users with SHA512-CRYPT hashes).
        tier: "Advanced",
        value: pulumi.secret(USERS_PLACEHOLDER),
        description:
          "hastack: mail users, user@domain:{SCHEME}hash per line (migration step 2); set with aws ssm put-parameter --overwrite",
      },
      // The operator owns the value: the stack creates the parameter once and never resets it.
      { parent: this, ignoreChanges: ["value"], protect: true, retainOnDelete: true },
    );
    for (const side of ROLES) {
      new aws.ssm.Parameter(
        `${name}-${side}-private-ip`,
        {
          name: `${MAIL_SSM_PREFIX}/private-ip/${side}`,
          type: "String",
          value: this.pair.privateIps[side],
          description: `hastack: private address of the mail ${side} (its peer's dsync target)`,
        },
        { parent: this },
      );
    }

    // DNS: the ONE MX record set of the domain; SPF and the old server's A record below, after
    // the step commands (step 9's records wait for its check).
    args.dns.record(this, `${name}-mx`, {
      name: args.domain,
      type: "MX",
      ttl: cfg.ttl,
      records: this.migration.mx,
    });
    // Migration steps that run on the new active server: declared from their phase on, so
    // each runs once when its phase is applied (and again only after a rollback past it).
    const stepCommands: Record<string, string> = {};
    if (old) {
      const spec = { oldIp: old.ip, masterUser: old.masterUser };
      if (this.migration.steps.importUsers) {
        stepCommands["import-users"] = `${layout.sbinDir}/hastack-mail-refresh --require-users`;
      }
      if (this.migration.steps.initialSync) {
        stepCommands["initial-sync"] = migrationSyncCommand({ ...spec, mode: "initial" }, layout);
      }
      if (this.migration.steps.finalSync) {
        stepCommands["final-sync"] = migrationSyncCommand({ ...spec, mode: "final" }, layout);
      }
      if (this.migration.steps.retireOld) {
        stepCommands["retire-old"] = migrationSyncCommand({ ...spec, mode: "retire" }, layout);
      }
    }
    this.commands = {};
    if (Object.keys(stepCommands).length > 0 && args.sshPrivateKey === undefined) {
      pulumi.log.warn(
        `hastack:sshPrivateKey is not set: migration phase ${phase} declares no remote commands; ` +
          `run on ${this.serverNames[active]}: ${Object.values(stepCommands)
            .map((c) => `sudo ${c}`)
            .join(" && ")}`,
        this,
      );
    } else if (args.sshPrivateKey !== undefined) {
      const privateKey = pulumi.secret(args.sshPrivateKey);
      let previous: command.remote.Command | undefined;
      for (const [key, text] of Object.entries(stepCommands)) {
        previous = new command.remote.Command(
          `${name}-${key}`,
          {
            connection: {
              host: this.pair.publicIps[active],
              user: sshUser,
              privateKey,
              dialErrorLimit: 40,
            },
            // First boot must have finished (users, secrets, services) before a step runs.
            create: `cloud-init status --wait >/dev/null 2>&1; sudo -n ${text}`,
          },
          { parent: this, dependsOn: previous ? [previous] : [] },
        );
        this.commands[key] = previous;
      }
    }

    // Step 9 drops the old server from SPF (and deletes its A record, which the engine does after
    // every create and update) only once its check has passed: a refusal leaves DNS as it was.
    const retire = this.commands["retire-old"];
    const senders: pulumi.Input<string>[] = [
      this.pair.publicIps.primary,
      this.pair.publicIps.standby,
    ];
    if (old && this.migration.spfAuthorisesOldServer) {
      senders.push(old.ip);
    }
    args.dns.record(
      this,
      `${name}-spf`,
      {
        name: args.domain,
        type: "TXT",
        ttl: 300,
        records: [pulumi.all(senders).apply(spfRecord)],
      },
      retire ? { dependsOn: [retire] } : undefined,
    );
    if (this.migration.oldServerRecord) {
      args.dns.record(this, `${name}-old-mx`, {
        name: this.migration.oldServerRecord.name,
        type: "A",
        ttl: 300,
        records: [this.migration.oldServerRecord.ip],
      });
    }

    this.summary = {
      ...this.pair.summary,
      // A failover loses at most what arrived since the last sync.
      rpoSeconds: cfg.syncIntervalMinutes * 60,
      migrationPhase: this.migrationPhase,
      syncIntervalMinutes: cfg.syncIntervalMinutes,
    };
    const next = phase > 0 && phase < LAST_PHASE ? phase + 1 : undefined;
    this.operations = pulumi.output<MailOperations>({
      migration: {
        phase,
        title: this.migration.title,
        mx: this.migration.mx,
        oldServerRecord: this.migration.oldServerRecord ?? null,
        next: next === undefined ? null : { phase: next, title: phaseTitle(next) },
        // Step 4: what to test on each new server before the MX moves.
        testChecklist: testChecklist(settings, [
          this.serverNames.primary,
          this.serverNames.standby,
        ]),
        // What the step commands run (by hand when hastack:sshPrivateKey is not set).
        stepCommands: Object.fromEntries(
          Object.entries(stepCommands).map(([k, c]) => [k, `sudo ${c}`]),
        ),
      },
      // Before a fallback, on the primary: reverse sync (two-way), verify, then unfence.
      fallbackCommand: `ssh ${sshUser}@${this.serverNames.primary} sudo ${layout.sbinDir}/hastack-mail-fallback`,
      reverseDns: {
        primary: { ip: this.pair.publicIps.primary, ptr: this.serverNames.primary },
        standby: { ip: this.pair.publicIps.standby, ptr: this.serverNames.standby },
      },
    });
    this.registerOutputs({
      summary: this.summary,
      migrationPhase: this.migrationPhase,
      operations: this.operations,
    });
  }
}

/** Placeholder of the users parameter until the operator stores the users (step 2). */
export const USERS_PLACEHOLDER =
  "# hastack mail users: one user@domain:{SHA512-CRYPT}hash per line (doveadm pw -s SHA512-CRYPT)\n";

/**
 * Refuses a migration move of more than one phase (naming the skipped steps) as a RunError,
 * which the CLI and `npm run synth` print as the message alone, without a stack trace.
 */
export function checkMigrationStep(previous: number | undefined, next: number): void {
  try {
    checkPhaseTransition(previous, next);
  } catch (e) {
    throw e instanceof MigrationPhaseError ? new pulumi.RunError(e.message) : e;
  }
}

/** The ports clients use, with their monitoring probes. */
export function mailServicePorts(pop3: boolean, ports: MailPorts = MAIL_PORTS): ServicePort[] {
  const tcp = (
    port: number,
    name: string,
    description: string,
    probe: ServicePort["probe"],
  ): ServicePort => ({ protocol: "tcp", fromPort: port, description, name, probe });
  return [
    tcp(ports.smtp, "smtp", "SMTP: mail from other servers (MX)", "smtp_banner"),
    tcp(ports.submission, "submission", "SMTP submission (STARTTLS, login)", "tcp"),
    tcp(ports.smtps, "smtps", "SMTP submission (implicit TLS, login)", "tcp"),
    tcp(ports.imaps, "imaps", "IMAP over TLS", "imaps"),
    ...(pop3 ? [tcp(ports.pop3s, "pop3s", "POP3 over TLS", "tcp")] : []),
  ];
}

/** Ports a mail server listens on. */
export interface MailPorts {
  smtp: number;
  submission: number;
  smtps: number;
  imaps: number;
  pop3s: number;
  /** doveadm server: the peer's dsync endpoint (reachable only from the peer, see peerPorts). */
  doveadm: number;
}

export const MAIL_PORTS: MailPorts = {
  smtp: 25,
  submission: 587,
  smtps: 465,
  imaps: 993,
  pop3s: 995,
  doveadm: 12345,
};

/** Where things live on a mail server. Tests move everything into a temp dir. */
export interface MailLayout {
  /** Maildirs: `<mailRoot>/<domain>/<user>/Maildir`, on the data volume. */
  mailRoot: string;
  tlsCert: string;
  tlsKey: string;
  /** The complete Dovecot configuration (Debian's conf.d is not used). */
  dovecotConfig: string;
  /** Dovecot passwd-file (users and password hashes), pulled from SSM. */
  usersFile: string;
  /** `doveadm_password`, pulled from SSM; included by dovecot.conf, mode 0600. */
  secretsFile: string;
  postfixConfigDir: string;
  /** Postfix queue; Dovecot's LMTP and auth sockets live in its private/ directory. */
  postfixQueueDir: string;
  /** Postfix data_directory. */
  postfixDataDir: string;
  /** Sync state, peer address, last-success stamp. */
  stateDir: string;
  /** Where the hastack mail scripts are installed. */
  sbinDir: string;
  mailUser: string;
  mailGroup: string;
  mailUid: number;
  /** Listen on this address only (tests: 127.0.0.1). Defaults to every interface. */
  listenAddress?: string;
  ports: MailPorts;
  /** Run Postfix daemons chrooted in the queue (Debian's default). */
  postfixChroot: boolean;
  /** Dovecot's base_dir (sockets, pid). Defaults to Dovecot's built-in /run/dovecot. */
  dovecotBaseDir?: string;
  /** Dovecot's state_dir. Defaults to Dovecot's built-in /var/lib/dovecot. */
  dovecotStateDir?: string;
  /** Dovecot log file. Defaults to syslog. */
  dovecotLog?: string;
  /** Postfix log file (tests, which have no syslog). Defaults to syslog. */
  postfixLog?: string;
  /** Releases the fencing latch (ServerPair's health agent) once data is synced back. */
  unfenceCommand: string;
  /** node_exporter's textfile collector (docs/outputs.md: the replication metric). */
  textfileDir: string;
  /** CA file that verifies the old server's certificate in the migration. Defaults to the system CAs. */
  tlsClientCaFile?: string;
}

export const PRODUCTION_LAYOUT: MailLayout = {
  mailRoot: "/srv/data/mail",
  tlsCert: "/srv/data/tls/mail.crt",
  tlsKey: "/srv/data/tls/mail.key",
  dovecotConfig: "/etc/dovecot/dovecot.conf",
  usersFile: "/etc/dovecot/users",
  secretsFile: "/etc/dovecot/hastack-secrets.conf",
  postfixConfigDir: "/etc/postfix",
  postfixQueueDir: "/var/spool/postfix",
  postfixDataDir: "/var/lib/postfix",
  stateDir: "/var/lib/hastack/mail",
  sbinDir: "/usr/local/sbin",
  mailUser: "vmail",
  mailGroup: "vmail",
  mailUid: 5000,
  ports: MAIL_PORTS,
  postfixChroot: true,
  unfenceCommand: "/usr/local/sbin/hastack-unfence",
  textfileDir: "/var/lib/prometheus/node-exporter",
};

/** What both servers share: identity and options. */
export interface MailServerSettings {
  /** FQDN in the SMTP banner and HELO, the same on both servers (and the old one). */
  hostname: string;
  /** The mail domain (virtual mailbox domain). */
  domain: string;
  /** Offer POP3S besides IMAPS. */
  pop3: boolean;
  /** SSM path the servers read users and secrets from, e.g. /hastack/mail. */
  ssmPrefix: string;
}

/** Largest message accepted (SMTP) — 50 MiB, what office attachments need. */
export const MESSAGE_SIZE_LIMIT = 52428800;

const HEADER = (file: string): string =>
  `# ${file} — rendered by hastack (components/mail.ts); identical on both mail servers,\n` +
  `# only the IP differs. Changes go through the stack, not this file.\n`;

/** Postfix main.cf: virtual mailboxes delivered to Dovecot over LMTP, TLS, SASL via Dovecot. */
export function renderMainCf(
  s: MailServerSettings,
  layout: MailLayout = PRODUCTION_LAYOUT,
): string {
  const cf = layout.postfixConfigDir;
  const lines = [
    HEADER("main.cf"),
    "compatibility_level = 3.6",
    `myhostname = ${s.hostname}`,
    `mydomain = ${s.domain}`,
    "myorigin = $mydomain",
    // Every address of the domain is a virtual mailbox; nothing is delivered to local Unix users.
    "mydestination =",
    "local_transport = error:local delivery is disabled",
    "alias_maps =",
    "alias_database =",
    "mynetworks = 127.0.0.0/8",
    // master.cf binds each service to listenAddress when one is set (tests on 127.0.3.x).
    "inet_interfaces = all",
    "inet_protocols = ipv4",
    `queue_directory = ${layout.postfixQueueDir}`,
    `data_directory = ${layout.postfixDataDir}`,
    ...(layout.postfixLog
      ? [
          `maillog_file = ${layout.postfixLog}`,
          `maillog_file_prefixes = ${layout.postfixLog.replace(/\/[^/]*$/, "")}`,
        ]
      : []),
    "smtpd_banner = $myhostname ESMTP",
    "biff = no",
    "append_dot_mydomain = no",
    "readme_directory = no",
    "disable_vrfy_command = yes",
    "smtpd_helo_required = yes",
    `message_size_limit = ${MESSAGE_SIZE_LIMIT}`,
    "mailbox_size_limit = 0",
    "recipient_delimiter = +",
    "",
    "# TLS: opportunistic on port 25 (RFC 3207), required for logins (submission/smtps).",
    `smtpd_tls_cert_file = ${layout.tlsCert}`,
    `smtpd_tls_key_file = ${layout.tlsKey}`,
    "smtpd_tls_security_level = may",
    "smtpd_tls_auth_only = yes",
    "smtpd_tls_protocols = >=TLSv1.2",
    "smtpd_tls_mandatory_protocols = >=TLSv1.2",
    "smtpd_tls_received_header = yes",
    "smtpd_tls_loglevel = 1",
    "smtp_tls_security_level = may",
    "smtp_tls_CApath = /etc/ssl/certs",
    "smtp_tls_loglevel = 1",
    "",
    "# Logins are checked by Dovecot (one user database for IMAP and SMTP).",
    "smtpd_sasl_type = dovecot",
    "smtpd_sasl_path = private/auth",
    "smtpd_sasl_auth_enable = no",
    "",
    "# Mailboxes: Postfix accepts only listed users; Dovecot stores Maildir on the data volume.",
    `virtual_mailbox_domains = ${s.domain}`,
    `virtual_mailbox_maps = texthash:${cf}/vmailbox`,
    `virtual_alias_maps = texthash:${cf}/virtual`,
    "virtual_transport = lmtp:unix:private/dovecot-lmtp",
    "",
    "smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination",
    "smtpd_recipient_restrictions = permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination, reject_unlisted_recipient",
    "",
  ];
  return lines.join("\n");
}

/** Postfix master.cf: SMTP (25), submission (587, STARTTLS) and smtps (465, implicit TLS). */
export function renderMasterCf(layout: MailLayout = PRODUCTION_LAYOUT): string {
  const chroot = layout.postfixChroot ? "y" : "n";
  const endpoint = (standardName: string, port: number, standardPort: number): string =>
    layout.listenAddress
      ? `${layout.listenAddress}:${port}`
      : port === standardPort
        ? standardName
        : String(port);
  const row = (
    service: string,
    type: string,
    priv: string,
    unpriv: string,
    ch: string,
    wakeup: string,
    maxproc: string,
    command: string,
  ): string =>
    [
      service.padEnd(10),
      type.padEnd(5),
      priv.padEnd(7),
      unpriv.padEnd(7),
      ch.padEnd(7),
      wakeup.padEnd(7),
      maxproc.padEnd(7),
      command,
    ].join(" ");
  const loginOnly = [
    "  -o smtpd_sasl_auth_enable=yes",
    "  -o smtpd_tls_auth_only=yes",
    "  -o smtpd_client_restrictions=permit_sasl_authenticated,reject",
    "  -o smtpd_relay_restrictions=permit_sasl_authenticated,reject",
    "  -o smtpd_recipient_restrictions=permit_sasl_authenticated,reject",
    "  -o milter_macro_daemon_name=ORIGINATING",
  ];
  return [
    HEADER("master.cf"),
    "# service  type  private unpriv  chroot  wakeup  maxproc command + args",
    row(endpoint("smtp", layout.ports.smtp, 25), "inet", "n", "-", chroot, "-", "-", "smtpd"),
    row(
      endpoint("submission", layout.ports.submission, 587),
      "inet",
      "n",
      "-",
      chroot,
      "-",
      "-",
      "smtpd",
    ),
    "  -o syslog_name=postfix/submission",
    "  -o smtpd_tls_security_level=encrypt",
    ...loginOnly,
    row(
      endpoint("submissions", layout.ports.smtps, 465),
      "inet",
      "n",
      "-",
      chroot,
      "-",
      "-",
      "smtpd",
    ),
    "  -o syslog_name=postfix/smtps",
    "  -o smtpd_tls_wrappermode=yes",
    ...loginOnly,
    row("pickup", "unix", "n", "-", chroot, "60", "1", "pickup"),
    row("cleanup", "unix", "n", "-", chroot, "-", "0", "cleanup"),
    row("qmgr", "unix", "n", "-", "n", "300", "1", "qmgr"),
    row("tlsmgr", "unix", "-", "-", chroot, "1000?", "1", "tlsmgr"),
    row("rewrite", "unix", "-", "-", chroot, "-", "-", "trivial-rewrite"),
    row("bounce", "unix", "-", "-", chroot, "-", "0", "bounce"),
    row("defer", "unix", "-", "-", chroot, "-", "0", "bounce"),
    row("trace", "unix", "-", "-", chroot, "-", "0", "bounce"),
    row("verify", "unix", "-", "-", chroot, "-", "1", "verify"),
    row("flush", "unix", "n", "-", chroot, "1000?", "0", "flush"),
    row("proxymap", "unix", "-", "-", "n", "-", "-", "proxymap"),
    row("proxywrite", "unix", "-", "-", "n", "-", "1", "proxymap"),
    row("smtp", "unix", "-", "-", chroot, "-", "-", "smtp"),
    row("relay", "unix", "-", "-", chroot, "-", "-", "smtp"),
    "  -o syslog_name=postfix/$service_name",
    row("showq", "unix", "n", "-", chroot, "-", "-", "showq"),
    row("error", "unix", "-", "-", chroot, "-", "-", "error"),
    row("retry", "unix", "-", "-", chroot, "-", "-", "error"),
    row("discard", "unix", "-", "-", chroot, "-", "-", "discard"),
    row("lmtp", "unix", "-", "-", chroot, "-", "-", "lmtp"),
    row("anvil", "unix", "-", "-", chroot, "-", "1", "anvil"),
    row("scache", "unix", "-", "-", chroot, "-", "1", "scache"),
    row("postlog", "unix-dgram", "n", "-", "n", "-", "1", "postlogd"),
    "",
  ].join("\n");
}

/**
 * Dovecot: IMAPS (POP3S optional), LMTP for Postfix, Maildir on the data volume, users from a
 * passwd-file, and the doveadm server the peer's dsync connects to (its password comes from
 * SSM via the secrets include, never from this file).
 */
export function renderDovecotConf(
  s: MailServerSettings,
  layout: MailLayout = PRODUCTION_LAYOUT,
): string {
  const home = `${layout.mailRoot}/%d/%n`;
  const q = layout.postfixQueueDir;
  const lines = [
    HEADER("dovecot.conf"),
    `protocols = imap lmtp${s.pop3 ? " pop3" : ""}`,
    `listen = ${layout.listenAddress ?? "*"}`,
    ...(layout.dovecotBaseDir ? [`base_dir = ${layout.dovecotBaseDir}`] : []),
    ...(layout.dovecotStateDir ? [`state_dir = ${layout.dovecotStateDir}`] : []),
    ...(layout.dovecotLog ? [`log_path = ${layout.dovecotLog}`] : []),
    "",
    "# Maildir on the data volume, owned by one virtual-mail user.",
    `mail_home = ${home}`,
    `mail_location = maildir:${home}/Maildir`,
    `mail_uid = ${layout.mailUser}`,
    `mail_gid = ${layout.mailGroup}`,
    `first_valid_uid = ${layout.mailUid}`,
    `last_valid_uid = ${layout.mailUid}`,
    "namespace inbox {",
    "  inbox = yes",
    "  separator = /",
    "  mailbox Drafts {",
    "    special_use = \\Drafts",
    "    auto = subscribe",
    "  }",
    "  mailbox Sent {",
    "    special_use = \\Sent",
    "    auto = subscribe",
    "  }",
    "  mailbox Junk {",
    "    special_use = \\Junk",
    "    auto = subscribe",
    "  }",
    "  mailbox Trash {",
    "    special_use = \\Trash",
    "    auto = subscribe",
    "  }",
    "}",
    "",
    "# One user database (user@domain:{SCHEME}hash) for IMAP, POP3 and SMTP logins.",
    "auth_mechanisms = plain login",
    "disable_plaintext_auth = yes",
    "passdb {",
    "  driver = passwd-file",
    `  args = scheme=SHA512-CRYPT username_format=%Lu ${layout.usersFile}`,
    "}",
    "userdb {",
    "  driver = passwd-file",
    `  args = username_format=%Lu ${layout.usersFile}`,
    `  default_fields = uid=${layout.mailUser} gid=${layout.mailGroup} home=${home}`,
    "}",
    "",
    "ssl = required",
    `ssl_cert = <${layout.tlsCert}`,
    `ssl_key = <${layout.tlsKey}`,
    "ssl_min_protocol = TLSv1.2",
    "ssl_prefer_server_ciphers = yes",
    "",
    "service imap-login {",
    "  inet_listener imap {",
    "    port = 0",
    "  }",
    "  inet_listener imaps {",
    `    port = ${layout.ports.imaps}`,
    "    ssl = yes",
    "  }",
    "}",
    ...(s.pop3
      ? [
          "service pop3-login {",
          "  inet_listener pop3 {",
          "    port = 0",
          "  }",
          "  inet_listener pop3s {",
          `    port = ${layout.ports.pop3s}`,
          "    ssl = yes",
          "  }",
          "}",
        ]
      : []),
    "service lmtp {",
    `  unix_listener ${q}/private/dovecot-lmtp {`,
    "    mode = 0600",
    "    user = postfix",
    "    group = postfix",
    "  }",
    "}",
    "protocol lmtp {",
    `  postmaster_address = postmaster@${s.domain}`,
    "}",
    "service auth {",
    `  unix_listener ${q}/private/auth {`,
    "    mode = 0660",
    "    user = postfix",
    "    group = postfix",
    "  }",
    "}",
    "",
    "# Replication: the peer's `doveadm sync` connects here (tcp, peer security-group rule only).",
    `doveadm_port = ${layout.ports.doveadm}`,
    "service doveadm {",
    "  inet_listener {",
    `    port = ${layout.ports.doveadm}`,
    "  }",
    "}",
    // doveadm_password: written from SSM at boot; absent until then, so the server refuses peers.
    `!include_try ${layout.secretsFile}`,
    "",
  ];
  return lines.join("\n");
}

/** Which server a script is rendered for: scripts differ only in the peer they talk to. */
export type MailRole = "primary" | "standby";

/** Everything the per-server scripts need besides the layout. */
export interface MailScriptSettings extends MailServerSettings {
  role: MailRole;
}

function peerOf(role: MailRole): MailRole {
  return role === "primary" ? "standby" : "primary";
}

/** Shell-quotes one word for sh/bash. */
export function shellQuote(word: string): string {
  return /^[A-Za-z0-9_./:@%+=,-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

const SCRIPT_HEADER = (name: string, purpose: string[]): string =>
  [
    "#!/bin/bash",
    `# ${name} — rendered by hastack (components/mail.ts).`,
    ...purpose.map((l) => `# ${l}`),
    "set -euo pipefail",
    "umask 077",
    `log() { echo "${name}: $*" >&2; }`,
    "",
  ].join("\n");

/**
 * hastack-mail-refresh: pulls what the stack keeps in SSM — the users (passwd-file lines the
 * operator stores, migration step 2), the doveadm password and the peer's private address —
 * validates them and installs them only when valid. `--require-users` fails when the user
 * list is empty (the check of migration step 2).
 */
export function renderRefreshScript(
  s: MailScriptSettings,
  layout: MailLayout = PRODUCTION_LAYOUT,
): string {
  const domainRe = s.domain.replace(/\./g, "\\\\.");
  return [
    SCRIPT_HEADER("hastack-mail-refresh", [
      "Pulls users, the doveadm password and the peer's address from SSM (the instance profile",
      `may read ${s.ssmPrefix}/*) and installs them only when valid. Runs at boot, on a timer and`,
      "before every sync, so both servers always know the same users.",
      "usage: hastack-mail-refresh [--require-users]",
    ]),
    `PREFIX=${shellQuote(s.ssmPrefix)}`,
    `PEER_ROLE=${peerOf(s.role)}`,
    `USERS=${shellQuote(layout.usersFile)}`,
    `SECRETS=${shellQuote(layout.secretsFile)}`,
    `POSTFIX_DIR=${shellQuote(layout.postfixConfigDir)}`,
    `DOVECOT_CONF=${shellQuote(layout.dovecotConfig)}`,
    `STATE=${shellQuote(layout.stateDir)}`,
    "require_users=0",
    'if [ "${1:-}" = "--require-users" ]; then require_users=1; elif [ $# -gt 0 ]; then',
    '  log "unknown argument $1 (expected --require-users)"; exit 2',
    "fi",
    "",
    "# The region comes from the instance metadata (IMDSv2) unless the environment names it.",
    'if [ -z "${AWS_DEFAULT_REGION:-}" ]; then',
    "  token=$(curl -sf -m 5 -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 60' http://169.254.169.254/latest/api/token)",
    '  AWS_DEFAULT_REGION=$(curl -sf -m 5 -H "X-aws-ec2-metadata-token: $token" http://169.254.169.254/latest/meta-data/placement/region)',
    "  export AWS_DEFAULT_REGION",
    "fi",
    'param() { aws ssm get-parameter --with-decryption --name "$PREFIX/$1" --query Parameter.Value --output text; }',
    "tmp=$(mktemp -d); trap 'rm -rf \"$tmp\"' EXIT",
    'mkdir -p "$STATE"',
    "",
    "# Users: user@domain:{SCHEME}hash, one per line; a short line gets the empty userdb fields",
    "# Dovecot's passwd-file needs (uid, gid and home come from default_fields).",
    'param users > "$tmp/users.raw"',
    `if ! awk -F: -v re='^[a-z0-9._-]+@${domainRe}$' '`,
    "  /^[[:space:]]*(#|$)/ { next }",
    '  $1 !~ re || $2 !~ /^\\{[A-Z0-9.-]+\\}./ { printf "users line %d: expected user@domain:{SCHEME}hash (lowercase user)\\n", NR > "/dev/stderr"; bad = 1; next }',
    '  { if (NF == 2) print $0 "::::::"; else print }',
    '  END { exit bad }\' "$tmp/users.raw" > "$tmp/users"; then',
    '  log "refusing the users parameter $PREFIX/users: fix the lines above; keeping the installed users"',
    "  exit 1",
    "fi",
    'count=$(grep -c . "$tmp/users" || true)',
    'if [ "$count" -eq 0 ] && [ "$require_users" -eq 1 ]; then',
    '  log "no users in $PREFIX/users: import the users and passwords from the old server first (migration step 2)"',
    "  exit 1",
    "fi",
    'install -m 0640 -o root -g dovecot "$tmp/users" "$USERS"',
    "# Postfix accepts mail only for listed users (no backscatter from unknown recipients).",
    'awk -F: \'{ print $1, "OK" }\' "$tmp/users" > "$tmp/vmailbox"',
    'if ! cmp -s "$tmp/vmailbox" "$POSTFIX_DIR/vmailbox"; then',
    '  install -m 0644 "$tmp/vmailbox" "$POSTFIX_DIR/vmailbox"',
    '  if postfix -c "$POSTFIX_DIR" status >/dev/null 2>&1; then postfix -c "$POSTFIX_DIR" reload >/dev/null 2>&1; fi',
    "fi",
    "",
    "# The doveadm password authenticates the peer's dsync; never in user-data or logs.",
    'printf \'doveadm_password = %s\\n\' "$(param doveadm-password)" > "$tmp/secrets"',
    'if ! cmp -s "$tmp/secrets" "$SECRETS"; then',
    '  install -m 0600 -o root -g root "$tmp/secrets" "$SECRETS"',
    '  if doveadm -c "$DOVECOT_CONF" reload >/dev/null 2>&1; then :; fi',
    "fi",
    'param "private-ip/$PEER_ROLE" > "$tmp/peer-ip"',
    'install -m 0644 "$tmp/peer-ip" "$STATE/peer-ip"',
    'log "$count users, peer $PEER_ROLE at $(cat "$STATE/peer-ip")"',
    "",
  ].join("\n");
}

/** The dsync command between the two servers: two-way, every user, to the peer's doveadm server. */
export function pairSyncCommand(layout: MailLayout = PRODUCTION_LAYOUT): string {
  // sync, never backup: mail that reached either server (the standby is the second MX) is
  // merged, nothing is deleted to make one side look like the other. -l: per-user lock, so a
  // slow run and a manual run never interleave; -T: give up on a stalled peer.
  return `doveadm -c ${shellQuote(layout.dovecotConfig)} sync -A -l 60 -T 300 "tcp:$PEER:${layout.ports.doveadm}"`;
}

/**
 * hastack-mail-sync: the two-way dsync of every mailbox with the peer. The primary's timer runs
 * it every syncIntervalMinutes (the mail RPO); since it is two-way it is also the reverse sync
 * before a fallback (`--reverse`, README "Fallback"). `--verify` (implied by --reverse) then
 * compares every user's mailboxes (message counts) on both servers and fails on any difference.
 * On success it writes the replication metric monitoring alerts on (docs/outputs.md).
 */
export function renderSyncScript(
  s: MailScriptSettings,
  layout: MailLayout = PRODUCTION_LAYOUT,
): string {
  const conf = shellQuote(layout.dovecotConfig);
  return [
    SCRIPT_HEADER("hastack-mail-sync", [
      "Two-way dsync (doveadm sync) of every mailbox with the peer server over the doveadm",
      `protocol (tcp ${layout.ports.doveadm}, open only between the two servers). Run by the primary's timer`,
      "every sync interval; being two-way, it is also the reverse sync before a fallback.",
      "usage: hastack-mail-sync [--verify | --reverse]",
    ]),
    `SBIN=${shellQuote(layout.sbinDir)}`,
    `STATE=${shellQuote(layout.stateDir)}`,
    `TEXTFILE_DIR=${shellQuote(layout.textfileDir)}`,
    `ROLE=${s.role}`,
    "verify=0",
    'case "${1:-}" in',
    '  "") ;;',
    "  --verify) verify=1 ;;",
    "  # Two-way already carries what the peer took while it served; --reverse adds the proof.",
    '  --reverse) verify=1; log "reverse sync: two-way, so everything the peer holds comes here too" ;;',
    '  *) log "unknown argument $1 (expected --verify or --reverse)"; exit 2 ;;',
    "esac",
    'mkdir -p "$STATE"',
    'exec 9>"$STATE/sync.lock"',
    'if ! flock -w 600 9; then log "another sync has held the lock for 10 minutes; giving up"; exit 75; fi',
    '"$SBIN/hastack-mail-refresh"',
    'PEER=$(cat "$STATE/peer-ip")',
    'if [ "$ROLE" = primary ]; then PEER_ROLE=standby; else PEER_ROLE=primary; fi',
    "started=$(date +%s)",
    "rc=0",
    `${pairSyncCommand(layout)} || rc=$?`,
    "# 2 = synced without errors but something changed meanwhile: one more pass settles it.",
    'if [ "$rc" -eq 2 ]; then',
    "  rc=0",
    `  ${pairSyncCommand(layout)} || rc=$?`,
    "fi",
    'if [ "$rc" -ne 0 ]; then log "sync with $PEER failed (doveadm exit $rc)"; exit "$rc"; fi',
    'date +%s > "$STATE/last-sync"',
    "# The metric monitoring alerts on: the peer's copy is current as of now (written atomically).",
    'mkdir -p "$TEXTFILE_DIR"',
    'metric=$(mktemp "$TEXTFILE_DIR/.hastack_replication.XXXXXX")',
    'printf \'hastack_replication_last_success_timestamp_seconds{service="mail",side="%s"} %s\\n\' "$PEER_ROLE" "$(date +%s)" > "$metric"',
    'chmod 0644 "$metric" && mv "$metric" "$TEXTFILE_DIR/hastack_replication_mail.prom"',
    'log "synced every mailbox with $PEER in $(( $(date +%s) - started )) s"',
    'if [ "$verify" -eq 1 ]; then',
    "  differ=0",
    `  for user in $(doveadm -c ${conf} user '*'); do`,
    `    here=$(doveadm -c ${conf} -f tab mailbox status -u "$user" 'messages' '*' | sort)`,
    `    there=$(doveadm -c ${conf} -f tab mailbox status -S "$PEER:${layout.ports.doveadm}" -u "$user" 'messages' '*' | sort)`,
    '    if [ "$here" != "$there" ]; then log "$user: mailboxes differ from $PEER"; differ=1; fi',
    "  done",
    '  if [ "$differ" -ne 0 ]; then exit 1; fi',
    '  log "verified: every mailbox holds the same number of messages on both servers"',
    "fi",
    "",
  ].join("\n");
}

/**
 * hastack-mail-fallback: run on the primary before traffic returns to it. The reverse sync
 * (two-way, so everything the standby took while it served comes back), a verification that
 * both servers hold the same messages, and only then the release of the fencing latch.
 */
export function renderFallbackScript(layout: MailLayout = PRODUCTION_LAYOUT): string {
  return [
    SCRIPT_HEADER("hastack-mail-fallback", [
      "Run on the primary before a fallback: reverse sync from the standby (two-way), verify",
      "that both servers hold the same messages, then unfence so Route 53 sends traffic back.",
    ]),
    `${shellQuote(layout.sbinDir)}/hastack-mail-sync --reverse`,
    `${shellQuote(layout.unfenceCommand)}`,
    'log "reverse sync verified; fence released — the primary may take traffic again"',
    "",
  ].join("\n");
}

/** One run of a migration step that copies mail from the old server (steps 3, 7 and 9). */
export interface MigrationSyncSpec {
  /**
   * initial = step 3 (doveadm backup -R); final = step 7 (doveadm sync -1 -R); retire = step 9
   * (refuses while the old server accepts SMTP, repeats the final sync, verifies by counts).
   */
  mode: "initial" | "final" | "retire";
  oldIp: string;
  /** Master user on the old server's IMAP (it logs in as each user through it). */
  masterUser: string;
  /** The old server's IMAPS port. Defaults to 993. */
  oldPort?: number;
  /** The old server's SMTP port (retire: it must refuse connections there). Defaults to 25. */
  oldSmtpPort?: number;
}

/** The exact command a migration step runs on the new active server. */
export function migrationSyncCommand(
  spec: MigrationSyncSpec,
  layout: MailLayout = PRODUCTION_LAYOUT,
): string {
  return [
    `${layout.sbinDir}/hastack-mail-migrate`,
    spec.mode,
    spec.oldIp,
    spec.masterUser,
    String(spec.oldPort ?? 993),
    ...(spec.mode === "retire" ? [String(spec.oldSmtpPort ?? 25)] : []),
  ]
    .map(shellQuote)
    .join(" ");
}

/**
 * hastack-mail-migrate initial|final OLD_IP MASTER_USER PORT: copies every user's mailboxes
 * from the old server over IMAPS (Dovecot imapc, logged in as the master user), on the new
 * server. initial (step 3) = `doveadm backup -R`: the new server becomes an exact copy (it
 * receives no mail yet). final (step 7) = `doveadm sync -1 -R`: merges what reached the old
 * server since and deletes nothing, so mail delivered to the new server since step 6 stays.
 *
 * The old server's certificate names our own host name, which resolves to the new pair by now,
 * and imapc can only verify a certificate against the host it connects to. So the TLS leg is a
 * socat tunnel to OLD_IP that verifies the certificate against the host name, and imapc talks
 * to the tunnel over loopback: the old server's real certificate is still checked.
 *
 * One-way sync copies again, after a re-run, what it copied before once the two sides' UIDs
 * diverge (new mail on the new server makes them diverge). So `final` then removes copies
 * that are byte-identical to another message with the same Message-ID in the same mailbox —
 * only exact duplicates, never two different messages — and a re-run (a rollback of step 7
 * and forward again) leaves every mailbox as it was.
 */
export function renderMigrateScript(
  s: MailServerSettings,
  layout: MailLayout = PRODUCTION_LAYOUT,
): string {
  const ca = layout.tlsClientCaFile ? `cafile=${layout.tlsClientCaFile}` : "capath=/etc/ssl/certs";
  return [
    SCRIPT_HEADER("hastack-mail-migrate", [
      "Steps 3, 7 and 9 of the move from the old server: copy every user's mailboxes from it over",
      "IMAPS. initial = doveadm backup -R (step 3); final = doveadm sync -1 -R (step 7: merge,",
      "delete nothing on this server); retire (step 9) refuses while the old server still accepts",
      "SMTP on SMTP_PORT, repeats the final sync (at most 3 rounds) and refuses while any old",
      "mailbox holds a message this server lacks (counted by Message-ID). The old server must allow",
      "MASTER_USER to log in as any user and its master password must be in SSM at",
      `${s.ssmPrefix}/migration/master-password.`,
      "usage: hastack-mail-migrate initial|final OLD_IP MASTER_USER PORT | retire OLD_IP MASTER_USER PORT SMTP_PORT",
    ]),
    `SBIN=${shellQuote(layout.sbinDir)}`,
    `CONF=${shellQuote(layout.dovecotConfig)}`,
    `PREFIX=${shellQuote(s.ssmPrefix)}`,
    `OLD_NAME=${shellQuote(s.hostname)}`,
    'usage="usage: hastack-mail-migrate initial|final OLD_IP MASTER_USER PORT | retire OLD_IP MASTER_USER PORT SMTP_PORT"',
    'if [ $# -lt 4 ] || [ $# -ne "$([ "$1" = retire ] && echo 5 || echo 4)" ]; then log "$usage"; exit 2; fi',
    "mode=$1 old_ip=$2 master=$3 port=$4 smtp_port=${5:-25}",
    'case "$mode" in',
    "  initial) dsync=(backup -R) ;;",
    "  final | retire) dsync=(sync -1 -R) ;;",
    '  *) log "mode must be initial (step 3), final (step 7) or retire (step 9), got $mode"; exit 2 ;;',
    "esac",
    'if ! [[ "$smtp_port" =~ ^[0-9]+$ ]]; then log "SMTP_PORT must be a number, got $smtp_port"; exit 2; fi',
    'if ! [[ "$old_ip" =~ ^[0-9]{1,3}(\\.[0-9]{1,3}){3}$ ]]; then log "OLD_IP must be an IPv4 address, got $old_ip"; exit 2; fi',
    'if ! [[ "$port" =~ ^[0-9]+$ ]]; then log "PORT must be a number, got $port"; exit 2; fi',
    'if ! [[ "$master" =~ ^[A-Za-z0-9._@-]+$ ]]; then log "MASTER_USER has unexpected characters: $master"; exit 2; fi',
    "# Step 9 must not take a last copy while the old server can still take mail after it.",
    'if [ "$mode" = retire ] && timeout 10 bash -c "exec 3<>/dev/tcp/$old_ip/$smtp_port" 2>/dev/null; then',
    '  log "refusing: the old server still accepts SMTP on $old_ip:$smtp_port; run hastack-mail-retire-old on it first (step 9), so no mail reaches it after this last sync"',
    "  exit 1",
    "fi",
    '"$SBIN/hastack-mail-refresh" --require-users',
    "users=$(doveadm -c \"$CONF\" user '*' | wc -l)",
    "",
    "# Region for the SSM read: see hastack-mail-refresh.",
    'if [ -z "${AWS_DEFAULT_REGION:-}" ]; then',
    "  token=$(curl -sf -m 5 -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 60' http://169.254.169.254/latest/api/token)",
    '  AWS_DEFAULT_REGION=$(curl -sf -m 5 -H "X-aws-ec2-metadata-token: $token" http://169.254.169.254/latest/meta-data/placement/region)',
    "  export AWS_DEFAULT_REGION",
    "fi",
    "tmp=$(mktemp -d)",
    "tunnel=",
    'cleanup() { if [ -n "$tunnel" ]; then kill "$tunnel" 2>/dev/null || true; fi; rm -rf "$tmp"; }',
    "trap cleanup EXIT",
    "# doveadm reads the generated config as the mail user: the directory is 0711, the password",
    "# file 0600 root (read by doveadm before it drops privileges), never on a command line.",
    'chmod 0711 "$tmp"',
    'password=$(aws ssm get-parameter --with-decryption --name "$PREFIX/migration/master-password" --query Parameter.Value --output text)',
    'printf \'imapc_password = %s\\n\' "$password" > "$tmp/password.conf"',
    "",
    "# The TLS tunnel: verifies the old server's certificate against our shared host name.",
    "lport=",
    "for attempt in 1 2 3 4 5; do",
    "  candidate=$((30000 + RANDOM % 20000))",
    `  socat -d TCP-LISTEN:"$candidate",bind=127.0.0.1,reuseaddr,fork \\`,
    `    OPENSSL:"$old_ip":"$port",verify=1,${ca},commonname="$OLD_NAME",snihost="$OLD_NAME",min-version=TLS1.2 \\`,
    '    2>>"$tmp/tunnel.log" &',
    "  tunnel=$!",
    "  for i in $(seq 1 50); do",
    '    if ss -Hltn "sport = :$candidate" | grep -q .; then lport=$candidate; break; fi',
    '    if ! kill -0 "$tunnel" 2>/dev/null; then break; fi',
    "    sleep 0.1",
    "  done",
    '  if [ -n "$lport" ]; then break; fi',
    '  kill "$tunnel" 2>/dev/null || true',
    "  tunnel=",
    "done",
    'if [ -z "$lport" ]; then log "could not start the TLS tunnel to $old_ip:$port"; cat "$tmp/tunnel.log" >&2; exit 1; fi',
    'cat > "$tmp/migrate.conf" <<CONF',
    "!include $CONF",
    "imapc_host = 127.0.0.1",
    "imapc_port = $lport",
    "imapc_ssl = no",
    "imapc_user = %u",
    "imapc_master_user = $master",
    "imapc_features = rfc822.size fetch-headers",
    "mail_prefetch_count = 20",
    "!include $tmp/password.conf",
    "CONF",
    "removed=0",
    "sync_round() {",
    '  log "$mode: doveadm ${dsync[*]} for $users users from $OLD_NAME at $old_ip:$port (certificate verified)"',
    "  local rc=0",
    '  doveadm -c "$tmp/migrate.conf" "${dsync[@]}" -A imapc: || rc=$?',
    '  if [ "$rc" -ne 0 ]; then',
    '    log "$mode sync from the old server failed (doveadm exit $rc)"',
    '    sed "s/^/tls tunnel: /" "$tmp/tunnel.log" | tail -n 5 >&2',
    '    exit "$rc"',
    "  fi",
    '  if [ "$mode" = initial ]; then return; fi',
    "  while read -r user; do",
    "    while IFS=$'\\t' read -r mailbox uids; do",
    "      unset seen; declare -A seen=()",
    "      for uid in $uids; do",
    '        sum=$(doveadm -c "$CONF" fetch -u "$user" text mailbox "$mailbox" uid "$uid" </dev/null | sha256sum | cut -d" " -f1)',
    '        if [ -n "${seen[$sum]:-}" ]; then',
    '          doveadm -c "$CONF" expunge -u "$user" mailbox "$mailbox" uid "$uid" </dev/null',
    "          removed=$((removed + 1))",
    "        else",
    "          seen[$sum]=1",
    "        fi",
    "      done",
    '    done < <(doveadm -c "$CONF" -f tab fetch -u "$user" \'mailbox uid hdr.message-id\' ALL | tail -n +2 |',
    '      awk -F\'\\t\' \'$3 != "" { k = $1 "\\t" $3; n[k]++; u[k] = u[k] " " $2 }',
    '        END { for (k in n) if (n[k] > 1) { split(k, p, "\\t"); print p[1] "\\t" u[k] } }\')',
    "  done < <(doveadm -c \"$CONF\" user '*')",
    "}",
    "",
    "TAB=$(printf '\\t')",
    "# retire: every message of every old mailbox must be here, counted by Message-ID (a message",
    "# without one counts by number). Prints the users that miss mail; fails when any does.",
    "id_counts() {",
    '  tail -n +2 "$1" | sort | uniq -c | awk \'{ c = $1; $1 = ""; sub(/^ /, ""); print ($0 == "" ? "<none>" : $0) "\\t" c }\' | LC_ALL=C sort -t "$TAB" -k 1,1',
    "}",
    "verify_round() {",
    "  local user missing bad=0 total=0",
    "  while read -r user; do",
    '    if ! doveadm -c "$tmp/migrate.conf" -o mail_location=imapc: -f tab fetch -u "$user" hdr.message-id ALL </dev/null >"$tmp/old.ids"; then',
    '      log "refusing: could not list $user\'s mail on the old server"',
    "      exit 1",
    "    fi",
    '    doveadm -c "$CONF" -f tab fetch -u "$user" hdr.message-id ALL </dev/null >"$tmp/new.ids"',
    '    id_counts "$tmp/old.ids" >"$tmp/old.counts"',
    '    id_counts "$tmp/new.ids" >"$tmp/new.counts"',
    '    missing=$(LC_ALL=C join -t "$TAB" -a 1 -e 0 -o 0,1.2,2.2 "$tmp/old.counts" "$tmp/new.counts" |',
    "      awk -F\"$TAB\" '$2 > $3 { m += $2 - $3 } END { print m + 0 }')",
    '    total=$((total + $(tail -n +2 "$tmp/old.ids" | wc -l)))',
    '    if [ "$missing" -gt 0 ]; then',
    '      log "$user: $missing message(s) on the old server are not here"',
    "      bad=1",
    "    fi",
    "  done < <(doveadm -c \"$CONF\" user '*')",
    '  log "checked $total message(s) on the old server: $([ "$bad" -eq 0 ] && echo "all here" || echo "some missing")"',
    '  return "$bad"',
    "}",
    "",
    "started=$(date +%s)",
    "sync_round",
    'if [ "$mode" = retire ]; then',
    "  round=1",
    "  until verify_round; do",
    '    if [ "$round" -ge 3 ]; then',
    '      log "refusing: after $round final syncs the old server still holds mail this server lacks; do NOT shut it down"',
    "      exit 1",
    "    fi",
    "    round=$((round + 1))",
    "    sync_round",
    "  done",
    '  log "verified: every message of the old server\'s $users users is here ($round sync round(s)); it may be shut down"',
    "fi",
    'log "$mode sync of $users users done in $(( $(date +%s) - started )) s; $removed exact duplicates removed"',
    "",
  ].join("\n");
}

/** A systemd oneshot service plus the timer that runs it every `minutes`. */
export function renderTimerUnits(o: {
  name: string;
  description: string;
  execStart: string;
  minutes: number;
}): { service: string; timer: string } {
  return {
    service: [
      "[Unit]",
      `Description=${o.description}`,
      "After=network-online.target dovecot.service postfix.service",
      "Wants=network-online.target",
      "",
      "[Service]",
      "Type=oneshot",
      `ExecStart=${o.execStart}`,
      "Nice=10",
      "IOSchedulingClass=best-effort",
      "IOSchedulingPriority=7",
      // A stalled run must end; the timer does not start a new one while this one is active.
      "TimeoutStartSec=6h",
      "",
    ].join("\n"),
    timer: [
      "[Unit]",
      `Description=${o.description} (every ${o.minutes} min)`,
      "",
      "[Timer]",
      "OnBootSec=3min",
      `OnUnitActiveSec=${o.minutes}min`,
      "AccuracySec=15s",
      `Unit=${o.name}.service`,
      "",
      "[Install]",
      "WantedBy=timers.target",
      "",
    ].join("\n"),
  };
}

/** What one server's first boot needs besides what ServerPair adds (data volume, health agent). */
export interface MailCloudConfigInput {
  settings: MailServerSettings;
  role: MailRole;
  /** Minutes between pair syncs (hastack:mail.syncIntervalMinutes). */
  syncIntervalMinutes: number;
  /** FQDNs of both servers (mx1/mx2): names in the first-boot certificate. */
  serverNames: Record<MailRole, string>;
  layout?: MailLayout;
}

/** Where user-data stages the configs; the setup script installs them after the packages. */
export const STAGING_DIR = "/etc/hastack/mail";

/** Debian packages a mail server needs. */
export function mailPackages(pop3: boolean): string[] {
  return [
    "postfix",
    "dovecot-core",
    "dovecot-imapd",
    "dovecot-lmtpd",
    ...(pop3 ? ["dovecot-pop3d"] : []),
    "awscli",
    "curl",
    "openssl",
    "socat",
    // Monitoring scrapes it; the sync writes its success metric to the textfile collector.
    "prometheus-node-exporter",
  ];
}

/**
 * hastack-mail-setup: first boot, after the packages. Creates the mail user and Maildir root on
 * the data volume, a certificate if the volume holds none yet (self-signed until an operator
 * installs a real one at the same paths), installs the staged configs over the packages'
 * defaults, pulls users and secrets (retrying while the instance profile propagates), starts
 * the services and the timers — the sync timer on the primary only.
 */
export function renderSetupScript(input: MailCloudConfigInput): string {
  const L = input.layout ?? PRODUCTION_LAYOUT;
  const s = input.settings;
  const names = [s.hostname, input.serverNames.primary, input.serverNames.standby];
  const san = names.map((n) => `DNS:${n}`).join(",");
  return [
    SCRIPT_HEADER("hastack-mail-setup", [
      "First boot of a mail server: mail user, Maildir root, certificate, configs, users, timers.",
    ]),
    `if ! getent group ${L.mailGroup} >/dev/null; then groupadd --system --gid ${L.mailUid} ${L.mailGroup}; fi`,
    `if ! getent passwd ${L.mailUser} >/dev/null; then`,
    `  useradd --system --uid ${L.mailUid} --gid ${L.mailGroup} --home-dir ${L.mailRoot} --no-create-home --shell /usr/sbin/nologin ${L.mailUser}`,
    "fi",
    `install -d -o ${L.mailUser} -g ${L.mailGroup} -m 0750 ${L.mailRoot}`,
    `install -d -m 0755 ${L.stateDir}`,
    `install -d -m 0700 $(dirname ${L.tlsKey})`,
    "# The certificate lives on the data volume: it survives a rebuilt root volume.",
    `if [ ! -s ${L.tlsCert} ] || [ ! -s ${L.tlsKey} ]; then`,
    `  openssl req -x509 -newkey rsa:3072 -nodes -days 825 -subj "/CN=${s.hostname}" \\`,
    `    -addext "subjectAltName=${san}" -keyout ${L.tlsKey} -out ${L.tlsCert}`,
    `  chmod 0600 ${L.tlsKey}`,
    '  log "made a self-signed certificate; install a real one at the same paths"',
    "fi",
    `install -m 0644 ${STAGING_DIR}/main.cf ${L.postfixConfigDir}/main.cf`,
    `install -m 0644 ${STAGING_DIR}/master.cf ${L.postfixConfigDir}/master.cf`,
    `install -m 0644 ${STAGING_DIR}/virtual ${L.postfixConfigDir}/virtual`,
    `install -m 0644 ${STAGING_DIR}/dovecot.conf ${L.dovecotConfig}`,
    `touch ${L.postfixConfigDir}/vmailbox`,
    `echo ${shellQuote(s.domain)} > /etc/mailname`,
    "# IAM instance profiles take seconds to work after launch: retry for up to 5 minutes.",
    "for attempt in $(seq 1 30); do",
    `  if ${L.sbinDir}/hastack-mail-refresh; then break; fi`,
    '  if [ "$attempt" -eq 30 ]; then log "users and secrets still unreadable from SSM; the refresh timer keeps trying"; fi',
    "  sleep 10",
    "done",
    "systemctl daemon-reload",
    "systemctl enable dovecot postfix",
    "systemctl restart dovecot postfix",
    "systemctl enable --now hastack-mail-refresh.timer",
    ...(input.role === "primary"
      ? [
          "# Only the primary starts the two-way sync: one initiator, no concurrent runs.",
          "systemctl enable --now hastack-mail-sync.timer",
        ]
      : [
          "# The standby answers the primary's sync; it runs none itself (hastack-mail-sync by hand only).",
        ]),
    'log "mail server ready"',
    "",
  ].join("\n");
}

/** Aliases every domain needs (RFC 2142, RFC 5321): routed to postmaster's mailbox. */
export function renderVirtualAliases(domain: string): string {
  return [
    "# /etc/postfix/virtual — rendered by hastack: role addresses, delivered to postmaster.",
    `root@${domain} postmaster@${domain}`,
    `abuse@${domain} postmaster@${domain}`,
    `hostmaster@${domain} postmaster@${domain}`,
    "",
  ].join("\n");
}

/** cloud-init parts for one mail server (ServerPair adds the data volume and health agent). */
export function mailCloudConfigParts(input: MailCloudConfigInput): CloudConfigParts {
  const L = input.layout ?? PRODUCTION_LAYOUT;
  const s = input.settings;
  const scriptSettings: MailScriptSettings = { ...s, role: input.role };
  const sync = renderTimerUnits({
    name: "hastack-mail-sync",
    description: "hastack: two-way mailbox sync with the standby (mail RPO)",
    execStart: `${L.sbinDir}/hastack-mail-sync`,
    minutes: input.syncIntervalMinutes,
  });
  const refresh = renderTimerUnits({
    name: "hastack-mail-refresh",
    description: "hastack: users and secrets from SSM",
    execStart: `${L.sbinDir}/hastack-mail-refresh`,
    minutes: input.syncIntervalMinutes,
  });
  const script = (name: string, content: string): CloudConfigFile => ({
    path: `${L.sbinDir}/${name}`,
    permissions: "0755",
    content,
  });
  const staged = (name: string, content: string): CloudConfigFile => ({
    path: `${STAGING_DIR}/${name}`,
    permissions: "0644",
    content,
  });
  const unit = (name: string, content: string): CloudConfigFile => ({
    path: `/etc/systemd/system/${name}`,
    permissions: "0644",
    content,
  });
  return {
    hostname: s.hostname.split(".")[0],
    fqdn: s.hostname,
    packages: mailPackages(s.pop3),
    writeFiles: [
      staged("main.cf", renderMainCf(s, L)),
      staged("master.cf", renderMasterCf(L)),
      staged("virtual", renderVirtualAliases(s.domain)),
      staged("dovecot.conf", renderDovecotConf(s, L)),
      script("hastack-mail-setup", renderSetupScript(input)),
      script("hastack-mail-refresh", renderRefreshScript(scriptSettings, L)),
      script("hastack-mail-sync", renderSyncScript(scriptSettings, L)),
      script("hastack-mail-fallback", renderFallbackScript(L)),
      script("hastack-mail-migrate", renderMigrateScript(s, L)),
      unit("hastack-mail-sync.service", sync.service),
      unit("hastack-mail-sync.timer", sync.timer),
      unit("hastack-mail-refresh.service", refresh.service),
      unit("hastack-mail-refresh.timer", refresh.timer),
    ],
    runcmd: [[`${L.sbinDir}/hastack-mail-setup`]],
  };
}

type CloudConfigFile = NonNullable<CloudConfigParts["writeFiles"]>[number];

/** SPF for the domain: every server that sends its mail, nothing else (softfail). */
export function spfRecord(ips: string[]): string {
  // ~all (softfail), not -all: a forgotten sender (a web form, a scanner) is flagged, not
  // bounced, while DMARC policy — the domain owner's call — decides what receivers do.
  return `v=spf1 ${ips.map((ip) => `ip4:${ip}`).join(" ")} ~all`;
}

/** One check of migration step 4, with the command to run and what it must show. */
export interface ServerCheck {
  server: string;
  check: "SMTP banner" | "IMAP login" | "a delivery";
  command: string;
  expect: string;
}

/**
 * The step-4 test of the new servers, addressed by their own names (mx1/mx2) because the
 * service name still leads to the old server's MX until step 6: the SMTP banner, an IMAP login
 * over TLS (certificate checked for the shared host name), and a delivery.
 */
export function testChecklist(s: MailServerSettings, servers: string[]): ServerCheck[] {
  const checks: ServerCheck[] = [];
  for (const server of servers) {
    checks.push(
      {
        server,
        check: "SMTP banner",
        command: `swaks --server ${server}:25 --quit-after CONNECT`,
        expect: `220 ${s.hostname} ESMTP`,
      },
      {
        server,
        check: "IMAP login",
        command:
          `curl --ssl-reqd --connect-to ${s.hostname}:993:${server}:993 ` +
          `--user postmaster@${s.domain} imaps://${s.hostname}/`,
        expect: "the mailbox list (INBOX, Drafts, Sent, Junk, Trash) after the password prompt",
      },
      {
        server,
        check: "a delivery",
        command:
          `swaks --server ${server}:25 --from hastack-test@example.org --to postmaster@${s.domain} ` +
          `--header "Subject: hastack step 4 test ${server}"`,
        expect: "250 2.0.0 Ok: queued, then the message in postmaster's INBOX over IMAP",
      },
    );
  }
  return checks;
}
