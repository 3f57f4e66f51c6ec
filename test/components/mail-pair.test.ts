// MailPair under the SDK mocks: what it declares, read like policies — the ports, one MX record
// set, SPF for both servers, secrets kept secret, the users parameter owned by the operator —
// and, for every migration phase transition 0→1 … 8→9 (and 9→0), that the diff touches only
// what that step needs and never a server, a volume or a security group.
import { expect } from "chai";
import { userDataOf } from "../support/deployment-queries";
import * as pulumi from "@pulumi/pulumi";
import { checkDkimRotation, DkimState, dkimState, MailPairArgs } from "../../components/mail";
import { diffDeployments, SynthResource } from "../../lib/synth/offline-synth";
import { MAIL_DOMAIN, mailConfig, MailSynth, synthMailPair } from "../support/mail-synth";

const DOMAIN = MAIL_DOMAIN;
const ADMIN = ["203.0.113.10/32", "198.51.100.64/29"];
const OLD = {
  hostname: `mail.${DOMAIN}`,
  ip: "203.0.113.25",
  mxPreference: 0,
  raisedPreference: 10,
};
const RECORD = "aws:route53/record:Record";
const COMMAND = "command:remote:Command";
const INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule";
/** What a migration step may never touch: servers, disks, addresses, firewalls, identities. */
const NEVER_TOUCHED = [
  "aws:ec2/instance:Instance",
  "aws:ebs/volume:Volume",
  "aws:ec2/volumeAttachment:VolumeAttachment",
  "aws:ec2/eip:Eip",
  "aws:ec2/securityGroup:SecurityGroup",
  INGRESS,
  "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule",
  "aws:iam/role:Role",
  "aws:iam/instanceProfile:InstanceProfile",
  "aws:route53/healthCheck:HealthCheck",
];

type Synth = MailSynth;

const synth = (cfg: Record<string, unknown> = {}, over: Partial<MailPairArgs> = {}) =>
  synthMailPair(cfg, { args: over, adminCidrs: ADMIN });

/** Phase 0 is "no migration" (an old server is refused there, issue 18); 1–9 move from OLD. */
function migrating(phase: number): Record<string, unknown> {
  return { migration: phase === 0 ? { phase } : { phase, oldServer: OLD } };
}

const resources = (s: Synth, type?: string): SynthResource[] =>
  s.d.deployment.resources.filter((r) => type === undefined || r.type === type);
const record = (s: Synth, name: string, type: string): SynthResource | undefined =>
  resources(s, RECORD).find((r) => r.inputs.name === name && r.inputs.type === type);
const byName = (s: Synth, name: string): SynthResource | undefined =>
  s.d.deployment.resources.find((r) => r.name === name);

/**
 * A DNS TXT value as the AWS provider sends it to Route 53 (the whole value inside one pair of
 * quotes, so `""` separates character-strings), parsed back into the strings receivers join.
 */
function txtStrings(route53Value: string): string[] {
  const strings: string[] = [];
  for (const m of `"${route53Value}"`.matchAll(/"((?:[^"\\]|\\.)*)"/g)) {
    strings.push(m[1]);
  }
  expect(strings.join(""), "every byte inside a character-string").to.have.length(
    route53Value.replace(/""/g, "").length,
  );
  for (const s of strings) {
    expect(s.length, "a DNS character-string holds at most 255 bytes").to.be.at.most(255);
  }
  return strings;
}

/**
 * RFC 6376 3.2 tag-list (DKIM and DMARC records): `tag=value` separated by `;`, whitespace
 * around both ignored, an optional trailing `;`. Throws on a malformed or duplicated tag.
 */
function parseTagList(text: string): Map<string, string> {
  const tags = new Map<string, string>();
  const specs = text.split(";");
  if (specs[specs.length - 1].trim() === "") {
    specs.pop();
  }
  for (const spec of specs) {
    const eq = spec.indexOf("=");
    if (eq < 0) {
      throw new Error(`tag-spec without "=": ${JSON.stringify(spec)}`);
    }
    const name = spec.slice(0, eq).trim();
    const value = spec.slice(eq + 1).trim();
    if (!/^[A-Za-z][A-Za-z0-9_]*$/.test(name)) {
      throw new Error(`bad tag name ${JSON.stringify(name)}`);
    }
    if (tags.has(name)) {
      throw new Error(`duplicate tag ${name}`);
    }
    tags.set(name, value);
  }
  return tags;
}

/** SPF (RFC 7208): `v=spf1` then mechanisms; returns the ip4 addresses and the `all` qualifier. */
function parseSpf(text: string): { ip4: string[]; all: string } {
  const [version, ...terms] = text.split(/ +/);
  expect(version).to.equal("v=spf1");
  const ip4: string[] = [];
  let all = "";
  for (const term of terms) {
    const m = /^([+?~-]?)(ip4:|all$)(.*)$/.exec(term);
    if (!m) {
      throw new Error(`unexpected SPF term ${term}`);
    }
    if (m[2] === "all") {
      all = m[1] || "+";
    } else {
      const octets = m[3].split(".").map(Number);
      expect(octets.length === 4 && octets.every((o) => o >= 0 && o <= 255), term).to.equal(true);
      ip4.push(m[3]);
    }
  }
  expect(terms[terms.length - 1], "all comes last").to.match(/all$/);
  return { ip4, all };
}

