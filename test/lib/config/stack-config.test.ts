import { expect } from "chai";
import { ConfigError, parseStackConfig } from "../../../lib/config/stack-config";
import { readProdStack, StackConfigDoc } from "../../support/stack-files";

/** Raw config as index.ts hands it to parseStackConfig: hastack:* keys without namespace. */
function prodRaw(): StackConfigDoc {
  const raw: StackConfigDoc = {};
  for (const [key, value] of Object.entries(readProdStack().config)) {
    if (key === "aws:region") {
      raw.region = value;
    } else if (key.startsWith("hastack:")) {
      raw[key.slice("hastack:".length)] = value;
    }
  }
  raw.sshPrivateKey = "-----BEGIN OPENSSH PRIVATE KEY----- very secret";
  return raw;
}

function problemsOf(edit: (raw: StackConfigDoc) => void): string[] {
  const raw = prodRaw();
  edit(raw);
  try {
    parseStackConfig(raw);
  } catch (e) {
    expect(e).to.be.instanceOf(ConfigError);
    return (e as ConfigError).problems.map((p) => `${p.key} ${p.message}`);
  }
  return [];
}

describe("stack config", () => {
  it("accepts Pulumi.prod.yaml and applies defaults", () => {
    const cfg = parseStackConfig(prodRaw());
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
        'hastack:adminCidrs[0] must be an IPv4 CIDR such as 203.0.113.10/32, got "10.0.0.1"',
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
  ];
  for (const c of cases) {
    it(`refuses ${c.what}`, () => {
      expect(problemsOf(c.edit)).to.include(c.expected);
    });
  }

  it("reports every problem at once, in one error", () => {
    const problems = problemsOf((r) => {
      r.mail.active = "sideways";
      r.ami = "latest";
      r.pbx.azs = { primary: "ap-southeast-3a", standby: "ap-southeast-3a" };
    });
    expect(problems).to.have.length(3);
  });

  it("never echoes a secret value in a message", () => {
    const raw = prodRaw();
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
