// The stack-config contract: every `hastack:*` key, its type, its default and its limits, as one
// schema. index.ts validates the whole stack config against it before declaring any resource,
// and reports every problem at once, each naming the full key (`hastack:mail.active`) and what
// was expected, so an operator fixes a stack file in one pass instead of one error per run.
import { z } from "zod";
import { checkRaisedPreference, PHASE_ZERO_WITH_OLD_SERVER } from "../../components/mail-migration";
import { addressCount, Cidr, coveredBy, describeCount, parseCidr } from "./cidr";
import { PBX_CONFIG_DATABASES, PBX_FLAVOURS } from "../../components/pbx-replicated-set";
import {
  DEFAULT_FAILURE_THRESHOLD,
  DEFAULT_TTL_SECONDS,
  MAX_SWITCH_TTL_SECONDS,
} from "../../components/pair-defaults";

export const NAMESPACE = "hastack";

/** Keys read from the `hastack` namespace. Anything else under `hastack:` is refused as a typo. */
export const CONFIG_KEYS = [
  "domain",
  "zone",
  "network",
  "adminCidrs",
  "officeCidrs",
  "allowWideCidrs",
  "ami",
  "keyName",
  "sshUser",
  "sshPrivateKey",
  "ssmRoot",
  "alerts",
  "contacts",
  "mail",
  "pbx",
  "mysql",
  "nas",
] as const;

/** Keys whose values are secrets (`pulumi config set --secret`); read with getSecret. */
export const SECRET_KEYS = ["sshPrivateKey"] as const;

/** hastack:ssmRoot: the legacy root or one level below it (SSM's path characters only). */
const SSM_ROOT = /^\/hastack(\/[A-Za-z0-9_.-]{1,64})?$/;
const AMI = /^ami-([0-9a-f]{8}|[0-9a-f]{17})$/;
/**
 * EC2 instance type by shape, family.size: t3.small, m6i.large, c7i.metal-24xl, m7i-flex.large,
 * u-6tb1.metal, mac2-m2pro.metal. Which types a region offers is AWS's to say; the shape
 * catches typos and nonsense ("banana", "t3small", "T3.Small") before any resource is declared.
 */
const INSTANCE_TYPE =
  /^(?:[a-z]+\d[a-z0-9]*(?:-[a-z0-9]+)*|u-\d+tb\d+)\.(?:nano|micro|small|medium|large|\d*xlarge|metal(?:-\d+xl)?)$/;
const AZ = /^[a-z]{2}(-[a-z]+)+-\d[a-z]$/;
const HOST_LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
const DOMAIN = /^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$/;
const FQDN = DOMAIN;

function isIpv4(s: string): boolean {
  const parts = s.split(".");
  return parts.length === 4 && parts.every((p) => /^\d{1,3}$/.test(p) && Number(p) <= 255);
}

const ipv4 = z.string().refine(isIpv4, { message: "an IPv4 address such as 203.0.113.25" });
/** One CIDR, parsed (lib/config/cidr.ts): canonical spelling, no host bits. */
const cidr = z.string().superRefine((s, ctx) => {
  const parsed = parseCidr(s);
  if (!parsed.ok) {
    ctx.addIssue({ code: "custom", message: parsed.reason });
  }
});

/**
 * The CIDR lists that open ports to the Internet, and the floor they are held to: no entry wider
 * than /16 and no list opening more than a /16's worth of addresses. `hastack:allowWideCidrs`
 * lifts the floor for one list, with the reason written down, to at most a /8 (never the world).
 */
export const CIDR_LIST_KEYS = ["adminCidrs", "officeCidrs", "pbx.sipTrunkCidrs"] as const;
export type CidrListKey = (typeof CIDR_LIST_KEYS)[number];
export const CIDR_FLOOR = { prefix: 16, addresses: 2 ** 16 } as const;
export const WIDE_CIDR_CEILING = { prefix: 8, addresses: 2 ** 24 } as const;
const wideReason = z
  .string()
  .min(10, { message: "a reason of at least 10 characters (who needs it and why)" });
const allowWideCidrs = z
  .object({
    adminCidrs: wideReason.optional(),
    officeCidrs: wideReason.optional(),
    "pbx.sipTrunkCidrs": wideReason.optional(),
  })
  .strict()
  .default({});
/** The VPC's CIDR: private (RFC 1918), /16 (AWS's largest) to /23 (two /24 subnets). */
const PRIVATE_RANGES = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"];
const port = z.number().int().min(1).max(65535);
const email = z.string().email({ message: "an e-mail address" });
const az = z.string().regex(AZ, { message: "an availability zone such as ap-southeast-3a" });
const ami = z
  .string()
  .regex(AMI, { message: "a pinned AMI id such as ami-0123456789abcdef0 (no lookups)" });