/** The SPF, DKIM and DMARC records of one synth, each parsed; fails when one is missing. */
function senderAuthentication(s: Synth, selector = "hastack1") {
  const value = (name: string): string => {
    const r = resources(s, RECORD).find((x) => x.inputs.name === name && x.inputs.type === "TXT");
    expect(r, `TXT ${name}`).to.not.equal(undefined);
    const records = r!.inputs.records as string[];
    expect(records, `TXT ${name}: one value`).to.have.length(1);
    return txtStrings(records[0]).join("");
  };
  const dkim = parseTagList(value(`${selector}._domainkey.${DOMAIN}`));
  const dmarc = parseTagList(value(`_dmarc.${DOMAIN}`));
  return { spf: parseSpf(value(DOMAIN)), dkim, dmarc };
}

function expectWellFormed(auth: ReturnType<typeof senderAuthentication>): void {
  expect(auth.dkim.get("v")).to.equal("DKIM1");
  expect(auth.dkim.get("k")).to.equal("rsa");
  expect(auth.dkim.get("p")).to.match(/^[A-Za-z0-9+/]{40,}=*$/);
  expect([...auth.dmarc.keys()][0], "v is DMARC's first tag").to.equal("v");
  expect(auth.dmarc.get("v")).to.equal("DMARC1");
  expect(["none", "quarantine", "reject"]).to.include(auth.dmarc.get("p"));
  expect(auth.dmarc.get("rua")).to.match(/^mailto:[^@\s]+@[^@\s]+$/);
  expect(auth.spf.ip4.length).to.be.at.least(2);
  expect(auth.spf.all).to.equal("~");
}

