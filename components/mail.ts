// The mail pair (issue 3): two identical Postfix + Dovecot servers — same host name and mail
// domain, only the IP differs — with Maildir storage on each server's data volume, TLS, one MX
// record set, SPF for both servers, a two-way dsync every few minutes (the mail RPO), and the
// planned migration from an old server in nine reviewed phases (components/mail-migration.ts).
//
// Everything a server runs is a real file under server/mail/ (issue 10); the renderers here fill
// in its values and deliver it as cloud-init user-data. They take a MailLayout (paths, ports,
// users) so the tests run the very same configs and scripts against real
// postconf/doveconf/dovecot on loopback; production uses PRODUCTION_LAYOUT.
import * as pulumi from "@pulumi/pulumi";
import * as aws from "@pulumi/aws";
import * as command from "@pulumi/command";
import * as random from "@pulumi/random";
import * as tls from "@pulumi/tls";
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
  failoverRecords,
  otherRole,
  pairBasics,
  PairPlacement,
  Role,
  ROLES,
  ServerPair,
  ServicePort,
  ServiceSummary,
  FIRST_BOOT_DIAL_ERROR_LIMIT,
} from "./server-pair";
import {
  checkMtaStsInput,
  MTA_STS_INGRESS_DESCRIPTION,
  MTA_STS_POLICY_PATH,
  MTA_STS_RECORD_TTL,
  mtaStsHost,
  mtaStsId,
  mtaStsMxNames,
  mtaStsPolicy,
  mtaStsRecord,
  MtaStsMode,
  tlsRptRecord,
} from "./mail-mta-sts";
import { oldServerRecordName } from "./mail-migration";
import { DEFAULT_SWITCHOVER, ssmPrefix } from "./pair-defaults";
import { renderServerFile, serverFile, shellQuote, withoutComments } from "./server-files";

export interface MailPairArgs extends PairPlacement {
  /** hastack:mail, validated by parseStackConfig. */
  config: MailConfig;
  /**
   * The migration phase the stack's last update applied — index.ts reads it from the previous
   * outputs (services.mail.migrationPhase) or `synth --previous`. A move of more than one phase
   * is refused. Defaults to unknown (a new stack): not checked.
   */
  previousPhase?: pulumi.Input<number | undefined>;
  /**
   * The DKIM selectors the stack's last update applied (services.mail.dkim in the previous
   * outputs, or `synth --previous`): a rotation may move one phase per update. Defaults to
   * unknown (a new stack, or one from before rotations): not checked.
   */
  previousDkim?: pulumi.Input<DkimState | undefined>;
  /** SSH user for the migration steps run on the active server. Defaults to "admin". */
  sshUser?: string;
  /**
   * hastack:sshPrivateKey (secret): the migration steps 2, 3 and 7 run as remote commands.
   * Defaults to none: they are not declared and the outputs list the commands to run by hand.
   */
  sshPrivateKey?: pulumi.Input<string>;
  /**
   * Security groups of the NAS servers that pull the Maildirs over SSH (read-only rrsync with
   * the NAS's key from `<ssmRoot>/mail/nas-backup-ssh-public-key`). Defaults to none: no NAS
   * may reach port 22.
   */
  backupClientSecurityGroupIds?: pulumi.Input<string>[];
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
  /** The DKIM selectors published and the one signing (the next update's rotation check). */
  dkim: pulumi.Output<DkimState>;
  /** MTA-STS as published: mode, the policy's id and URL, the MX names it allows. */
  mtaSts: MtaStsSummary;
  syncIntervalMinutes: number;
}