const hostLabel = z
  .string()
  .regex(HOST_LABEL, { message: "a DNS label such as mail (lowercase, no dots)" });

export const Roles = ["primary", "standby"] as const;
const role = z.enum(Roles);

/** Settings every server pair shares; each service object extends these. */
const pairFields = {
  /** Which side serves. Flipping it is the failover (→ standby) or fallback (→ primary). */
  active: role,
  /** How clients follow the active side. Defaults per service (mail, mysql: dns; pbx: eip). */
  switchover: z.enum(["dns", "eip"]).optional(),
  /** EC2 instance type, family.size. Defaults to t3.small. */
  instanceType: z
    .string()
    .regex(INSTANCE_TYPE, {
      message: "an EC2 instance type such as t3.small or m6i.large (family.size)",
    })
    .default("t3.small"),
  /** Pinned AMI for this pair. Defaults to hastack:ami. */
  ami: ami.optional(),
  /** Size of the data volume in GiB. Defaults to 50. */
  dataVolumeGb: z.number().int().min(1).max(16384).default(50),
  /** Root volume in GiB. Defaults to 20. */
  rootVolumeGb: z.number().int().min(8).max(1024).default(20),
  /** AZ of each side; must differ. Defaults to the first and second subnet's AZ. */
  azs: z.object({ primary: az, standby: az }).strict().optional(),
  /** Route 53 health check: failures before a side counts as down (10 s interval). Defaults to 3. */
  healthCheck: z
    .object({
      failureThreshold: z.number().int().min(1).max(10).default(DEFAULT_FAILURE_THRESHOLD),
    })
    .strict()
    .default({ failureThreshold: DEFAULT_FAILURE_THRESHOLD }),
  /** TTL of the service's switch records, at most 60 s so a failover is seen fast. Defaults to 30 (RTO ≤ 60 s with the default health check). */
  ttl: z.number().int().min(5).max(MAX_SWITCH_TTL_SECONDS).default(DEFAULT_TTL_SECONDS),
  /** Seconds from an instance start to the service answering (for RTO and downtime plans). Defaults to 180. */
  bootSeconds: z.number().int().min(10).max(3600).default(180),
};

const mailMigration = z
  .object({
    /** 0 = no migration (refused with oldServer: a move starts at 1); 1–9 = the steps of the planned move (README, issues 3 and 18). */
    phase: z.number().int().min(0).max(9).default(0),
    /** The server being replaced: same hostname/domain as the new one, only the IP differs. */
    oldServer: z
      .object({
        hostname: z.string().regex(FQDN, { message: "a fully qualified host name" }),
        ip: ipv4,
        mxPreference: z.number().int().min(0).max(65535).default(0),
        /** Preference the old MX is raised to in phase 5; at least mxPreference + 2, so both new servers fit below it from phase 6. Defaults to 10. */
        raisedPreference: z.number().int().min(1).max(65535).default(10),
        /** Label of the A record the old server's MX entry points at (its host name now names the new pair). Defaults to mx-old. */
        mxLabel: hostLabel.default("mx-old"),
        /** IMAP master user on the old server that steps 3 and 7 log in as (its password: SSM <ssmRoot>/mail/migration/master-password). Defaults to hastack-migrate. */
        masterUser: z
          .string()
          .regex(/^[A-Za-z0-9._@-]{1,64}$/, { message: "a user name (letters, digits, . _ @ -)" })
          .default("hastack-migrate"),
        /**
         * The old server's own DKIM selector and its TXT value (`v=DKIM1; k=rsa; p=…`), published
         * by the stack until step 9 (the old server may sign and send until it is retired).
         * Defaults to none: the old server does not sign, or its record lives elsewhere.
         */
        dkim: z
          .object({
            selector: hostLabel,
            record: z
              .string()
              .regex(/^v=DKIM1;/, { message: 'a DKIM key record starting with "v=DKIM1;"' }),
          })
          .strict()
          .optional(),
      })
      .strict()
      .optional(),
  })
  .strict();