describe("MailPair under mocks", function () {
  this.timeout(180_000);
  let base: Synth;
  before(async () => {
    base = await synth();
  });

  describe("composition", () => {
    it("is a hastack:mail:MailPair holding one ServerPair of two servers", () => {
      const component = resources(base, "hastack:mail:MailPair");
      expect(component.map((r) => r.name)).to.deep.equal(["mail"]);
      const pair = resources(base, "hastack:server:ServerPair");
      expect(pair.map((r) => r.name)).to.deep.equal(["mail-pair"]);
      expect(pair[0].parent).to.equal(component[0].urn);
      expect(
        resources(base, "aws:ec2/instance:Instance")
          .map((r) => r.name)
          .sort(),
      ).to.deep.equal(["mail-pair-primary", "mail-pair-standby"]);
    });

    it("both servers get the same host name; their user-data differ only by role", () => {
      const [p, s] = ["mail-pair-primary", "mail-pair-standby"].map((n) =>
        userDataOf(byName(base, n)!),
      );
      for (const ud of [p, s]) {
        expect(ud).to.contain(`fqdn: mail.${DOMAIN}`);
        expect(ud).to.contain(`myhostname = mail.${DOMAIN}`);
      }
      // Lines only one side has: the peer it syncs with, and which side starts the sync timer
      // (user-data carries no comment lines: components/mail.ts withoutComments).
      const only = (a: string, b: string) => {
        const other = new Set(b.split("\n"));
        return a.split("\n").filter((l) => !other.has(l));
      };
      expect(only(p, s).map((l) => l.trim())).to.have.members([
        "PEER_ROLE=standby",
        "ROLE=primary",
        "systemctl enable --now hastack-mail-sync.timer",
        // Its own host key and its peer's known_hosts line (ServerPair, issue 13).
        "- /hastack/mail/ssh-host-key/primary",
        "- /hastack/mail/ssh-known-hosts/primary",
      ]);
      expect(only(s, p).map((l) => l.trim())).to.have.members([
        "PEER_ROLE=primary",
        "ROLE=standby",
        "- /hastack/mail/ssh-host-key/standby",
        "- /hastack/mail/ssh-known-hosts/standby",
      ]);
    });
  });

  describe("ports: mail to the world, admin only from admin CIDRs, dsync only from the peer", () => {
    const rules = (s: Synth) => resources(s, INGRESS).map((r) => r.inputs);
    it("25, 587, 465, 993 are open to everyone; 995 only when pop3 is on", async () => {
      const open = rules(base)
        .filter((r) => r.cidrIpv4 === "0.0.0.0/0")
        .map((r) => r.fromPort)
        .sort((a, b) => Number(a) - Number(b));
      expect(open).to.deep.equal([25, 465, 587, 993]);
      const withPop = await synth({ pop3: true });
      expect(rules(withPop).some((r) => r.fromPort === 995 && r.cidrIpv4 === "0.0.0.0/0")).to.equal(
        true,
      );
    });
    it("no admin or peer port is open to 0.0.0.0/0", () => {
      for (const r of rules(base)) {
        if (![25, 465, 587, 993, 995].includes(Number(r.fromPort))) {
          expect(r.cidrIpv4, `port ${r.fromPort}`).to.not.equal("0.0.0.0/0");
        }
      }
      const ssh = rules(base).filter((r) => r.fromPort === 22 && r.cidrIpv4);
      expect(ssh.map((r) => r.cidrIpv4).sort()).to.deep.equal([...ADMIN].sort());
      const dsync = rules(base).filter((r) => r.fromPort === 12345);
      expect(dsync).to.have.length(1);
      expect(dsync[0].cidrIpv4).to.equal(undefined);
      expect(dsync[0].referencedSecurityGroupId).to.be.a("string");
    });
  });

  describe("backups: the NAS may pull the Maildirs over SSH, read-only (issue 11)", () => {
    const NAS_SG = "sg-0nas000000000000";
    const rules = (s: Synth) => resources(s, INGRESS).map((r) => r.inputs);

    it("compliant: with the NAS's security group, port 22 admits it (and only it, besides admins and the peer)", async () => {
      const withNas = await synth({}, { backupClientSecurityGroupIds: [NAS_SG] });
      const ssh = rules(withNas).filter((r) => r.fromPort === 22);
      const fromNas = ssh.filter((r) => r.referencedSecurityGroupId === NAS_SG);
      expect(fromNas).to.have.length(1);
      expect(fromNas[0]).to.include({ ipProtocol: "tcp", toPort: 22 });
      expect(fromNas[0].cidrIpv4).to.equal(undefined);
      expect(
        ssh
          .filter((r) => r.cidrIpv4)
          .map((r) => r.cidrIpv4)
          .sort(),
      ).to.deep.equal([...ADMIN].sort());
      // Every other port still refuses the NAS.
      expect(
        rules(withNas).filter((r) => r.referencedSecurityGroupId === NAS_SG && r.fromPort !== 22),
      ).to.deep.equal([]);
    });

    it("non-compliant: without it, no security group but the peer's reaches port 22", () => {
      const ssh = rules(base).filter((r) => r.fromPort === 22 && !r.cidrIpv4);
      expect(ssh).to.have.length(1);
      expect(ssh[0].description).to.match(/^peer:/);
    });

    it("each server's user-data installs the NAS key from SSM, forced through rrsync -ro under the mail root", () => {
      for (const n of ["mail-pair-primary", "mail-pair-standby"]) {
        const ud = userDataOf(byName(base, n)!);
        expect(ud, n).to.contain("param nas-backup-ssh-public-key");
        expect(ud, n).to.contain("NAS_READ_ROOT=/srv/data/mail");
        expect(ud, n).to.contain("SSH_DIR=/root/.ssh");
        expect(ud, n).to.contain(
          `printf 'command="/usr/bin/rrsync -ro -absolute %s",restrict %s %s hastack-mail-nas-backup\\n'`,
        );
        // rrsync comes with rsync, which the pulls run on this side too.
        expect(ud, n).to.match(/^ {2}- rsync$/m);
      }
    });
  });

  describe("sender authentication: SPF, DKIM and DMARC (issue 17)", () => {
    it("the selector's key is generated by the stack, kept secret in SSM and published in DNS", () => {
      const key = resources(base, "tls:index/privateKey:PrivateKey").find(
        (r) => r.name === "mail-dkim-hastack1",
      );
      expect(key!.inputs).to.include({ algorithm: "RSA", rsaBits: 2048 });
      const param = resources(base, "aws:ssm/parameter:Parameter").find(
        (r) => r.name === "mail-dkim-hastack1",
      )!;
      expect(param.type).to.equal("aws:ssm/parameter:Parameter");
      expect(param.inputs.name).to.equal("/hastack/mail/dkim/hastack1");
      expect(param.inputs.type).to.equal("SecureString");
      const auth = senderAuthentication(base);
      expectWellFormed(auth);
    });

    it("DMARC: p=none with reports to postmaster by default; the owner's policy and address when set", async () => {
      expect(senderAuthentication(base).dmarc.get("p")).to.equal("none");
      expect(senderAuthentication(base).dmarc.get("rua")).to.equal(`mailto:postmaster@${DOMAIN}`);
      const strict = await synth({ dmarc: { policy: "reject", reportEmail: `dmarc@${DOMAIN}` } });
      const dmarc = senderAuthentication(strict).dmarc;
      expect(dmarc.get("p")).to.equal("reject");
      expect(dmarc.get("rua")).to.equal(`mailto:dmarc@${DOMAIN}`);
    });

    it("another selector is another key, parameter and record", async () => {
      const other = await synth({ dkim: { selector: "hastack2" } });
      expect(
        resources(other, "aws:ssm/parameter:Parameter").find(
          (r) => r.name === "mail-dkim-hastack2",
        )!.inputs.name,
      ).to.equal("/hastack/mail/dkim/hastack2");
      expectWellFormed(senderAuthentication(other, "hastack2"));
      expect(record(other, `hastack1._domainkey.${DOMAIN}`, "TXT")).to.equal(undefined);
    });

    it("the parsers refuse what receivers would (so the checks above can fail)", () => {
      expect(() => parseTagList("v=DKIM1; k=rsa; k=rsa")).to.throw("duplicate tag k");
      expect(() => parseTagList("v=DMARC1; p")).to.throw('without "="');
      expect(() => parseSpf("v=spf1 ip4:1.2.3 ~all")).to.throw();
      expect(() => txtStrings("x".repeat(256))).to.throw("255");
    });
  });

  describe("DNS", () => {
    it("one MX record set for the domain, the active server preferred", () => {
      const mx = resources(base, RECORD).filter((r) => r.inputs.type === "MX");
      expect(mx).to.have.length(1);
      expect(mx[0].inputs.name).to.equal(DOMAIN);
      expect(mx[0].inputs.records).to.deep.equal([`10 mx1.${DOMAIN}`, `20 mx2.${DOMAIN}`]);
      expect(mx[0].inputs.ttl).to.equal(30); // the default switch TTL
    });

    it("after a failover the standby is the preferred MX", async () => {
      const flipped = await synth({ active: "standby" });
      expect(record(flipped, DOMAIN, "MX")!.inputs.records).to.deep.equal([
        `10 mx2.${DOMAIN}`,
        `20 mx1.${DOMAIN}`,
      ]);
    });

    it("an A record and a PTR per server; SPF authorises both servers' addresses", () => {
      const a1 = record(base, `mx1.${DOMAIN}`, "A")!;
      const a2 = record(base, `mx2.${DOMAIN}`, "A")!;
      expect(a1 && a2).to.not.equal(undefined);
      const spf = record(base, DOMAIN, "TXT")!;
      const value = (spf.inputs.records as string[])[0];
      expect(value).to.match(/^v=spf1 ip4:198\.51\.100\.\d+ ip4:198\.51\.100\.\d+ ~all$/);
      expect(value).to.contain(`ip4:${(a1.inputs.records as string[])[0]}`);
      expect(value).to.contain(`ip4:${(a2.inputs.records as string[])[0]}`);
      const ptrs = resources(base, "aws:ec2/eipDomainName:EipDomainName").map(
        (r) => r.inputs.domainName,
      );
      expect(ptrs.sort()).to.deep.equal([`mx1.${DOMAIN}`, `mx2.${DOMAIN}`]);
      const ops = base.outputs.operations as {
        reverseDns: Record<string, { ip: string; ptr: string }>;
      };
      expect(ops.reverseDns.primary).to.deep.equal({
        ip: (a1.inputs.records as string[])[0],
        ptr: `mx1.${DOMAIN}`,
      });
    });
  });

  describe("secrets stay secret; the operator owns the users", () => {
    it("the doveadm password is a secret SSM parameter the servers read", () => {
      const p = resources(base, "aws:ssm/parameter:Parameter").find(
        (r) => r.name === "mail-doveadm-password",
      )!;
      expect(p.inputs).to.include({
        name: "/hastack/mail/doveadm-password",
        type: "SecureString",
        value: "[secret]",
      });
    });

    it("the users parameter is created once and never reset by the stack", () => {
      const p = byName(base, "mail-users")!;
      expect(p.inputs).to.include({
        name: "/hastack/mail/users",
        type: "SecureString",
        tier: "Advanced",
      });
      expect(p.ignoreChanges).to.deep.equal(["value"]);
      expect(p.protect).to.equal(true);
      expect(p.retainOnDelete).to.equal(true);
    });

    it("no password appears in user-data or outputs", () => {
      const text =
        JSON.stringify(base.outputs) +
        ["mail-pair-primary", "mail-pair-standby"]
          .map((n) => userDataOf(byName(base, n)!))
          .join("");
      expect(text).not.to.match(/mock-?[0-9a-f]{24}/);
      expect(text).not.to.match(/doveadm_password = [A-Za-z0-9]/);
    });

    it("each server can find its peer: private addresses as SSM parameters", () => {
      expect(byName(base, "mail-primary-private-ip")!.inputs.name).to.equal(
        "/hastack/mail/private-ip/primary",
      );
      expect(byName(base, "mail-standby-private-ip")!.inputs.name).to.equal(
        "/hastack/mail/private-ip/standby",
      );
    });
  });

  describe("outputs", () => {
    it("mail's summary: RPO = sync interval, the migration phase, the probed ports", () => {
      const summary = base.outputs.summary as Record<string, unknown>;
      expect(summary).to.include({
        service: "mail",
        rpoSeconds: 300,
        migrationPhase: 0,
        syncIntervalMinutes: 5,
      });
      expect(summary.ports).to.deep.equal([
        { name: "smtp", port: 25, protocol: "tcp", probe: "smtp_banner" },
        { name: "submission", port: 587, protocol: "tcp", probe: "tcp" },
        { name: "smtps", port: 465, protocol: "tcp", probe: "tcp" },
        { name: "imaps", port: 993, protocol: "tcp", probe: "imaps" },
      ]);
    });

    it("the phase-4 checklist and the fallback command", () => {
      const ops = base.outputs.operations as {
        migration: { testChecklist: { server: string; check: string }[] };
        fallbackCommand: string;
      };
      expect(ops.migration.testChecklist.map((c) => c.check)).to.deep.equal([
        "SMTP banner",
        "IMAP login",
        "a delivery",
        "SMTP banner",
        "IMAP login",
        "a delivery",
      ]);
      expect(ops.fallbackCommand).to.equal(
        `ssh admin@mx1.${DOMAIN} sudo /usr/local/sbin/hastack-mail-fallback`,
      );
    });
  });

  describe("refuses what cannot be right", () => {
    it("a migration phase more than one step ahead of the last applied one", async () => {
      let err: unknown;
      await synth(migrating(5), { previousPhase: 2 }).catch((e) => (err = e));
      // A RunError: the CLI prints the message without a stack trace.
      expect(pulumi.RunError.isInstance(err as Error)).to.equal(true);
      expect(String(err)).to.contain(
        "hastack:mail.migration.phase cannot move from phase 2 to phase 5: that skips step 3 (mailboxes synced old → new) and step 4",
      );
    });

    it("the same, when the previous phase comes from the stack's state (an Output)", async () => {
      let err: unknown;
      await synth(migrating(5), { previousPhase: pulumi.output(3) }).catch((e) => (err = e));
      expect(String(err)).to.contain("skips step 4 (new server tested");
    });

    it("an old server whose host name is not the new servers' one", async () => {
      let err: unknown;
      await synth({
        migration: { phase: 1, oldServer: { ...OLD, hostname: `srv01.${DOMAIN}` } },
      }).catch((e) => (err = e));
      expect(String(err)).to.contain(
        "hastack:mail.migration.oldServer.hostname must be the new servers' host name",
      );
    });
  });

  describe("each migration phase is one reviewed step touching only what it needs", () => {
    const KEY = Buffer.from("not a real key").toString("base64");
    const phases = new Map<number, Synth>();
    before(async () => {
      for (let phase = 0; phase <= 9; phase++) {
        phases.set(phase, await synth(migrating(phase), { sshPrivateKey: KEY }));
      }
    });

    const OLD_A = `mx-old.${DOMAIN}`;
    // For each transition: the resources that change, as "name op".
    const expected: Record<string, string[]> = {
      // Clients stay on the old server (mail.<domain> PRIMARY → its IP) until step 6.
      "0→1": [
        "mail-mx update",
        "mail-old-mx create",
        "mail-spf update",
        "mail-pair-failover-primary update",
      ],
      "1→2": ["mail-import-users create"],
      "2→3": ["mail-initial-sync create"],
      "3→4": [],
      "4→5": ["mail-mx update"],
      "5→6": ["mail-mx update", "mail-pair-failover-primary update"],
      "6→7": ["mail-final-sync create"],
      // The old MX leaves while the old server still accepts mail; its A record and SPF stay.
      "7→8": ["mail-mx update"],
      // The retire check first; SPF waits for it, the A record goes at the end of the update.
      "8→9": ["mail-retire-old create", "mail-spf update", "mail-old-mx delete"],
      // oldServer removed: only the step commands go (mail's IMAPS egress is not per server).
      "9→0": [
        "mail-final-sync delete",
        "mail-import-users delete",
        "mail-initial-sync delete",
        "mail-retire-old delete",
      ],
    };
    it("SPF, DKIM and DMARC are present and well formed in every phase", () => {
      // Which phases SPF names the old server in is the phase table's (mail-migration.ts);
      // here: in no phase does a record go missing or malformed, and the signing selector
      // never changes with the phase (either server, old MX or new, signs the same way).
      const keys = new Set<string>();
      for (let phase = 0; phase <= 9; phase++) {
        const auth = senderAuthentication(phases.get(phase)!);
        expectWellFormed(auth);
        keys.add(auth.dkim.get("p")!);
      }
      expect(keys.size).to.equal(1);
    });

    for (const [transition, changes] of Object.entries(expected)) {
      it(`${transition}: ${changes.length ? changes.join(", ") : "no resource changes (the test is the operator's)"}`, () => {
        const [from, to] = transition.split("→").map(Number);
        const diff = diffDeployments(phases.get(from)!.d, phases.get(to)!.d);
        const names = diff.map((c) => `${c.urn.split("::").pop()} ${c.op}`).sort();
        expect(names).to.deep.equal([...changes].sort());
        for (const c of diff) {
          expect(NEVER_TOUCHED, `${transition} touches ${c.urn}`).not.to.include(c.type);
          expect([RECORD, COMMAND]).to.include(c.type);
          if (c.op === "update") {
            // The client record also drops (or regains) its health check: the old server is
            // not ours to probe.
            const keys = c.urn.endsWith("failover-primary")
              ? ["healthCheckId", "records"]
              : ["records"];
            expect(c.changedKeys, c.urn).to.deep.equal(keys);
          }
        }
      });
    }

    it("mail.<domain> sends clients to the old server until step 6, then to the active new server", () => {
      const primary = (p: number) => byName(phases.get(p)!, "mail-pair-failover-primary")!.inputs;
      for (const p of [1, 2, 3, 4, 5]) {
        expect(primary(p).records, `phase ${p}`).to.deep.equal([OLD.ip]);
        expect(primary(p).healthCheckId, `phase ${p}`).to.equal(undefined);
      }
      for (const p of [0, 6, 7, 8, 9]) {
        expect(primary(p).records, `phase ${p}`).to.not.deep.equal([OLD.ip]);
        expect(primary(p).healthCheckId, `phase ${p}`).to.equal("mail-pair-primary-hc-id");
      }
    });

    it("the MX record set per phase is exactly what the steps say", () => {
      const mx = (p: number) => record(phases.get(p)!, DOMAIN, "MX")!.inputs.records;
      expect(mx(1)).to.deep.equal([`0 ${OLD_A}`]);
      expect(mx(4)).to.deep.equal([`0 ${OLD_A}`]);
      expect(mx(5)).to.deep.equal([`10 ${OLD_A}`]);
      expect(mx(6)).to.deep.equal([`0 mx1.${DOMAIN}`, `5 mx2.${DOMAIN}`, `10 ${OLD_A}`]);
      expect(mx(8)).to.deep.equal([`10 mx1.${DOMAIN}`, `20 mx2.${DOMAIN}`]);
      expect(mx(9)).to.deep.equal(mx(0));
      expect(record(phases.get(1)!, OLD_A, "A")!.inputs.records).to.deep.equal([OLD.ip]);
      expect(record(phases.get(8)!, OLD_A, "A")!.inputs.records).to.deep.equal([OLD.ip]);
      expect(record(phases.get(9)!, OLD_A, "A")).to.equal(undefined);
    });

    it("step 9 drops the old server from SPF only after its retire check (a refusal leaves DNS)", () => {
      const spf = record(phases.get(9)!, DOMAIN, "TXT")!;
      const retire = byName(phases.get(9)!, "mail-retire-old")!;
      expect(spf.dependsOn).to.include(retire.urn);
      expect(retire.inputs.create).to.equal(
        "cloud-init status --wait >/dev/null 2>&1; sudo -n /usr/local/sbin/hastack-mail-migrate retire 203.0.113.25 hastack-migrate 993 25",
      );
      expect(JSON.stringify(spf.inputs.records)).to.not.contain(OLD.ip);
      expect(JSON.stringify(record(phases.get(8)!, DOMAIN, "TXT")!.inputs.records)).to.contain(
        `ip4:${OLD.ip}`,
      );
    });

    it("phase 0 with an old server is refused, telling to start at phase 1", async () => {
      let err: unknown;
      await synth({ migration: { phase: 0, oldServer: OLD } }).catch((e) => (err = e));
      expect(String(err)).to.contain(
        "hastack:mail.migration.phase is 0 (no migration: the new servers would be the domain's only MX) but hastack:mail.migration.oldServer is set",
      );
    });

    it("the step commands run the rendered scripts on the active server, after first boot", () => {
      const c = byName(phases.get(7)!, "mail-final-sync")!;
      expect(c.inputs.create).to.equal(
        "cloud-init status --wait >/dev/null 2>&1; sudo -n /usr/local/sbin/hastack-mail-migrate final 203.0.113.25 hastack-migrate 993",
      );
      // The connection carries the private key: the whole input is secret.
      expect(c.inputs.connection).to.equal("[secret]");
      expect(byName(phases.get(3)!, "mail-initial-sync")!.inputs.create).to.contain(
        "hastack-mail-migrate initial",
      );
      expect(byName(phases.get(2)!, "mail-import-users")!.inputs.create).to.contain(
        "hastack-mail-refresh --require-users",
      );
    });

    it("without an SSH key the steps are not declared; the outputs carry the commands", async () => {
      const s = await synth(migrating(3));
      expect(resources(s, COMMAND)).to.deep.equal([]);
      const ops = s.outputs.operations as { migration: { stepCommands: Record<string, string> } };
      expect(ops.migration.stepCommands).to.deep.equal({
        "import-users": "sudo /usr/local/sbin/hastack-mail-refresh --require-users",
        "initial-sync":
          "sudo /usr/local/sbin/hastack-mail-migrate initial 203.0.113.25 hastack-migrate 993",
      });
    });

    it("the phase is in the outputs for the next update's check", () => {
      expect((phases.get(6)!.outputs.summary as Record<string, unknown>).migrationPhase).to.equal(
        6,
      );
    });
  });

  describe("DKIM key rotation: publish → sign → retire, one reviewed update each (issue 17)", () => {
    const ROTATION: Record<string, Record<string, unknown>> = {
      none: { dkim: { selector: "hastack1" } },
      publish: { dkim: { selector: "hastack1", rotation: { next: "hastack2", phase: "publish" } } },
      sign: { dkim: { selector: "hastack1", rotation: { next: "hastack2", phase: "sign" } } },
      retire: { dkim: { selector: "hastack1", rotation: { next: "hastack2", phase: "retire" } } },
      done: { dkim: { selector: "hastack2" } },
    };
    const synths = new Map<string, Synth>();
    before(async () => {
      for (const [phase, cfg] of Object.entries(ROTATION)) {
        synths.set(phase, await synth(cfg));
      }
    });
    const state = (phase: string): DkimState =>
      dkimState(mailConfig(ROTATION[phase]).dkim as Parameters<typeof dkimState>[0]);

    it("each phase: which selectors are published and which one signs", () => {
      expect(state("none")).to.deep.equal({ signing: "hastack1", published: ["hastack1"] });
      expect(state("publish")).to.deep.equal({
        signing: "hastack1",
        published: ["hastack1", "hastack2"],
      });
      expect(state("sign")).to.deep.equal({
        signing: "hastack2",
        published: ["hastack1", "hastack2"],
      });
      expect(state("retire")).to.deep.equal({ signing: "hastack2", published: ["hastack2"] });
      expect(state("done")).to.deep.equal(state("retire"));
    });

    // From → to: allowed (one step, a rollback of one, or the bookkeeping after retire).
    const allowed: [string, string][] = [
      ["none", "publish"],
      ["publish", "sign"],
      ["sign", "retire"],
      ["retire", "done"],
      ["sign", "publish"],
      ["publish", "none"],
      ["none", "none"],
    ];
    const refused: [string, string, string][] = [
      ["none", "sign", 'signing with DKIM selector "hastack2" needs its record published'],
      ["publish", "retire", 'the record of DKIM selector "hastack1" cannot be removed'],
      ["none", "done", 'signing with DKIM selector "hastack2" needs its record published'],
      ["none", "retire", 'the record of DKIM selector "hastack1" cannot be removed'],
    ];
    for (const [from, to] of allowed) {
      it(`compliant: ${from} → ${to}`, () => {
        expect(() => checkDkimRotation(state(from), state(to))).not.to.throw();
      });
    }
    for (const [from, to, why] of refused) {
      it(`non-compliant: ${from} → ${to} is refused, naming the key`, () => {
        expect(() => checkDkimRotation(state(from), state(to)))
          .to.throw(pulumi.RunError, why)
          .with.property("message")
          .that.contains("hastack:mail.dkim");
      });
    }

    const changes = (from: string, to: string): string[] => {
      const diff = diffDeployments(synths.get(from)!.d, synths.get(to)!.d);
      for (const c of diff) {
        expect(NEVER_TOUCHED, `${from} → ${to} touches ${c.urn}`).not.to.include(c.type);
      }
      return diff.map((c) => `${c.urn.split("::").pop()} ${c.op}`).sort();
    };
    it("publish adds the new selector's key, parameter and record, and nothing else", () => {
      expect(changes("none", "publish")).to.deep.equal([
        "mail-dkim-hastack2 create",
        "mail-dkim-hastack2 create",
        "mail-dkim-hastack2 create",
      ]);
    });
    it("sign switches only the signing-selector parameter the servers read", () => {
      expect(changes("publish", "sign")).to.deep.equal(["mail-dkim-signing-selector update"]);
      const param = resources(synths.get("sign")!, "aws:ssm/parameter:Parameter").find(
        (r) => r.name === "mail-dkim-signing-selector",
      )!;
      expect(param.inputs).to.include({
        name: "/hastack/mail/dkim-signing-selector",
        type: "String",
        insecureValue: "hastack2",
      });
    });
    it("retire removes the old selector's key, parameter and record; finishing changes nothing", () => {
      expect(changes("sign", "retire")).to.deep.equal([
        "mail-dkim-hastack1 delete",
        "mail-dkim-hastack1 delete",
        "mail-dkim-hastack1 delete",
      ]);
      expect(changes("retire", "done")).to.deep.equal([]);
    });
    it("SPF, DKIM (every published selector) and DMARC are well formed in every phase", () => {
      for (const [phase, s] of synths) {
        for (const selector of state(phase).published) {
          expectWellFormed(senderAuthentication(s, selector));
        }
      }
      const keys = (phase: string) =>
        state(phase).published.map((sel) =>
          senderAuthentication(synths.get(phase)!, sel).dkim.get("p"),
        );
      // The new selector's key is one key from publish to done, never regenerated.
      expect(keys("publish")[1]).to.equal(keys("sign")[1]).and.to.equal(keys("done")[0]);
      expect(keys("publish")[0]).to.not.equal(keys("publish")[1]);
    });
    it("the applied state is in the outputs for the next update's check", async () => {
      const summary = synths.get("sign")!.outputs.summary as Record<string, unknown>;
      expect(summary.dkim).to.deep.equal(state("sign"));
    });
    it("a skipped phase is refused before anything is declared (previous state from the outputs)", async () => {
      let err: unknown;
      try {
        await synth(ROTATION.retire, { previousDkim: state("publish") });
      } catch (e) {
        err = e;
      }
      expect(String(err)).to.contain('the record of DKIM selector "hastack1" cannot be removed');
    });
    it("changing the selector outright (no rotation) is refused too", async () => {
      expect(() => checkDkimRotation(state("none"), state("done"))).to.throw(pulumi.RunError);
    });
    it("bad rotation input is refused naming the key", async () => {
      let err: unknown;
      try {
        await synth({
          dkim: { selector: "hastack1", rotation: { next: "hastack1", phase: "publish" } },
        });
      } catch (e) {
        err = e;
      }
      expect(String(err)).to.contain("hastack:mail.dkim.rotation.next must be a new selector");
    });
  });

  describe("the old server's DKIM selector stays published until it stops sending (step 9)", () => {
    const OLD_KEY = "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAq1" + "A".repeat(300) + "IDAQAB";
    const oldWithDkim = (phase: number) => ({
      migration: {
        phase,
        oldServer: {
          ...OLD,
          dkim: { selector: "default", record: `v=DKIM1; k=rsa; p=${OLD_KEY}` },
        },
      },
    });
    it("phases 1–8 publish it well formed, split for Route 53; phase 9 removes it after the retire check", async () => {
      const KEY = Buffer.from("not a real key").toString("base64");
      for (let phase = 1; phase <= 9; phase++) {
        const s = await synth(oldWithDkim(phase), { sshPrivateKey: KEY });
        const r = record(s, `default._domainkey.${DOMAIN}`, "TXT");
        if (phase < 9) {
          const tags = parseTagList(txtStrings((r!.inputs.records as string[])[0]).join(""));
          expect(tags.get("p"), `phase ${phase}`).to.equal(OLD_KEY);
          expectWellFormed(senderAuthentication(s));
        } else {
          expect(r, "phase 9").to.equal(undefined);
          const s8 = await synth(oldWithDkim(8), { sshPrivateKey: KEY });
          const names = diffDeployments(s8.d, s.d).map((c) => `${c.urn.split("::").pop()} ${c.op}`);
          expect(names).to.include("mail-old-dkim delete");
          expect(names).to.include("mail-retire-old create");
        }
      }
    });
    it("refused: the old server's selector equal to one of the stack's, or a record without a key", async () => {
      for (const [dkim, why] of [
        [
          { selector: "hastack1", record: `v=DKIM1; k=rsa; p=${OLD_KEY}` },
          "must differ from the stack's own selectors",
        ],
        [
          { selector: "default", record: "v=DKIM1; k=rsa; p=" },
          "must carry the old server's public key",
        ],
      ] as const) {
        let err: unknown;
        try {
          await synth({ migration: { phase: 1, oldServer: { ...OLD, dkim } } });
        } catch (e) {
          err = e;
        }
        expect(String(err)).to.contain(`hastack:mail.migration.oldServer.dkim`).and.contain(why);
      }
    });
  });

  describe("ACME DNS-01: the servers may change only _acme-challenge TXT records of their names (issue 17)", () => {
    interface Statement {
      Effect: string;
      Action: string | string[];
      Resource: string;
      Condition?: Record<string, Record<string, string[]>>;
    }
    const statements = (): Statement[] => {
      const p = resources(base, "aws:iam/rolePolicy:RolePolicy").find(
        (r) => r.name === "mail-acme-dns",
      )!;
      return (JSON.parse(p.inputs.policy as string) as { Statement: Statement[] }).Statement;
    };
    /**
     * IAM's answer for one ChangeResourceRecordSets request (Allow statements only, as here):
     * allowed when a statement names the action and zone and every ForAllValues:StringEquals
     * condition holds for every value of the request.
     */
    const allows = (req: { zone: string; names: string[]; types: string[]; actions: string[] }) =>
      statements().some((st) => {
        const actions = ([] as string[]).concat(st.Action);
        if (st.Effect !== "Allow" || !actions.includes("route53:ChangeResourceRecordSets")) {
          return false;
        }
        if (st.Resource !== `arn:aws:route53:::hostedzone/${req.zone}` && st.Resource !== "*") {
          return false;
        }
        const c = st.Condition?.["ForAllValues:StringEquals"] ?? {};
        const values: Record<string, string[]> = {
          "route53:ChangeResourceRecordSetsNormalizedRecordNames": req.names,
          "route53:ChangeResourceRecordSetsRecordTypes": req.types,
          "route53:ChangeResourceRecordSetsActions": req.actions,
        };
        return Object.entries(c).every(([key, allowed]) =>
          (values[key] ?? []).every((v) => allowed.includes(v)),
        );
      });
    let zone: string;
    before(() => {
      const mx = resources(base, RECORD).find((r) => r.inputs.type === "MX")!;
      zone = mx.inputs.zoneId as string;
    });

    it("compliant: the challenge records of mail, mx1, mx2 and mta-sts (UPSERT and DELETE, TXT)", () => {
      for (const host of ["mail", "mx1", "mx2", "mta-sts"]) {
        expect(
          allows({
            zone,
            names: [`_acme-challenge.${host}.${DOMAIN}`],
            types: ["TXT"],
            actions: ["UPSERT", "DELETE"],
          }),
          host,
        ).to.equal(true);
      }
    });

    const refused: [string, { names: string[]; types: string[]; actions: string[] }][] = [
      ["the MX record set", { names: [DOMAIN], types: ["MX"], actions: ["UPSERT"] }],
      ["SPF (the domain's TXT)", { names: [DOMAIN], types: ["TXT"], actions: ["UPSERT"] }],
      [
        "a DKIM record",
        { names: [`hastack1._domainkey.${DOMAIN}`], types: ["TXT"], actions: ["UPSERT"] },
      ],
      [
        "another service's challenge",
        { names: [`_acme-challenge.db.${DOMAIN}`], types: ["TXT"], actions: ["UPSERT"] },
      ],
      [
        "the service name's A record",
        { names: [`mail.${DOMAIN}`], types: ["A"], actions: ["UPSERT"] },
      ],
      [
        "the MTA-STS policy id (_mta-sts)",
        { names: [`_mta-sts.${DOMAIN}`], types: ["TXT"], actions: ["UPSERT"] },
      ],
      [
        "mta-sts.<domain>'s own A record",
        { names: [`mta-sts.${DOMAIN}`], types: ["A"], actions: ["UPSERT"] },
      ],
      [
        "a challenge below mta-sts (nothing broader than its own name)",
        {
          names: [`_acme-challenge.www.mta-sts.${DOMAIN}`],
          types: ["TXT"],
          actions: ["UPSERT"],
        },
      ],
      [
        "a challenge name with another type",
        { names: [`_acme-challenge.mail.${DOMAIN}`], types: ["CNAME"], actions: ["UPSERT"] },
      ],
      [
        "a challenge record bundled with MX",
        {
          names: [`_acme-challenge.mail.${DOMAIN}`, DOMAIN],
          types: ["TXT", "MX"],
          actions: ["UPSERT"],
        },
      ],
      [
        "CREATE (only UPSERT and DELETE are allowed)",
        { names: [`_acme-challenge.mail.${DOMAIN}`], types: ["TXT"], actions: ["CREATE"] },
      ],
    ];
    for (const [what, req] of refused) {
      it(`non-compliant: ${what}`, () => {
        expect(allows({ zone, ...req })).to.equal(false);
      });
    }
    it("non-compliant: the right name in another hosted zone", () => {
      expect(
        allows({
          zone: "Z0THERZONE",
          names: [`_acme-challenge.mail.${DOMAIN}`],
          types: ["TXT"],
          actions: ["UPSERT"],
        }),
      ).to.equal(false);
    });
    it("the only unscoped action lists zone names; GetChange is scoped to changes", () => {
      const unscoped = statements().filter((s) => s.Resource === "*");
      expect(unscoped.map((s) => s.Action)).to.deep.equal([["route53:ListHostedZones"]]);
      expect(statements().find((s) => s.Action === "route53:GetChange")!.Resource).to.equal(
        "arn:aws:route53:::change/*",
      );
    });
    it("both servers' user-data obtain the certificate at first boot and renew it hourly", () => {
      for (const n of ["mail-pair-primary", "mail-pair-standby"]) {
        const ud = userDataOf(byName(base, n)!);
        expect(ud).to.contain("hastack-mail-cert obtain");
        expect(ud).to.contain("PLUGIN_ARGS=(--dns-route53)");
        expect(ud).to.contain(
          `NAMES=(mail.${DOMAIN} mx1.${DOMAIN} mx2.${DOMAIN} mta-sts.${DOMAIN})`,
        );
        expect(ud).to.contain("OnUnitActiveSec=60min");
      }
    });
  });

  describe("a failover flip", () => {
    it("touches only the switch records and the MX preference", async () => {
      const flipped = await synth({ active: "standby" });
      const diff = diffDeployments(base.d, flipped.d);
      for (const c of diff) {
        expect(NEVER_TOUCHED, c.urn).not.to.include(c.type);
      }
      const names = diff.map((c) => c.urn.split("::").pop()).sort();
      expect(names).to.include("mail-mx");
      expect(names.every((n) => n === "mail-mx" || /failover/.test(n!))).to.equal(
        true,
        names.join(", "),
      );
    });
  });
});