/** services.mail.mtaSts (docs/outputs.md): null fields while hastack:mail.mtaSts is none. */
export interface MtaStsSummary {
  mode: MtaStsMode;
  id: string | null;
  policyUrl: string | null;
  mx: string[];
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
    const switchover = cfg.switchover ?? DEFAULT_SWITCHOVER.mail;
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
    problems.push(...checkDkimInput(cfg.dkim, old?.dkim));
    if (problems.length === 0 && old) {
      // The plan needs valid migration input; MTA-STS is checked against its MX set.
      const mx = migrationPlan(planInput).mx;
      problems.push(
        ...checkMtaStsInput(cfg.mtaSts, phase, mx, oldServerRecordName(old, args.domain)),
      );
    }
    if (old && old.hostname.toLowerCase() !== this.serviceName) {
      problems.push(
        `hastack:mail.migration.oldServer.hostname must be the new servers' host name ` +
          `${this.serviceName} (hastack:mail.hostname + hastack:domain) — step 1 builds them with ` +
          `the old server's name, only the IP differs — got "${old.hostname}"`,
      );
    }
    if (problems.length > 0) {
      // A RunError: the CLI and `npm run synth` print the message alone, without a stack trace.
      throw new pulumi.RunError(`MailPair ${name}: ${problems.join("; ")}`);
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
    const dkim = dkimState(cfg.dkim);
    const checkDkim = (previous: DkimState | undefined): void => checkDkimRotation(previous, dkim);
    if (!pulumi.Output.isInstance(args.previousDkim)) {
      checkDkim(args.previousDkim as DkimState | undefined);
    }
    const appliedDkim = pulumi.output(args.previousDkim).apply((previous) => {
      checkDkim(previous as DkimState | undefined);
      return dkim;
    });

    // Where the servers read their secrets and users (ServerPair grants `<prefix>/*`).
    const mailPrefix = ssmPrefix(args.ssmRoot, "mail");
    const settings: MailServerSettings = {
      hostname: this.serviceName,
      domain: args.domain,
      pop3: cfg.pop3,
      ssmPrefix: mailPrefix,
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
        servicePorts: [
          ...mailServicePorts(cfg.pop3, layout.ports, cfg.mtaSts !== "none"),
          ...backupPullPorts(args.backupClientSecurityGroupIds ?? []),
        ],
        // dsync between the servers: the doveadm server, reachable from the peer only.
        peerPorts: [22, layout.ports.doveadm],
        // SMTP delivery to the world; IMAPS out for a migration's syncs from the old server
        // (steps 3, 7) — to any address, so a migration step never changes a security group.
        egress: [
          { protocol: "tcp", fromPort: 25, cidrs: ["0.0.0.0/0"], description: "SMTP delivery" },
          {
            protocol: "tcp",
            fromPort: 993,
            cidrs: ["0.0.0.0/0"],
            description: "IMAPS to an old mail server (migration syncs)",
          },
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
    if (this.pair.ssmPrefix !== mailPrefix) {
      throw new Error(
        `MailPair ${name}: the servers may read ${this.pair.ssmPrefix}/*, but their scripts read ${mailPrefix}`,
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
        name: `${mailPrefix}/doveadm-password`,
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
        name: `${mailPrefix}/users`,
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
          name: `${mailPrefix}/private-ip/${side}`,
          type: "String",
          value: this.pair.privateIps[side],
          description: `hastack: private address of the mail ${side} (its peer's dsync target)`,
        },
        { parent: this },
      );
    }

    // ACME DNS-01 (hastack-mail-cert): the servers may change only the _acme-challenge TXT
    // records of the pair's own names in the stack's zone — never MX, SPF or any other record.
    const certNames = certificateNames(settings, this.serverNames);
    new aws.iam.RolePolicy(
      `${name}-acme-dns`,
      {
        role: this.pair.role.id,
        policy: args.dns.zoneId.apply((zoneId) => JSON.stringify(acmeDnsPolicy(zoneId, certNames))),
      },
      { parent: this },
    );

    // DNS: the ONE MX record set of the domain; SPF and the old server's A record below, after
    // the step commands (step 9's records wait for its check).
    args.dns.record(this, `${name}-mx`, {
      name: args.domain,
      type: "MX",
      ttl: cfg.ttl,
      records: this.migration.mx,
    });
    // DKIM: one key per selector (a new selector is a new key and a new record, the basis of
    // a rotation), its private half to both servers through SSM, its public half in DNS. Every
    // published selector keeps its key; which one signs is an SSM parameter the servers' refresh
    // reads (user-data never changes on a running server), switched by the rotation's "sign".
    for (const selector of dkim.published) {
      const dkimKey = new tls.PrivateKey(
        `${name}-dkim-${selector}`,
        // RSA 2048: what every receiver verifies (Ed25519 DKIM is not yet universally checked).
        { algorithm: "RSA", rsaBits: 2048 },
        { parent: this },
      );
      new aws.ssm.Parameter(
        `${name}-dkim-${selector}`,
        {
          name: `${mailPrefix}/dkim/${selector}`,
          type: "SecureString",
          keyId: args.secretsKeyArn,
          value: pulumi.secret(dkimKey.privateKeyPem),
          description: `hastack: DKIM signing key of selector ${selector} (both mail servers)`,
        },
        { parent: this },
      );
      args.dns.record(this, `${name}-dkim-${selector}`, {
        name: `${selector}._domainkey.${args.domain}`,
        type: "TXT",
        ttl: DKIM_RECORD_TTL,
        records: [dkimKey.publicKeyPem.apply((pem) => route53Txt(dkimRecord(pem)))],
      });
    }
    new aws.ssm.Parameter(
      `${name}-dkim-signing-selector`,
      {
        name: `${mailPrefix}/dkim-signing-selector`,
        type: "String",
        // Not a secret (it is in DNS): insecureValue keeps it readable in previews and diffs.
        insecureValue: dkim.signing,
        description:
          "hastack: the DKIM selector both mail servers sign with (key rotation, README)",
      },
      { parent: this },
    );
    args.dns.record(this, `${name}-dmarc`, {
      name: `_dmarc.${args.domain}`,
      type: "TXT",
      ttl: 300,
      records: [
        dmarcRecord(cfg.dmarc.policy, cfg.dmarc.reportEmail ?? `postmaster@${args.domain}`),
      ],
    });
    const mtaSts = this.declareMtaSts(name, cfg, args, mailPrefix);
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
            .join(" && ")}` +
          (stepCommands["retire-old"]
            ? ". Step 9's retire check cannot guard this update: run it before applying phase 9, and power the old server off only after it succeeded"
            : ""),
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
              // The server's stack-generated key (ServerPair.hostKeys): never trust on first use.
              hostKey: this.pair.hostKeys[active],
              dialErrorLimit: FIRST_BOOT_DIAL_ERROR_LIMIT,
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
    // The old server may sign with its own selector until it stops sending: its record stays
    // exactly as long as SPF names it, and goes only after step 9's check, like SPF.
    if (old?.dkim && this.migration.spfAuthorisesOldServer) {
      args.dns.record(
        this,
        `${name}-old-dkim`,
        {
          name: `${old.dkim.selector}._domainkey.${args.domain}`,
          type: "TXT",
          ttl: DKIM_RECORD_TTL,
          records: [route53Txt(old.dkim.record)],
        },
        retire ? { dependsOn: [retire] } : undefined,
      );
    }
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
      dkim: appliedDkim,
      mtaSts,
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

  /**
   * MTA-STS and TLS-RPT (issue 17), when hastack:mail.mtaSts is not none: the policy (its mx
   * lines from mtaStsMxNames, so they cover the MX set of every migration phase) as a String
   * parameter both servers' refresh installs for nginx — never in user-data, so a policy change
   * touches no server — `_mta-sts` with the policy's id, `_smtp._tls`, and `mta-sts.<domain>`
   * following the mail failover like the service name, but always to the new pair (never the
   * old server during a migration: only the pair serves the policy).
   */
  private declareMtaSts(
    name: string,
    cfg: MailConfig,
    { domain, dns }: Pick<MailPairArgs, "domain" | "dns">,
    mailPrefix: string,
  ): MtaStsSummary {
    const mode = cfg.mtaSts;
    const mx = mtaStsMxNames(this.serverNames, this.migration.oldServerRecord?.name);
    if (mode === "none") {
      return { mode, id: null, policyUrl: null, mx: [] };
    }
    const host = mtaStsHost(domain);
    const policy = mtaStsPolicy(mode, mx, cfg.mtaStsMaxAgeSeconds);
    new aws.ssm.Parameter(
      `${name}-mta-sts-policy`,
      {
        name: `${mailPrefix}/mta-sts-policy`,
        type: "String",
        // Public (senders fetch it): insecureValue keeps it readable in previews and diffs.
        insecureValue: policy,
        description: `hastack: the MTA-STS policy both mail servers serve at https://${host}${MTA_STS_POLICY_PATH}`,
      },
      { parent: this },
    );
    dns.record(this, `${name}-mta-sts-id`, {
      name: `_mta-sts.${domain}`,
      type: "TXT",
      ttl: MTA_STS_RECORD_TTL,
      records: [mtaStsRecord(policy)],
    });
    dns.record(this, `${name}-tls-rpt`, {
      name: `_smtp._tls.${domain}`,
      type: "TXT",
      ttl: MTA_STS_RECORD_TTL,
      records: [tlsRptRecord(cfg.tlsRpt.reportEmail ?? `postmaster@${domain}`)],
    });
    const ttl = cfg.ttl;
    if (this.pair.switchover === "eip") {
      // The service EIP moves with `active`: the name stays on it.
      dns.record(this, `${name}-mta-sts-a`, {
        name: host,
        type: "A",
        ttl,
        records: [this.pair.endpointIp],
      });
    } else {
      for (const rec of failoverRecords(cfg.active)) {
        const routing = rec.failover.toLowerCase();
        dns.record(this, `${name}-mta-sts-failover-${routing}`, {
          name: host,
          type: "A",
          ttl,
          records: [this.pair.publicIps[rec.side]],
          setIdentifier: `mail-mta-sts-${routing}`,
          failover: rec.failover,
          healthCheckId: this.pair.healthCheckIds[rec.side],
        });
      }
    }
    return { mode, id: mtaStsId(policy), policyUrl: `https://${host}${MTA_STS_POLICY_PATH}`, mx };
  }
}