const mail = z
  .object({
    ...pairFields,
    /** Host label of the mail service (mail.<domain>). Defaults to mail. */
    hostname: hostLabel.default("mail"),
    /** Labels of the per-server A records. Defaults to mx1 and mx2. */
    serverNames: z
      .object({ primary: hostLabel, standby: hostLabel })
      .strict()
      .default({ primary: "mx1", standby: "mx2" }),
    /** Minutes between dsync runs primary → standby: the mail RPO. Defaults to 5. */
    syncIntervalMinutes: z.number().int().min(1).max(1440).default(5),
    /** Offer POP3S (995) besides IMAPS. Defaults to false. */
    pop3: z.boolean().default(false),
    migration: mailMigration.default({ phase: 0 }),
    /** DKIM signing (issue 17): the stack generates the selector's key and publishes its TXT record. */
    dkim: z
      .object({
        /** Selector both servers sign with (`<selector>._domainkey.<domain>`). Defaults to hastack1. */
        selector: hostLabel.default("hastack1"),
        /**
         * A key rotation to the selector `next`, one reviewed update per phase (README): publish
         * (next's key and record added; still signing with selector), sign (after the record's
         * TTL: both servers sign with next), retire (selector's key and record removed). Then set
         * selector to next and remove rotation: nothing changes. Defaults to none.
         */
        rotation: z
          .object({
            next: hostLabel,
            phase: z.enum(["publish", "sign", "retire"]),
          })
          .strict()
          .optional(),
      })
      .strict()
      .default({ selector: "hastack1" }),
    /** The domain's DMARC record (`_dmarc.<domain>`, issue 17). */
    dmarc: z
      .object({
        /** What receivers do with mail that fails DMARC: none (report only), quarantine or reject. Defaults to none. */
        policy: z.enum(["none", "quarantine", "reject"]).default("none"),
        /** Where receivers send aggregate reports. Defaults to postmaster@<domain>. */
        reportEmail: z
          .string()
          .email({ message: "an e-mail address such as dmarc@example.co.id" })
          .optional(),
      })
      .strict()
      .default({ policy: "none" }),
    /**
     * MTA-STS (RFC 8461, issue 17): `testing` publishes the policy and `_mta-sts.<domain>` so
     * senders report TLS failures (TLS-RPT) but still deliver; `enforce` makes senders refuse
     * an MX whose certificate is not valid for its name. Defaults to none (nothing published).
     */
    mtaSts: z.enum(["none", "testing", "enforce"]).default("none"),
    /**
     * max_age of the MTA-STS policy: how long senders may cache it (RFC 8461 3.2: at most a
     * year; a day at least, or the policy protects little). Defaults to 604800 (one week).
     */
    mtaStsMaxAgeSeconds: z
      .number({ message: "a number of seconds" })
      .int({ message: "a whole number of seconds" })
      .min(86400, { message: "at least 86400 (one day)" })
      .max(31557600, { message: "at most 31557600 (one year, RFC 8461)" })
      .default(604800),
    /** TLS-RPT (RFC 8460): `_smtp._tls.<domain>`, published with MTA-STS. */
    tlsRpt: z
      .object({
        /** Where senders mail their daily TLS reports. Defaults to postmaster@<domain>. */
        reportEmail: z
          .string()
          .email({ message: "an e-mail address such as tls-reports@example.co.id" })
          .optional(),
      })
      .strict()
      .default({}),
  })
  .strict();

const mysql = z
  .object({
    ...pairFields,
    /** Defaults to mariadb (what FreePBX and Debian ship). */
    engine: z.enum(["mariadb", "mysql"]).default("mariadb"),
    /** Host label of the database endpoint (db.<domain>). Defaults to db. */
    hostname: hostLabel.default("db"),
    /** Semi-synchronous replication: every acknowledged commit is on both servers. Defaults to true. */
    semiSync: z.boolean().default(true),
    /** How long a commit waits for the standby's ack before semi-sync degrades to async. Defaults to 10000. */
    semiSyncTimeoutMs: z.number().int().min(100).max(600000).default(10000),
    /** A failover is refused when the standby lags more than this. Defaults to 30. */
    maxFailoverLagSeconds: z.number().int().min(0).max(86400).default(30),
    /** Promote the standby even if it lags beyond maxFailoverLagSeconds. Defaults to false. */
    forceFailover: z.boolean().default(false),
    /** Binary-log retention on both servers. Defaults to 7. */
    binlogRetentionDays: z.number().int().min(1).max(99).default(7),
    /** Databases created and replicated. Defaults to ["asteriskcdrdb", "app"]. */
    databases: z
      .array(z.string().regex(/^[A-Za-z0-9_]{1,64}$/))
      .min(1)
      .default(["asteriskcdrdb", "app"]),
  })
  .strict();

