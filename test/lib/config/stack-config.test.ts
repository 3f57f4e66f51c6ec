import { expect } from "chai";
import { PHASE_ZERO_WITH_OLD_SERVER } from "../../../components/mail-migration";
import { ConfigError, formatProblem, parseStackConfig } from "../../../lib/config/stack-config";
import { prodConfigRaw, StackConfigDoc } from "../../support/stack-files";

function problemsOf(edit: (raw: StackConfigDoc) => void): string[] {
  const raw = prodConfigRaw();
  edit(raw);
  try {
    parseStackConfig(raw);
  } catch (e) {
    expect(e).to.be.instanceOf(ConfigError);
    return (e as ConfigError).problems.map(formatProblem);
  }
  return [];
}

describe("stack config", () => {
  it("accepts Pulumi.prod.yaml and applies defaults", () => {
    const cfg = parseStackConfig(prodConfigRaw());
    expect(cfg.mail.active).to.equal("primary");
    expect(cfg.mysql.engine).to.equal("mariadb");
    expect(cfg.pbx.rtpPorts).to.deep.equal({ from: 10000, to: 20000 });
    // Issue 18: the shipped office is moving its mail; phase 1 keeps it on the old server.
    expect(cfg.mail.migration.phase).to.equal(1);
    expect(cfg.nas.awsBackup.retentionDays).to.equal(35);
  });

  // Each kind of bad value, and the exact message an operator sees.
  const cases: { what: string; edit: (raw: StackConfigDoc) => void; expected: string }[] = [
    {
      what: "an active side that is neither primary nor standby",
      edit: (r) => (r.mail.active = "sideways"),
      expected: 'hastack:mail.active must be "primary" or "standby", got "sideways"',
    },
    {
      what: "a missing active side",
      edit: (r) => delete r.pbx.active,
      expected: 'hastack:pbx.active is required ("primary" or "standby")',
    },
    {
      what: "an unpinned AMI",
      edit: (r) => (r.ami = "latest"),
      expected:
        'hastack:ami must be a pinned AMI id such as ami-0123456789abcdef0 (no lookups), got "latest"',
    },
    {
      what: "a switch TTL above 60 s",
      edit: (r) => (r.mysql.ttl = 300),
      expected: "hastack:mysql.ttl must be at most 60, got 300",
    },
    {
      what: "a wrong type",
      edit: (r) => (r.mail.dataVolumeGb = "big"),
      expected: 'hastack:mail.dataVolumeGb must be a number, got "big"',
    },
    {
      what: "a typo'd key",
      edit: (r) => (r.mail.activ = "standby"),
      expected: 'hastack:mail has unknown key(s) "activ" (typo?)',
    },
    {
      what: "an admin CIDR that is not a CIDR",
      edit: (r) => (r.adminCidrs = ["10.0.0.1"]),
      expected:
        'hastack:adminCidrs[0] must be an IPv4 CIDR such as 203.0.113.10/32 (a prefix length is required), got "10.0.0.1"',
    },
    {
      what: "no admin CIDR",
      edit: (r) => (r.adminCidrs = []),
      expected: "hastack:adminCidrs needs at least one admin CIDR, got []",
    },
    {
      what: "primary and standby in the same AZ",
      edit: (r) => (r.pbx.azs = { primary: "ap-southeast-3a", standby: "ap-southeast-3a" }),
      expected:
        'hastack:pbx.azs.standby must differ from hastack:pbx.azs.primary (both "ap-southeast-3a"): primary and standby must not share an availability zone',
    },
    {
      what: "an AZ without a subnet",
      edit: (r) => (r.mysql.azs = { primary: "ap-southeast-3a", standby: "ap-southeast-3c" }),
      expected:
        'hastack:mysql.azs.standby must be one of the network\'s AZs (ap-southeast-3a, ap-southeast-3b), got "ap-southeast-3c"',
    },
    {
      what: "a migration phase out of range",
      edit: (r) => (r.mail.migration.phase = 12),
      expected: "hastack:mail.migration.phase must be at most 9, got 12",
    },
    {
      what: "a migration without the old server",
      edit: (r) => {
        r.mail.migration = { phase: 2 };
      },
      expected:
        "hastack:mail.migration.oldServer is required when hastack:mail.migration.phase is 2 (the server being replaced: hostname, ip, mxPreference)",
    },
    {
      what: "phase 0 with an old server (issue 18: it would publish the new servers as the only MX)",
      edit: (r) => {
        r.mail.migration.phase = 0;
      },
      expected: PHASE_ZERO_WITH_OLD_SERVER,
    },
    {
      what: "an old MX raised too little for both new servers to fit below it",
      edit: (r) => {
        r.mail.migration.oldServer.raisedPreference = 1;
      },
      expected:
        "hastack:mail.migration.oldServer.raisedPreference must be at least mxPreference + 2 (2), so both new servers fit below the old one from step 6; got 1",
    },
    {
      what: "a zone given two ways",
      edit: (r) => (r.zone = { name: "kantor-contoh.co.id", id: "Z0123456789ABC" }),
      expected:
        'hastack:zone must be exactly one of id, name or create: true, got {"name":"kantor-contoh.co.id","id":"Z0123456789ABC"}',
    },
    {
      what: "a network that is neither existing nor created",
      edit: (r) => (r.network = { subnets: [] }),
      expected:
        'hastack:network must be either {vpcId, subnets: [{id, az}, …]} (existing VPC) or {vpcCidr, azs: […]} (the stack creates the VPC), got {"subnets":[]}',
    },
    {
      what: "a wrong aws:region",
      edit: (r) => (r.region = "jakarta"),
      expected: 'aws:region must be an AWS region such as ap-southeast-3, got "jakarta"',
    },
    {
      what: "a service host name that another service's server already uses",
      edit: (r) => (r.mysql.hostname = "mx1"),
      expected:
        "hastack:mysql.hostname clashes with hastack:mail.serverNames.primary: both name mx1.kantor-contoh.co.id; every service and server needs its own host name",
    },
    {
      what: "two services with one host name",
      edit: (r) => (r.pbx.hostname = "mail"),
      expected:
        "hastack:pbx.hostname clashes with hastack:mail.hostname: both name mail.kantor-contoh.co.id; every service and server needs its own host name",
    },
    {
      what: "duplicate serverNames within a pair",
      edit: (r) => (r.pbx.serverNames = { primary: "pbx1", standby: "pbx1" }),
      expected:
        "hastack:pbx.serverNames.standby clashes with hastack:pbx.serverNames.primary: both name pbx1.kantor-contoh.co.id; every service and server needs its own host name",
    },
    {
      what: "a clash with a default label (nas.hostname defaults to nas)",
      edit: (r) => {
        delete r.nas.hostname;
        r.mail.serverNames = { primary: "nas", standby: "mx2" };
      },
      expected:
        "hastack:nas.hostname clashes with hastack:mail.serverNames.primary: both name nas.kantor-contoh.co.id; every service and server needs its own host name",
    },
    {
      what: "a zone that does not hold the domain",
      edit: (r) => (r.zone = { name: "other-domain.com" }),
      expected:
        'hastack:zone.name must be the zone that holds hastack:domain ("kantor-contoh.co.id") — the domain itself or a parent of it — got "other-domain.com": every record would be outside the zone',
    },
    {
      what: "a zone that only ends like the domain (not a parent label)",
      edit: (r) => (r.zone = { name: "contoh.co.id" }),
      expected:
        'hastack:zone.name must be the zone that holds hastack:domain ("kantor-contoh.co.id") — the domain itself or a parent of it — got "contoh.co.id": every record would be outside the zone',
    },
    {
      what: "an instance type that is no EC2 instance type",
      edit: (r) => (r.mail.instanceType = "banana"),
      expected:
        'hastack:mail.instanceType must be an EC2 instance type such as t3.small or m6i.large (family.size), got "banana"',
    },
    {
      what: "an instance type without its size",
      edit: (r) => (r.nas.instanceType = "t3"),
      expected:
        'hastack:nas.instanceType must be an EC2 instance type such as t3.small or m6i.large (family.size), got "t3"',
    },
    {
      what: "a VPC CIDR too small for one /24 per AZ",
      edit: (r) =>
        (r.network = { vpcCidr: "10.20.0.0/28", azs: ["ap-southeast-3a", "ap-southeast-3b"] }),
      expected:
        'hastack:network.vpcCidr must be a /23 or larger: the stack makes one /24 subnet per AZ (2 AZs), got "10.20.0.0/28"',
    },
    {
      what: "a /23 VPC for three AZs",
      edit: (r) =>
        (r.network = {
          vpcCidr: "10.20.0.0/23",
          azs: ["ap-southeast-3a", "ap-southeast-3b", "ap-southeast-3c"],
        }),
      expected:
        'hastack:network.vpcCidr must be a /22 or larger: the stack makes one /24 subnet per AZ (3 AZs), got "10.20.0.0/23"',
    },
    {
      what: "inverted RTP ports, with both values",
      edit: (r) => (r.pbx.rtpPorts = { from: 20000, to: 10000 }),
      expected: "hastack:pbx.rtpPorts: from (20000) must not exceed to (10000)",
    },
    {
      what: "an alert address that is no e-mail address",
      edit: (r) => (r.alerts = { emails: ["it-oncall"] }),
      expected: 'hastack:alerts.emails[0] must be an e-mail address, got "it-oncall"',
    },
    {
      what: "a contact with a bad e-mail address",
      edit: (r) => (r.contacts[1].email = "sari at kantor"),
      expected: 'hastack:contacts[1].email must be an e-mail address, got "sari at kantor"',
    },
  ];
  for (const c of cases) {
    it(`refuses ${c.what}`, () => {
      expect(problemsOf(c.edit)).to.include(c.expected);
    });
  }

  it("accepts instance types of every shape AWS uses", () => {
    for (const t of [
      "t3.small",
      "t3a.nano",
      "m6i.large",
      "c7gn.16xlarge",
      "m7i-flex.large",
      "c7i.metal-24xl",
      "r5.metal",
      "u-6tb1.metal",
      "x2iedn.xlarge",
    ]) {
      expect(
        problemsOf((r) => (r.mail.instanceType = t)),
        t,
      ).to.deep.equal([]);
    }
  });

  it("accepts a zone that is a parent of the domain", () => {
    expect(problemsOf((r) => (r.zone = { name: "co.id" }))).to.deep.equal([]);
  });

  it("refuses a plain-text sshPrivateKey naming `pulumi config set --secret`, never echoing it", () => {
    const raw = prodConfigRaw();
    let message = "";
    try {
      parseStackConfig(raw, { isSecret: () => false });
    } catch (e) {
      message = (e as Error).message;
    }
    expect(message).to.contain(
      "hastack:sshPrivateKey is in plain text in the stack file, which goes into git: remove it and set it with `pulumi config set --secret hastack:sshPrivateKey < FILE`",
    );
    expect(message).not.to.contain("very secret");
    expect(() =>
      parseStackConfig(raw, { isSecret: (k) => k === "hastack:sshPrivateKey" }),
    ).not.to.throw();
  });

  it("prints the first 20 problems and counts the rest; the error keeps them all", () => {
    const problems = Array.from({ length: 65000 }, (_, i) => ({
      key: `hastack:typo${i}`,
      message: "is not a known key",
    }));
    const e = new ConfigError(problems);
    const lines = e.message.split("\n");
    expect(lines).to.have.length(1 + 20 + 1);
    expect(lines[21]).to.equal("  … and 64980 more problems");
    expect(e.problems).to.have.length(65000);
  });

  it("reports every problem at once, in one error", () => {
    const problems = problemsOf((r) => {
      r.mail.active = "sideways";
      r.ami = "latest";
      r.pbx.azs = { primary: "ap-southeast-3a", standby: "ap-southeast-3a" };
    });
    expect(problems).to.have.length(3);
  });

  it("never echoes a secret value in a message", () => {
    const raw = prodConfigRaw();
    raw.sshPrivateKey = 42;
    let message = "";
    try {
      parseStackConfig(raw);
    } catch (e) {
      message = (e as Error).message;
    }
    expect(message).to.contain('hastack:sshPrivateKey must be a string, got "[secret]"');
    expect(message).not.to.contain("42");
  });
});