/** TTL of the DKIM records: a rotation's "sign" waits at least this long after "publish". */
export const DKIM_RECORD_TTL = 300;

/** Which DKIM selectors exist and which one signs: one phase of a key rotation (issue 17). */
export interface DkimState {
  /** The selector both servers sign with. */
  signing: string;
  /** Selectors whose key the stack keeps and whose record it publishes. */
  published: string[];
}

/** What hastack:mail.dkim declares: without a rotation one selector; each rotation phase, README. */
export function dkimState(dkim: MailConfig["dkim"]): DkimState {
  const { selector, rotation } = dkim;
  switch (rotation?.phase) {
    case undefined:
      return { signing: selector, published: [selector] };
    case "publish":
      return { signing: selector, published: [selector, rotation.next] };
    case "sign":
      return { signing: rotation.next, published: [selector, rotation.next] };
    case "retire":
      return { signing: rotation.next, published: [rotation.next] };
  }
}

/** Problems of hastack:mail.dkim and the old server's DKIM record, each naming its key. */
export function checkDkimInput(
  dkim: MailConfig["dkim"],
  oldDkim?: { selector: string; record: string },
): string[] {
  const problems: string[] = [];
  if (dkim.rotation && dkim.rotation.next === dkim.selector) {
    problems.push(
      `hastack:mail.dkim.rotation.next must be a new selector, not hastack:mail.dkim.selector ("${dkim.selector}")`,
    );
  }
  if (oldDkim) {
    const key = "hastack:mail.migration.oldServer.dkim";
    if (dkimState(dkim).published.includes(oldDkim.selector)) {
      problems.push(
        `${key}.selector must differ from the stack's own selectors (${dkimState(dkim).published.join(", ")}), got "${oldDkim.selector}"`,
      );
    }
    const p = /(?:^|;)\s*p=([^;]*)/.exec(oldDkim.record)?.[1].replace(/\s+/g, "");
    if (!p || !/^[A-Za-z0-9+/]+=*$/.test(p)) {
      problems.push(`${key}.record must carry the old server's public key (p=<base64>)`);
    }
  }
  return problems;
}

/**
 * Refuses a DKIM change that is more than one safe step (as a RunError): signing with a selector
 * whose record the last update did not publish yet (receivers would not find it), or removing
 * the record of the selector that signed until this update (mail it signed is still in transit).
 * So a rotation goes publish → sign → retire, one reviewed update each, and changing
 * hastack:mail.dkim.selector outright is refused. Undefined previous: a new stack, not checked.
 */