const pbx = z
  .object({
    ...pairFields,
    /** Host label of the PBX service (pbx.<domain>). Defaults to pbx. */
    hostname: hostLabel.default("pbx"),
    /** Labels of the per-server A records. Defaults to pbx1 and pbx2. */
    serverNames: z
      .object({ primary: hostLabel, standby: hostLabel })
      .strict()
      .default({ primary: "pbx1", standby: "pbx2" }),
    /** RTP media port range (UDP). Defaults to 10000–20000. */
    rtpPorts: z.object({ from: port, to: port }).strict().default({ from: 10000, to: 20000 }), // from ≤ to: crossFieldProblems, with the values
    /** SIP trunk provider addresses allowed to reach SIP and RTP. */
    sipTrunkCidrs: z.array(cidr).default([]),
    /**
     * Which PBX runs on the pair: what the sync, the NAS and a switch replicate and regenerate
     * (components/pbx-replicated-set.ts, issue 16). Defaults to freepbx (what the installer and
     * the AMI carry).
     */
    flavour: z.enum(PBX_FLAVOURS).default("freepbx"),
    /**
     * FreePBX only: its configuration database on the MySQL pair (both servers read one
     * replicated copy) or local (dumped and shipped with the sync). Defaults to mysql-pair.
     */
    configDatabase: z.enum(PBX_CONFIG_DATABASES).optional(),
    /** Minutes between syncs of the replicated set to the other PBX (PBX RPO). Defaults to 15. */
    syncIntervalMinutes: z.number().int().min(1).max(1440).default(15),
    /**
     * FreePBX installer fetched at first boot when the AMI has no Asterisk (Debian ships none),
     * run only if its sha256 matches. Defaults to none: the pinned AMI must carry FreePBX.
     */
    installer: z
      .object({
        url: z.string().regex(/^https:\/\/\S+$/, { message: "an https:// URL" }),
        sha256: z.string().regex(/^[0-9a-f]{64}$/, { message: "a lowercase hex sha256" }),
      })
      .strict()
      .optional(),
  })
  .strict();

const retentionDays = z.number().int().min(1).max(3650);
const nas = z
  .object({
    ...pairFields,
    /** Host label of the NAS endpoint (nas.<domain>). Defaults to nas. */
    hostname: hostLabel.default("nas"),
    /** Labels of the per-server A records. Defaults to nas1 and nas2. */
    serverNames: z
      .object({ primary: hostLabel, standby: hostLabel })
      .strict()
      .default({ primary: "nas1", standby: "nas2" }),
    /** Retention in days per backup job. */
    retentionDays: z
      .object({
        mail: retentionDays.default(14),
        mysql: retentionDays.default(30),
        pbx: retentionDays.default(30),
      })
      .strict()
      .default({ mail: 14, mysql: 30, pbx: 30 }),
    /** Hours between backups per job. Defaults to mail 24, mysql 6, pbx 24. */
    intervalHours: z
      .object({
        mail: z.number().int().min(1).max(168).default(24),
        mysql: z.number().int().min(1).max(168).default(6),
        pbx: z.number().int().min(1).max(168).default(24),
      })
      .strict()
      .default({ mail: 24, mysql: 6, pbx: 24 }),
    /** AWS Backup plan for every server's data volume. */
    awsBackup: z
      .object({
        /** Days each recovery point is kept; also the vault lock's minimum (issue 13). Defaults to 35. */
        retentionDays: z
          .number()
          .int()
          .min(7, { message: "at least 7 days (the vault lock's minimum retention)" })
          .max(3650)
          .default(35),
        schedule: z.string().min(1).default("cron(0 19 * * ? *)"),
        /** A second region every recovery point is copied to (own vault and key). Defaults to none. */
        copyToRegion: z
          .string()
          .regex(/^[a-z]{2}(-[a-z]+)+-\d$/, { message: "an AWS region such as ap-southeast-1" })
          .optional(),
      })
      .strict()
      .default({ retentionDays: 35, schedule: "cron(0 19 * * ? *)" }),
  })
  .strict();

const zone = z
  .object({
    id: z
      .string()
      .regex(/^Z[A-Z0-9]{4,32}$/, { message: "a Route 53 zone id such as Z0123456789ABC" })
      .optional(),
    name: z.string().regex(DOMAIN, { message: "a DNS zone name" }).optional(),
    /** Create the zone instead of looking it up. Defaults to false. */
    create: z.boolean().default(false),
  })
  .strict()
  .refine(
    (v) => Number(v.id !== undefined) + Number(v.name !== undefined) + Number(v.create) === 1,
    {
      message: "exactly one of id, name or create: true",
    },
  );

const network = z.union([
  z
    .object({
      vpcId: z
        .string()
        .regex(/^vpc-[0-9a-f]{8,17}$/, { message: "a VPC id such as vpc-0123456789abcdef0" }),
      subnets: z
        .array(
          z
            .object({
              id: z.string().regex(/^subnet-[0-9a-f]{8,17}$/, { message: "a subnet id" }),
              az,
            })
            .strict(),
        )
        .min(2, { message: "at least two subnets in two AZs" }),
    })
    .strict(),
  z
    .object({
      /** No subnets: the stack makes a VPC with one public subnet per AZ. */
      /** RFC 1918, /16–/23: one /24 subnet per AZ is carved from it. Defaults to 10.20.0.0/16. */
      vpcCidr: cidr.default("10.20.0.0/16"),
      azs: z.array(az).min(2, { message: "at least two AZs" }),
    })
    .strict(),
]);

const contact = z
  .object({
    name: z.string().min(1),
    role: z.string().min(1),
    phone: z.string().min(1).optional(),
    email: email.optional(),
  })
  .strict();

export const stackConfigSchema = z
  .object({
    region: z
      .string()
      .regex(/^[a-z]{2}(-[a-z]+)+-\d$/, { message: "an AWS region such as ap-southeast-3" }),
    domain: z.string().regex(DOMAIN, { message: "a mail domain such as example.co.id" }),
    zone,
    network,
    adminCidrs: z.array(cidr).min(1, { message: "at least one admin CIDR" }),
    officeCidrs: z.array(cidr).default([]),
    /** Per CIDR list, the reason it may be wider than a /16 (up to a /8). Defaults to none. */
    allowWideCidrs,
    ami,
    keyName: z.string().min(1).optional(),
    sshUser: z.string().min(1).default("admin"),
    /** Secret; used by remote role-change commands. */
    sshPrivateKey: z.string().min(1).optional(),
    /**
     * Parent of every service's SSM prefix (`<ssmRoot>/<service>`). Stacks made before issue 10
     * set `/hastack` to keep their parameters (a rename would replace them, README: Security).
     * Defaults to /hastack/<stack>.
     */
    ssmRoot: z
      .string()
      .regex(SSM_ROOT, {
        message: 'an SSM path "/hastack" (stacks made before issue 10) or "/hastack/<name>"',
      })
      .optional(),
    alerts: z
      .object({ emails: z.array(email).default([]) })
      .strict()
      .default({ emails: [] }),
    contacts: z.array(contact).default([]),
    mail,
    pbx,
    mysql,
    nas,
  })
  .strict();

export type StackConfig = z.infer<typeof stackConfigSchema>;
export type MailConfig = StackConfig["mail"];
export type MysqlConfig = StackConfig["mysql"];
export type PbxConfig = StackConfig["pbx"];
export type NasConfig = StackConfig["nas"];
export type PairConfig = Pick<MailConfig, keyof typeof pairFields>;

/** One config problem: the full key (`hastack:mail.active`) and what was expected. */
export interface ConfigProblem {
  key: string;
  message: string;
}

/** At most this many problems are printed; the rest are counted ("… and 64,980 more"). */
export const MAX_REPORTED_PROBLEMS = 20;

/** `hastack:mail.active must be …`; a message starting with ":" follows the key directly. */
export function formatProblem(p: ConfigProblem): string {
  return p.message.startsWith(":") ? `${p.key}${p.message}` : `${p.key} ${p.message}`;
}

/**
 * Thrown with every problem found; its message lists them one per line — the first
 * MAX_REPORTED_PROBLEMS of them, then how many more (a file of 65,000 typos is one mistake, not
 * 65,000 lines to read). `problems` keeps them all.
 */
export class ConfigError extends Error {
  constructor(public readonly problems: ConfigProblem[]) {
    const shown = problems.slice(0, MAX_REPORTED_PROBLEMS).map((p) => `  - ${formatProblem(p)}`);
    const more = problems.length - shown.length;
    super(
      "invalid stack configuration:\n" +
        shown.join("\n") +
        (more > 0 ? `\n  … and ${more} more problem${more === 1 ? "" : "s"}` : ""),
    );
    this.name = "ConfigError";
  }
}

/** How parseStackConfig learns what the stack file cannot show in the values. */
export interface ParseOptions {
  /**
   * Whether a full key (`hastack:sshPrivateKey`) was stored as a secret (`secure:` in the stack
   * file). Defaults to not checking.
   */
  isSecret?: (fullKey: string) => boolean;
}

/**
 * Validates raw config (the values of `hastack:*` keys already JSON-parsed, plus `region` from
 * `aws:region`) and returns it typed with defaults applied, or throws ConfigError listing every
 * problem. Cross-field rules (distinct AZs, AZs that have a subnet, migration needs an old
 * server) are checked here too.
 */
export function parseStackConfig(
  raw: Record<string, unknown>,
  opts: ParseOptions = {},
): StackConfig {
  const result = stackConfigSchema.safeParse(raw);
  const problems = result.success
    ? []
    : dedupe(result.error.issues.map((issue) => describeIssue(issue, raw)));
  // Cross-field rules run on the raw values too, so one pass reports every problem.
  problems.push(...crossFieldProblems(raw), ...cidrProblems(raw));
  problems.push(...plainTextSecretProblems(raw, opts));
  if (problems.length > 0 || !result.success) {
    throw new ConfigError(problems);
  }
  return result.data;
}

/** A secret written in plain text into the stack file, which goes into git. */
function plainTextSecretProblems(
  raw: Record<string, unknown>,
  opts: ParseOptions,
): ConfigProblem[] {
  if (!opts.isSecret) {
    return [];
  }
  return SECRET_KEYS.filter((k) => raw[k] !== undefined && !opts.isSecret!(configKey([k]))).map(
    (k) => ({
      key: configKey([k]),
      message: `is in plain text in the stack file, which goes into git: remove it and set it with \`pulumi config set --secret ${configKey([k])} < FILE\``,
    }),
  );
}