export function checkDkimRotation(previous: DkimState | undefined, next: DkimState): void {
  if (!previous) {
    return;
  }
  const problems: string[] = [];
  if (next.signing !== previous.signing && !previous.published.includes(next.signing)) {
    problems.push(
      `signing with DKIM selector "${next.signing}" needs its record published by an earlier update ` +
        `(hastack:mail.dkim.rotation.phase publish), at least ${DKIM_RECORD_TTL} s before`,
    );
  }
  if (!next.published.includes(previous.signing)) {
    problems.push(
      `the record of DKIM selector "${previous.signing}" cannot be removed in the update that stops ` +
        `signing with it (mail it signed is still in transit): switch signing first ` +
        `(hastack:mail.dkim.rotation.phase sign), retire it in a later update`,
    );
  }
  if (problems.length > 0) {
    throw new pulumi.RunError(
      `hastack:mail.dkim: one rotation step per update (last applied: signing "${previous.signing}", ` +
        `published ${previous.published.join(", ")}): ${problems.join("; ")}`,
    );
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
export function mailServicePorts(
  pop3: boolean,
  ports: MailPorts = MAIL_PORTS,
  mtaSts = false,
): ServicePort[] {
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
    ...(mtaSts ? [tcp(ports.https, "https", MTA_STS_INGRESS_DESCRIPTION, "tcp")] : []),
  ];
}

/**
 * SSH from the NAS security groups, for the backup pulls (issue 11: without it the NAS could not
 * reach the mail servers at all). What the key may do there is the refresh script's rrsync line.
 */
export function backupPullPorts(nasSecurityGroupIds: pulumi.Input<string>[]): ServicePort[] {
  return nasSecurityGroupIds.length === 0
    ? []
    : [
        {
          protocol: "tcp",
          fromPort: 22,
          description: "backup pulls (read-only rrsync) from the NAS",
          cidrs: [],
          sourceSecurityGroupIds: nasSecurityGroupIds,
        },
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
  /** nginx: the MTA-STS policy (open to the world only while hastack:mail.mtaSts is not none). */
  https: number;
}

export const MAIL_PORTS: MailPorts = {
  smtp: 25,
  submission: 587,
  smtps: 465,
  imaps: 993,
  pop3s: 995,
  doveadm: 12345,
  https: 443,
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
  /**
   * Postfix queue; Dovecot's LMTP and auth sockets live in its private/ directory. On the data
   * volume (issue 17): mail accepted but not yet delivered survives a rebuilt root volume, and
   * a dead server's queue comes back with its volume.
   */
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
  /** Releases the fencing latch (ServerPair's health agent) once data is synced back. */
  unfenceCommand: string;
  /** node_exporter's textfile collector (docs/outputs.md: the replication metric). */
  textfileDir: string;
  /**
   * root's SSH directory: its authorized_keys gets the NAS's backup key, forced through
   * `rrsync -ro` under mailRoot (the NAS's mail-maildirs job reads mailRoot).
   */
  backupSshDir: string;
  /** OpenDKIM's configuration (Debian's unit reads /etc/opendkim.conf). */
  opendkimConfig: string;
  /** Where the DKIM private keys live (`<selector>.private`, mode 0600, owned by dkimUser). */
  dkimKeyDir: string;
  /** OpenDKIM's pid file (Debian's unit expects /run/opendkim/opendkim.pid). */
  dkimPidFile: string;
  /** The user OpenDKIM runs as and that owns the keys. */
  dkimUser: string;
  /** TCP port of the OpenDKIM milter on listenAddress (or 127.0.0.1): Postfix runs chrooted. */
  dkimMilterPort: number;
  /** CA file that verifies the old server's certificate in the migration. Defaults to the system CAs. */
  tlsClientCaFile?: string;
  /** certbot's config, work and log directories: on the data volume (account, certificate). */
  acmeDir: string;
  /**
   * certbot's challenge plugin (and ACME server) arguments: Route 53 DNS-01 against Let's
   * Encrypt in production; tests use RFC 2136 against their bind9 and pebble.
   */
  acmeArgs: string[];
  /** nginx's complete configuration (server/mail/nginx.conf; Debian's sites are not used). */
  webConfig: string;
  /** nginx's pid file (Debian's unit expects /run/nginx.pid). */
  webPidFile: string;
  /** The user nginx's workers run as (they read only the policy file). */
  webUser: string;
}

export const PRODUCTION_LAYOUT: MailLayout = {
  mailRoot: "/srv/data/mail",
  tlsCert: "/srv/data/tls/mail.crt",
  tlsKey: "/srv/data/tls/mail.key",
  dovecotConfig: "/etc/dovecot/dovecot.conf",
  usersFile: "/etc/dovecot/users",
  secretsFile: "/etc/dovecot/hastack-secrets.conf",
  postfixConfigDir: "/etc/postfix",
  postfixQueueDir: "/srv/data/postfix",
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
  // The NAS connects as root (its jobs name no user): root's keys.
  backupSshDir: "/root/.ssh",
  opendkimConfig: "/etc/opendkim.conf",
  dkimKeyDir: "/etc/dkimkeys",
  dkimPidFile: "/run/opendkim/opendkim.pid",
  dkimUser: "opendkim",
  dkimMilterPort: 8891,
  acmeDir: "/srv/data/acme",
  acmeArgs: ["--dns-route53"],
  webConfig: "/etc/nginx/nginx.conf",
  webPidFile: "/run/nginx.pid",
  webUser: "www-data",
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

/**
 * Debian's queue directory, which the package's first start uses: the setup script moves
 * anything queued there into the data volume's queue (`hastack-mail-queue adopt`).
 */
export const DEBIAN_QUEUE_DIR = "/var/spool/postfix";

/** Minutes between two queue reports (hastack-mail-queue metrics): the textfile's freshness. */
export const QUEUE_METRICS_MINUTES = 1;

/** Where user-data stages the configs; the setup script installs them after the packages. */
export const STAGING_DIR = "/etc/hastack/mail";

/**
 * The `@@NAME@@` values a layout gives the files under server/mail/. Scripts get every value
 * shell-quoted (they assign or pass them as words); config files get them as they are.
 */
function layoutValues(layout: MailLayout, quote: boolean): Record<string, string> {
  const q = quote ? shellQuote : (v: string): string => v;
  return {
    MAIL_ROOT: q(layout.mailRoot),
    TLS_CERT: q(layout.tlsCert),
    TLS_KEY: q(layout.tlsKey),
    DOVECOT_CONF: q(layout.dovecotConfig),
    USERS_FILE: q(layout.usersFile),
    SECRETS_FILE: q(layout.secretsFile),
    POSTFIX_DIR: q(layout.postfixConfigDir),
    QUEUE_DIR: q(layout.postfixQueueDir),
    DATA_DIR: q(layout.postfixDataDir),
    STATE_DIR: q(layout.stateDir),
    SBIN_DIR: q(layout.sbinDir),
    MAIL_USER: q(layout.mailUser),
    MAIL_GROUP: q(layout.mailGroup),
    MAIL_UID: String(layout.mailUid),
    UNFENCE: q(layout.unfenceCommand),
    BACKUP_SSH_DIR: q(layout.backupSshDir),
    OPENDKIM_CONF: q(layout.opendkimConfig),
    DKIM_KEY_DIR: q(layout.dkimKeyDir),
    DKIM_PID_FILE: q(layout.dkimPidFile),
    DKIM_USER: q(layout.dkimUser),
    DKIM_MILTER_HOST: layout.listenAddress ?? "127.0.0.1",
    DKIM_MILTER_PORT: String(layout.dkimMilterPort),
    TEXTFILE_DIR: q(layout.textfileDir),
    DOVEADM_PORT: String(layout.ports.doveadm),
    WEB_CONF: q(layout.webConfig),
    WEB_PID_FILE: q(layout.webPidFile),
    WEB_USER: q(layout.webUser),
  };
}

/** The values of `server/<rel>` that appear in it, taken from `all` (a file uses a subset). */
function pick(rel: string, all: Record<string, string | number>): Record<string, string | number> {
  const text = serverFile(rel);
  return Object.fromEntries(Object.entries(all).filter(([k]) => text.includes(`@@${k}@@`)));
}

/** `server/<rel>` rendered with the values of `all` it uses, plus `extra` (which it must use). */
function renderPicked(
  rel: string,
  all: Record<string, string | number>,
  extra: Record<string, string | number> = {},
): string {
  return renderServerFile(rel, { ...pick(rel, all), ...extra });
}

/**
 * A config file under server/mail/ (values as they are: config formats take no shell quoting)
 * with the values every config may use — the layout's, the host name, the domain, the size
 * limit — plus `extra`, which it must use. renderScript is the same for scripts.
 */
function renderConfig(
  name: string,
  s: MailServerSettings,
  layout: MailLayout,
  extra: Record<string, string | number> = {},
): string {
  const values = {
    ...layoutValues(layout, false),
    HOSTNAME: s.hostname,
    DOMAIN: s.domain,
    MESSAGE_SIZE_LIMIT,
  };
  return renderPicked(`mail/${name}`, values, extra);
}

/** Postfix main.cf (server/mail/main.cf): virtual mailboxes via Dovecot LMTP, TLS, SASL. */
export function renderMainCf(
  s: MailServerSettings,
  layout: MailLayout = PRODUCTION_LAYOUT,
): string {
  return renderConfig("main.cf", s, layout);
}

/**
 * OpenDKIM (server/mail/opendkim.conf): signs the domain's outgoing mail with the stack's key
 * for the configured selector; the same file on both servers.
 */
export function renderOpendkimConf(
  s: MailServerSettings,
  layout: MailLayout = PRODUCTION_LAYOUT,
): string {
  return renderConfig("opendkim.conf", s, layout);
}

/**
 * nginx (server/mail/nginx.conf): serves the MTA-STS policy hastack-mail-refresh installs, over
 * HTTPS with the mail certificate (which names mta-sts.<domain>), and nothing else.
 */
export function renderNginxConf(
  s: MailServerSettings,
  layout: MailLayout = PRODUCTION_LAYOUT,
): string {
  return renderConfig("nginx.conf", s, layout, {
    MTA_STS_HOST: mtaStsHost(s.domain),
    HTTPS_LISTEN: layout.listenAddress
      ? `${layout.listenAddress}:${layout.ports.https}`
      : String(layout.ports.https),
  });
}

/** Postfix master.cf (server/mail/master.cf): SMTP (25), submission (587), smtps (465). */
export function renderMasterCf(layout: MailLayout = PRODUCTION_LAYOUT): string {
  // The service column is padded to 10 as Postfix's own master.cf; a listen address (tests)
  // turns `smtp` into `127.0.3.1:21000`.
  const endpoint = (standardName: string, port: number, standardPort: number): string =>
    (layout.listenAddress
      ? `${layout.listenAddress}:${port}`
      : port === standardPort
        ? standardName
        : String(port)
    ).padEnd(10);
  return renderServerFile("mail/master.cf", {
    SMTP_SERVICE: endpoint("smtp", layout.ports.smtp, 25),
    SUBMISSION_SERVICE: endpoint("submission", layout.ports.submission, 587),
    SUBMISSIONS_SERVICE: endpoint("submissions", layout.ports.smtps, 465),
    CHROOT: layout.postfixChroot ? "y" : "n",
  });
}

/**
 * Dovecot (server/mail/dovecot.conf): IMAPS (POP3S optional), LMTP for Postfix, Maildir on the
 * data volume, users from a passwd-file, and the doveadm server the peer's dsync connects to
 * (its password comes from SSM via the secrets include, never from this file).
 */
export function renderDovecotConf(
  s: MailServerSettings,
  layout: MailLayout = PRODUCTION_LAYOUT,
): string {
  return renderConfig("dovecot.conf", s, layout, {
    LISTEN: layout.listenAddress ?? "*",
    IMAPS_PORT: layout.ports.imaps,
    POP3_PROTOCOL: s.pop3 ? " pop3" : "",
    POP3S_SERVICE: s.pop3
      ? renderServerFile("mail/dovecot-pop3s.conf", { POP3S_PORT: layout.ports.pop3s })
      : "",
  });
}

/** Everything the per-server scripts need besides the layout. */
export interface MailScriptSettings extends MailServerSettings {
  role: Role;
}

/** The values every mail script may use (each script uses a subset). */
function scriptValues(s: MailServerSettings, layout: MailLayout): Record<string, string> {
  return {
    ...layoutValues(layout, true),
    SSM_PREFIX: shellQuote(s.ssmPrefix),
    HOSTNAME: shellQuote(s.hostname),
    DOMAIN: shellQuote(s.domain),
  };
}

function renderScript(
  name: string,
  s: MailServerSettings,
  layout: MailLayout,
  extra: Record<string, string> = {},
): string {
  const rel = `mail/${name}.sh`;
  return renderPicked(rel, scriptValues(s, layout), extra);
}

/**
 * hastack-mail-refresh (server/mail/hastack-mail-refresh.sh): pulls what the stack keeps in
 * SSM — the users (passwd-file lines the operator stores, migration step 2), the doveadm
 * password and the peer's private address — validates them and installs them only when valid.
 * `--require-users` fails when the user list is empty (the check of migration step 2).
 */
export function renderRefreshScript(
  s: MailScriptSettings,
  layout: MailLayout = PRODUCTION_LAYOUT,
): string {
  return renderScript("hastack-mail-refresh", s, layout, {
    PEER_ROLE: otherRole(s.role),
    // An awk regex inside single quotes: the domain's dots escaped for awk's string parser.
    DOMAIN_RE: s.domain.replace(/\./g, "\\\\."),
  });
}

/**
 * hastack-mail-sync (server/mail/hastack-mail-sync.sh): the two-way dsync of every mailbox
 * with the peer. The primary's timer runs it every syncIntervalMinutes (the mail RPO); since
 * it is two-way it is also the reverse sync before a fallback (`--reverse`, README
 * "Fallback"). `--verify` (implied by --reverse) then compares every user's mailboxes (message
 * GUIDs) on both servers and fails on any difference. On success it writes the replication
 * metric monitoring alerts on (docs/outputs.md).
 */
export function renderSyncScript(
  s: MailScriptSettings,
  layout: MailLayout = PRODUCTION_LAYOUT,
): string {
  return renderScript("hastack-mail-sync", s, layout, { ROLE: s.role });
}

/**
 * hastack-mail-fallback (server/mail/hastack-mail-fallback.sh): run on the primary before
 * traffic returns to it. The reverse sync (two-way, so everything the standby took while it
 * served comes back), a verification that both servers hold the same messages, and only then
 * the release of the fencing latch.
 */
export function renderFallbackScript(layout: MailLayout = PRODUCTION_LAYOUT): string {
  return renderPicked("mail/hastack-mail-fallback.sh", layoutValues(layout, true));
}

/**
 * hastack-mail-queue (server/mail/hastack-mail-queue.sh): `metrics` exports the Postfix queue's
 * size per queue and its oldest message's age (node_exporter textfile collector, every minute);
 * `flush` delivers the queue before the server is shut down or fenced for good and refuses
 * while anything is left; `adopt DIR` moves an old queue directory's mail into the data
 * volume's queue (first boot).
 */
export function renderQueueScript(layout: MailLayout = PRODUCTION_LAYOUT): string {
  return renderPicked("mail/hastack-mail-queue.sh", layoutValues(layout, true));
}

/**
 * Minutes between two runs of `hastack-mail-cert renew`: certbot renews only what expires within
 * 30 days, so hourly costs nothing, and a certificate missing since first boot comes within the hour.
 */
export const CERT_RENEW_MINUTES = 60;

/**
 * hastack-mail-cert (server/mail/hastack-mail-cert.sh): the certificate for the service name
 * and both server names from ACME with DNS-01 (`obtain` at first boot, `renew` by timer, and
 * `deploy`, certbot's hook, which installs it at tlsCert/tlsKey and reloads Postfix and Dovecot).
 */
export function renderCertScript(
  s: MailServerSettings,
  serverNames: Record<Role, string>,
  layout: MailLayout = PRODUCTION_LAYOUT,
): string {
  return renderPicked("mail/hastack-mail-cert.sh", layoutValues(layout, true), {
    ACME_DIR: shellQuote(layout.acmeDir),
    CERT_NAMES: certificateNames(s, serverNames).map(shellQuote).join(" "),
    CONTACT: shellQuote(`postmaster@${s.domain}`),
    ACME_ARGS: layout.acmeArgs.map(shellQuote).join(" "),
  });
}

/**
 * The IAM policy certbot's Route 53 plugin needs for DNS-01, scoped with Route 53's own
 * condition keys to TXT records named `_acme-challenge.<name>` for the certificate's names in one
 * zone (ListHostedZones has no resource scope in IAM; it lists zone names, no records).
 */
export function acmeDnsPolicy(zoneId: string, names: string[]): Record<string, unknown> {
  return {
    Version: "2012-10-17",
    Statement: [
      {
        Sid: "AcmeChallengeRecordsOnly",
        Effect: "Allow",
        Action: "route53:ChangeResourceRecordSets",
        Resource: `arn:aws:route53:::hostedzone/${zoneId}`,
        Condition: {
          "ForAllValues:StringEquals": {
            // Route 53 lower-cases the names and drops the final dot before comparing.
            "route53:ChangeResourceRecordSetsNormalizedRecordNames": names.map(
              (n) => `_acme-challenge.${n.toLowerCase().replace(/\.$/, "")}`,
            ),
            "route53:ChangeResourceRecordSetsRecordTypes": ["TXT"],
            "route53:ChangeResourceRecordSetsActions": ["UPSERT", "DELETE"],
          },
        },
      },
      {
        Sid: "WaitForChange",
        Effect: "Allow",
        Action: "route53:GetChange",
        Resource: "arn:aws:route53:::change/*",
      },
      {
        // IAM has no resource scope for it (policy/rules.ts ACTIONS_ONLY_ON_ANY_RESOURCE).
        Sid: "FindZone",
        Effect: "Allow",
        Action: ["route53:ListHostedZones"],
        Resource: "*",
      },
    ],
  };
}

/**
 * The names in a mail server's certificate: the service name first, then both servers', then
 * mta-sts.<domain> (whatever hastack:mail.mtaSts says: turning MTA-STS on touches no server).
 */
export function certificateNames(
  s: MailServerSettings,
  serverNames: Record<Role, string>,
): string[] {
  return [s.hostname, serverNames.primary, serverNames.standby, mtaStsHost(s.domain)];
}

/** One run of a migration step that copies mail from the old server (steps 3, 7 and 9). */
export interface MigrationSyncSpec {
  /**
   * initial = step 3, final = step 7 (both doveadm sync -1 -R); retire = step 9
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
 * hastack-mail-migrate initial|final OLD_IP MASTER_USER PORT (server/mail/hastack-mail-migrate.sh):
 * copies every user's mailboxes from the old server over IMAPS (Dovecot imapc, logged in as the
 * master user), on the new server, one way (`doveadm sync -1 -R`): it merges and deletes
 * nothing here. initial (step 3) copies everything; final (step 7) adds what reached the old
 * server since, and mail delivered to the new server since step 6 stays. Not `doveadm backup
 * -R` for step 3: once the new server's INBOX exists (a delivery, a login, an earlier run
 * makes it) it fails ("INBOX can't be deleted") after expunging what the new server held.
 *
 * The old server's certificate names our own host name, which resolves to the new pair by now,
 * and imapc can only verify a certificate against the host it connects to. So the TLS leg is a
 * socat tunnel to OLD_IP that verifies the certificate against the host name, and imapc talks
 * to the tunnel over loopback: the old server's real certificate is still checked.
 *
 * One-way sync copies again, after a re-run, what it copied before once the two sides' UIDs
 * diverge (new mail on the new server makes them diverge). So every step then removes copies
 * that are byte-identical to another message with the same Message-ID in the same mailbox —
 * only exact duplicates, never two different messages — and a re-run (a rollback of step 7
 * and forward again) leaves every mailbox as it was.
 */
export function renderMigrateScript(
  s: MailServerSettings,
  layout: MailLayout = PRODUCTION_LAYOUT,
): string {
  return renderScript("hastack-mail-migrate", s, layout, {
    // socat's OPENSSL address option that names the CAs the old server's certificate chains to.
    CA: layout.tlsClientCaFile ? `cafile=${layout.tlsClientCaFile}` : "capath=/etc/ssl/certs",
  });
}

/** sysexits' EX_TEMPFAIL: doveadm's status when it cannot connect; the sync's when its lock is held. */
export const EX_TEMPFAIL = 75;

/**
 * A systemd oneshot service plus the timer that runs it every `minutes`
 * (server/mail/periodic.service, periodic.timer). `retryStatus`: an exit status that means "not
 * this time" (the peer is not up yet, or is down) rather than a failure of this server: the unit
 * does not turn failed; the script logs it and the staleness metric is what monitoring alerts on.
 */
export function renderTimerUnits(o: {
  name: string;
  description: string;
  execStart: string;
  minutes: number;
  retryStatus?: number;
}): { service: string; timer: string } {
  return {
    service: renderServerFile("mail/periodic.service", {
      DESCRIPTION: o.description,
      EXEC_START: o.execStart,
      SUCCESS_EXIT_STATUS: o.retryStatus ?? "",
    }),
    timer: renderServerFile("mail/periodic.timer", {
      DESCRIPTION: o.description,
      MINUTES: o.minutes,
      NAME: o.name,
    }),
  };
}

/** What one server's first boot needs besides what ServerPair adds (data volume, health agent). */
export interface MailCloudConfigInput {
  settings: MailServerSettings;
  role: Role;
  /** Minutes between pair syncs (hastack:mail.syncIntervalMinutes). */
  syncIntervalMinutes: number;
  /** FQDNs of both servers (mx1/mx2): names in the first-boot certificate. */
  serverNames: Record<Role, string>;
  layout?: MailLayout;
}

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
    // Signs outgoing mail (DKIM); Debian's package, its unit reads /etc/opendkim.conf.
    "opendkim",
    // The NAS's backup pulls run rsync here, locked down by rrsync (same package).
    "rsync",
    // Monitoring scrapes it; the sync writes its success metric to the textfile collector.
    "prometheus-node-exporter",
    // The certificate from ACME, DNS-01 on the stack's Route 53 zone (hastack-mail-cert).
    "certbot",
    "python3-certbot-dns-route53",
    // Serves the MTA-STS policy (server/mail/nginx.conf).
    "nginx",
  ];
}

/**
 * hastack-mail-setup (server/mail/hastack-mail-setup.sh): first boot, after the packages.
 * Creates the mail user and Maildir root on the data volume, a certificate if the volume holds
 * none yet (self-signed until an operator installs a real one at the same paths), installs the
 * staged configs over the packages' defaults, pulls users and secrets (retrying while the
 * instance profile propagates), starts the services and the timers — the sync timer on the
 * primary only.
 */
export function renderSetupScript(input: MailCloudConfigInput): string {
  const L = input.layout ?? PRODUCTION_LAYOUT;
  const s = input.settings;
  const names = certificateNames(s, input.serverNames);
  return renderScript("hastack-mail-setup", s, L, {
    SAN: shellQuote(names.map((n) => `DNS:${n}`).join(",")),
    STAGING_DIR: shellQuote(STAGING_DIR),
    OLD_QUEUE_DIR: shellQuote(DEBIAN_QUEUE_DIR),
    SYNC_TIMER:
      input.role === "primary"
        ? "# Only the primary starts the two-way sync: one initiator, no concurrent runs.\n" +
          "systemctl enable --now hastack-mail-sync.timer"
        : "# The standby answers the primary's sync; it runs none itself (hastack-mail-sync by hand only).",
  });
}

/** Aliases every domain needs (RFC 2142, RFC 5321): routed to postmaster's mailbox. */
export function renderVirtualAliases(domain: string): string {
  return renderServerFile("mail/virtual", { DOMAIN: domain });
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
    // The peer unreachable (not booted yet, or down in a failover): the next timer tries again;
    // hastack_replication_last_success_timestamp_seconds ages and the RPO alert fires.
    retryStatus: EX_TEMPFAIL,
  });
  const refresh = renderTimerUnits({
    name: "hastack-mail-refresh",
    description: "hastack: users and secrets from SSM",
    execStart: `${L.sbinDir}/hastack-mail-refresh`,
    minutes: input.syncIntervalMinutes,
  });
  const queue = renderTimerUnits({
    name: "hastack-mail-queue",
    description: "hastack: Postfix queue size and age for monitoring",
    execStart: `${L.sbinDir}/hastack-mail-queue metrics`,
    minutes: QUEUE_METRICS_MINUTES,
  });
  const cert = renderTimerUnits({
    name: "hastack-mail-cert",
    description: "hastack: renew the ACME certificate, or obtain it if missing",
    execStart: `${L.sbinDir}/hastack-mail-cert renew`,
    minutes: CERT_RENEW_MINUTES,
  });
  const script = (name: string, content: string): CloudConfigFile => ({
    path: `${L.sbinDir}/${name}`,
    permissions: "0755",
    content: withoutComments(content),
  });
  const staged = (name: string, content: string): CloudConfigFile => ({
    path: `${STAGING_DIR}/${name}`,
    permissions: "0644",
    content: withoutComments(content),
  });
  const unit = (name: string, content: string): CloudConfigFile => ({
    path: `/etc/systemd/system/${name}`,
    permissions: "0644",
    content: withoutComments(content),
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
      staged("opendkim.conf", renderOpendkimConf(s, L)),
      staged("nginx.conf", renderNginxConf(s, L)),
      script("hastack-mail-setup", renderSetupScript(input)),
      script("hastack-mail-refresh", renderRefreshScript(scriptSettings, L)),
      script("hastack-mail-sync", renderSyncScript(scriptSettings, L)),
      script("hastack-mail-fallback", renderFallbackScript(L)),
      script("hastack-mail-migrate", renderMigrateScript(s, L)),
      script("hastack-mail-queue", renderQueueScript(L)),
      script("hastack-mail-cert", renderCertScript(s, input.serverNames, L)),
      unit("hastack-mail-sync.service", sync.service),
      unit("hastack-mail-sync.timer", sync.timer),
      unit("hastack-mail-refresh.service", refresh.service),
      unit("hastack-mail-refresh.timer", refresh.timer),
      unit("hastack-mail-queue.service", queue.service),
      unit("hastack-mail-queue.timer", queue.timer),
      unit("hastack-mail-cert.service", cert.service),
      unit("hastack-mail-cert.timer", cert.timer),
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

/** The DKIM key record (RFC 6376 3.6.1) of an RSA public key in PEM (SubjectPublicKeyInfo). */
export function dkimRecord(publicKeyPem: string): string {
  const body = publicKeyPem
    .split("\n")
    .filter((l) => l !== "" && !l.startsWith("-----"))
    .join("");
  if (!/^[A-Za-z0-9+/]+=*$/.test(body)) {
    throw new Error("dkimRecord: expected one PEM public key");
  }
  return `v=DKIM1; k=rsa; p=${body}`;
}

/**
 * A TXT value for Route 53: one DNS character-string holds at most 255 bytes, so a longer value
 * (a DKIM key) is cut into 255-byte strings; the AWS provider quotes the value as a whole, so
 * `""` between two parts makes them separate strings (`"part1" "part2"`) that receivers join.
 */
export function route53Txt(value: string): string {
  const parts: string[] = [];
  for (let i = 0; i < value.length; i += 255) {
    parts.push(value.slice(i, i + 255));
  }
  return parts.join('""');
}

/**
 * The domain's DMARC record (RFC 7489): the owner's policy, aggregate reports to `reportEmail`,
 * relaxed alignment (mx1/mx2 sign and send as the domain itself).
 */
export function dmarcRecord(policy: "none" | "quarantine" | "reject", reportEmail: string): string {
  return `v=DMARC1; p=${policy}; rua=mailto:${reportEmail}; adkim=r; aspf=r`;
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