/** Default host labels per service, as the schema applies them. */
const DEFAULT_LABELS: Record<
  string,
  { hostname: string; serverNames?: Record<(typeof Roles)[number], string> }
> = {
  mail: { hostname: "mail", serverNames: { primary: "mx1", standby: "mx2" } },
  pbx: { hostname: "pbx", serverNames: { primary: "pbx1", standby: "pbx2" } },
  mysql: { hostname: "db" },
  nas: { hostname: "nas", serverNames: { primary: "nas1", standby: "nas2" } },
};

/**
 * Every label the services publish in the zone, with the key that names it: two keys naming the
 * same label would declare clashing records (`pbx.hostname: mail` → two `mail.<domain>`).
 */
function labelClashProblems(raw: Record<string, unknown>): ConfigProblem[] {
  const owners = new Map<string, string[]>();
  const claim = (label: unknown, path: PropertyKey[]): void => {
    if (typeof label === "string" && label !== "") {
      const l = label.toLowerCase();
      owners.set(l, [...(owners.get(l) ?? []), configKey(path)]);
    }
  };
  for (const [service, defaults] of Object.entries(DEFAULT_LABELS)) {
    if (!isObject(raw[service])) {
      continue;
    }
    claim(valueAt(raw, [service, "hostname"]) ?? defaults.hostname, [service, "hostname"]);
    if (defaults.serverNames) {
      for (const side of Roles) {
        claim(valueAt(raw, [service, "serverNames", side]) ?? defaults.serverNames[side], [
          service,
          "serverNames",
          side,
        ]);
      }
    }
  }
  const problems: ConfigProblem[] = [];
  const domain = typeof raw.domain === "string" ? raw.domain : "<domain>";
  for (const [label, keys] of owners) {
    if (keys.length > 1) {
      problems.push({
        key: keys[1],
        message: `clashes with ${[keys[0], ...keys.slice(2)].join(", ")}: both name ${label}.${domain}; every service and server needs its own host name`,
      });
    }
  }
  return problems;
}

/** The zone must hold the domain's records: the domain itself or a parent of it. */
function zoneProblems(raw: Record<string, unknown>): ConfigProblem[] {
  const zoneName = valueAt(raw, ["zone", "name"]);
  const domain = raw.domain;
  if (typeof zoneName !== "string" || typeof domain !== "string") {
    return [];
  }
  const z = zoneName.toLowerCase().replace(/\.$/, "");
  const d = domain.toLowerCase();
  if (d === z || d.endsWith(`.${z}`)) {
    return [];
  }
  return [
    {
      key: configKey(["zone", "name"]),
      message: `must be the zone that holds hastack:domain (${JSON.stringify(domain)}) — the domain itself or a parent of it — got ${JSON.stringify(zoneName)}: every record would be outside the zone`,
    },
  ];
}

/** The stack cuts one /24 per AZ out of vpcCidr (components/network.ts subnetCidr). */
function vpcSizeProblems(raw: Record<string, unknown>): ConfigProblem[] {
  const vpcCidr = valueAt(raw, ["network", "vpcCidr"]);
  const azs = valueAt(raw, ["network", "azs"]);
  const bits = typeof vpcCidr === "string" ? /^[^/]+\/(\d{1,2})$/.exec(vpcCidr)?.[1] : undefined;
  if (bits === undefined || !Array.isArray(azs)) {
    return []; // the schema reports a malformed CIDR or missing AZs
  }
  const subnets = Math.max(azs.length, 2);
  const needed = 24 - Math.ceil(Math.log2(subnets));
  if (Number(bits) <= needed) {
    return [];
  }
  return [
    {
      key: configKey(["network", "vpcCidr"]),
      message: `must be a /${needed} or larger: the stack makes one /24 subnet per AZ (${azs.length} AZs), got ${JSON.stringify(vpcCidr)}`,
    },
  ];
}

/** configDatabase is FreePBX's choice: Elastix keeps its database local, plain Asterisk has none. */
function pbxConfigDatabaseProblems(raw: Record<string, unknown>): ConfigProblem[] {
  const flavour = valueAt(raw, ["pbx", "flavour"]) ?? "freepbx";
  const configDatabase = valueAt(raw, ["pbx", "configDatabase"]);
  if (
    configDatabase === undefined ||
    flavour === "freepbx" ||
    !(PBX_FLAVOURS as readonly unknown[]).includes(flavour)
  ) {
    return [];
  }
  return [
    {
      key: configKey(["pbx", "configDatabase"]),
      message: `applies only to flavour "freepbx" (Elastix keeps its database local, plain Asterisk has none): remove it, got ${JSON.stringify(configDatabase)} with flavour ${JSON.stringify(flavour)}`,
    },
  ];
}

function rtpPortProblems(raw: Record<string, unknown>): ConfigProblem[] {
  const from = valueAt(raw, ["pbx", "rtpPorts", "from"]);
  const to = valueAt(raw, ["pbx", "rtpPorts", "to"]);
  if (typeof from === "number" && typeof to === "number" && from > to) {
    return [
      {
        key: configKey(["pbx", "rtpPorts"]),
        message: `: from (${from}) must not exceed to (${to})`,
      },
    ];
  }
  return [];
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function crossFieldProblems(raw: Record<string, unknown>): ConfigProblem[] {
  const problems: ConfigProblem[] = [
    ...labelClashProblems(raw),
    ...zoneProblems(raw),
    ...vpcSizeProblems(raw),
    ...rtpPortProblems(raw),
    ...pbxConfigDatabaseProblems(raw),
  ];
  const network = valueAt(raw, ["network"]);
  const subnets = valueAt(network, ["subnets"]);
  const subnetAzs = (
    Array.isArray(subnets) ? subnets.map((s) => valueAt(s, ["az"])) : valueAt(network, ["azs"])
  ) as unknown[];
  if (!Array.isArray(subnetAzs) || subnetAzs.length < 2) {
    return problems; // the schema already reports the network
  }
  for (const service of ["mail", "pbx", "mysql", "nas"] as const) {
    const azs = {
      primary: valueAt(raw, [service, "azs", "primary"]) ?? subnetAzs[0],
      standby: valueAt(raw, [service, "azs", "standby"]) ?? subnetAzs[1],
    };
    if (azs.primary === azs.standby) {
      problems.push({
        key: configKey([service, "azs", "standby"]),
        message: `must differ from ${configKey([service, "azs", "primary"])} (both ${show(azs.primary)}): primary and standby must not share an availability zone`,
      });
    }
    for (const side of Roles) {
      if (!subnetAzs.includes(azs[side])) {
        problems.push({
          key: configKey([service, "azs", side]),
          message: `must be one of the network's AZs (${subnetAzs.join(", ")}), got ${show(azs[side])}`,
        });
      }
    }
  }
  const phase = valueAt(raw, ["mail", "migration", "phase"]);
  const oldServer = valueAt(raw, ["mail", "migration", "oldServer"]);
  if (typeof phase === "number" && phase > 0 && oldServer === undefined) {
    problems.push({
      key: configKey(["mail", "migration", "oldServer"]),
      message: `is required when ${configKey(["mail", "migration", "phase"])} is ${phase} (the server being replaced: hostname, ip, mxPreference)`,
    });
  }
  if ((phase === undefined || phase === 0) && oldServer !== undefined) {
    // Issue 18: phase 0 would publish the new servers as the only MX before step 2.
    problems.push({
      key: configKey(["mail", "migration", "phase"]),
      message: PHASE_ZERO_WITH_OLD_SERVER.replace(/^hastack:mail\.migration\.phase /, ""),
    });
  }
  const pref = valueAt(oldServer, ["mxPreference"]) ?? 0;
  const raised = valueAt(oldServer, ["raisedPreference"]) ?? 10;
  const raisedProblem =
    typeof pref === "number" && typeof raised === "number"
      ? checkRaisedPreference(pref, raised)
      : undefined;
  if (oldServer !== undefined && raisedProblem) {
    problems.push({
      key: configKey(["mail", "migration", "oldServer", "raisedPreference"]),
      message: raisedProblem,
    });
  }
  return problems;
}

/**
 * The floor on how much address space each CIDR list opens, and the VPC CIDR's range. Runs on
 * the raw values (entries the schema refuses are skipped: it reports them).
 */
export function cidrProblems(raw: Record<string, unknown>): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  const hatch = valueAt(raw, ["allowWideCidrs"]);
  for (const listKey of CIDR_LIST_KEYS) {
    const path = listKey.split(".");
    const list = valueAt(raw, path);
    if (!Array.isArray(list)) {
      continue;
    }
    const reason = valueAt(hatch, [listKey]);
    const wide = typeof reason === "string" && reason.length > 0;
    const limit = wide ? WIDE_CIDR_CEILING : CIDR_FLOOR;
    const lift = wide
      ? `even with ${configKey(["allowWideCidrs", listKey])} no entry may be wider than /${limit.prefix}`
      : `to allow wider, set ${configKey(["allowWideCidrs", listKey])} to the reason (at most /${WIDE_CIDR_CEILING.prefix})`;
    const parsed: Cidr[] = [];
    list.forEach((entry, i) => {
      const r = typeof entry === "string" ? parseCidr(entry) : undefined;
      if (!r?.ok) {
        return;
      }
      parsed.push(r.cidr);
      if (r.cidr.prefix < limit.prefix) {
        problems.push({
          key: configKey([...path, i]),
          message: `must be /${limit.prefix} or narrower, got ${show(entry)} (${r.cidr.prefix === 0 ? "every IPv4 address" : describeCount(r.cidr.size)}); ${lift}`,
        });
      }
    });
    const total = addressCount(parsed);
    if (parsed.every((c) => c.prefix >= limit.prefix) && total > limit.addresses) {
      problems.push({
        key: configKey(path),
        message: `must open at most ${describeCount(limit.addresses)} in total, got ${total} addresses from ${parsed.length} entries; ${lift}`,
      });
    }
  }
  const vpcCidr = valueAt(raw, ["network", "vpcCidr"]);
  const vpc = typeof vpcCidr === "string" ? parseCidr(vpcCidr) : undefined;
  if (vpc?.ok) {
    const privateRanges = PRIVATE_RANGES.map((t) => parseCidr(t)).flatMap((r) =>
      r.ok ? [r.cidr] : [],
    );
    const inPrivate = coveredBy(vpc.cidr, privateRanges);
    if (vpc.cidr.prefix < 16 || vpc.cidr.prefix > 23 || !inPrivate) {
      problems.push({
        key: configKey(["network", "vpcCidr"]),
        message: `must be a private range (${PRIVATE_RANGES.join(", ")}) from /16 to /23 (one /24 subnet per AZ), got ${show(vpcCidr)}`,
      });
    }
  }
  return problems;
}

/** `hastack:mail.active`, or `aws:region` for the region. */
export function configKey(path: ReadonlyArray<PropertyKey>): string {
  if (path[0] === "region") {
    return "aws:region";
  }
  let key = `${NAMESPACE}:${String(path[0])}`;
  for (const part of path.slice(1)) {
    key += typeof part === "number" ? `[${part}]` : `.${String(part)}`;
  }
  return key;
}

function valueAt(raw: unknown, path: ReadonlyArray<PropertyKey>): unknown {
  let v: unknown = raw;
  for (const p of path) {
    if (v === null || typeof v !== "object") {
      return undefined;
    }
    v = (v as Record<PropertyKey, unknown>)[p];
  }
  return v;
}

function show(v: unknown): string {
  if (v === undefined) {
    return "nothing";
  }
  return JSON.stringify(v);
}

function describeIssue(issue: z.core.$ZodIssue, raw: unknown): ConfigProblem {
  const path = issue.path as PropertyKey[];
  const key = configKey(path);
  const value = valueAt(raw, path);
  // A secret's value never appears in an error message.
  const got =
    value !== undefined && (SECRET_KEYS as readonly PropertyKey[]).includes(path[0])
      ? "[secret]"
      : value;
  switch (issue.code) {
    case "invalid_value": {
      const options = issue.values.map((v) => JSON.stringify(v));
      const expected =
        options.length === 2 ? `${options[0]} or ${options[1]}` : `one of ${options.join(", ")}`;
      return got === undefined
        ? { key, message: `is required (${expected})` }
        : { key, message: `must be ${expected}, got ${show(got)}` };
    }
    case "invalid_type":
      if (got === undefined) {
        return { key, message: `is required (${issue.expected})` };
      }
      return { key, message: `must be ${article(issue.expected)}, got ${show(got)}` };
    case "unrecognized_keys":
      return {
        key,
        message: `has unknown key(s) ${issue.keys.map((k) => JSON.stringify(k)).join(", ")} (typo?)`,
      };
    case "too_small":
    case "too_big":
      return { key, message: `${rangeMessage(issue)}, got ${show(got)}` };
    case "invalid_union":
      return {
        key,
        message: `must be either {vpcId, subnets: [{id, az}, …]} (existing VPC) or {vpcCidr, azs: […]} (the stack creates the VPC), got ${show(got)}`,
      };
    default:
      return { key, message: `must be ${issue.message}, got ${show(got)}` };
  }
}

function rangeMessage(issue: z.core.$ZodIssueTooSmall | z.core.$ZodIssueTooBig): string {
  if (issue.message && !issue.message.startsWith("Too ")) {
    return `needs ${issue.message}`;
  }
  const bound = "minimum" in issue ? issue.minimum : issue.maximum;
  const what = issue.origin === "array" ? "items" : issue.origin === "string" ? "characters" : "";
  const rel = issue.code === "too_small" ? "at least" : "at most";
  return `must be ${rel} ${String(bound)}${what ? " " + what : ""}`;
}

function article(t: string): string {
  return /^[aeiou]/.test(t) ? `an ${t}` : `a ${t}`;
}

function dedupe(problems: ConfigProblem[]): ConfigProblem[] {
  const seen = new Set<string>();
  return problems.filter((p) => {
    const k = `${p.key} ${p.message}`;
    if (seen.has(k)) {
      return false;
    }
    seen.add(k);
    return true;
  });
}
