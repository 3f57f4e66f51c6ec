// The policy pack (policy/rules.ts): each policy with a compliant and a non-compliant resource;
// the prod stack passes offline (`npm run synth -- --policy`); the hostile configs of the review,
// which config validation refuses first, fail the pack on a hand-built deployment.
import { expect } from "chai";
import { checkResources, POLICIES, PolicyInput } from "../../policy/rules";
import { MTA_STS_INGRESS_DESCRIPTION } from "../../components/mail-mta-sts";
import { InspectedResource } from "../../lib/synth/offline-synth";
import { synthesize } from "../../lib/synth/offline-synth";
import { PROJECT_DIR } from "../support/stack-files";

const ALL_PROTECTED = { protect: true, retainOnDelete: true };
const KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOv9p1Y2m9lHFs0Rt0mYlDQnU4m2N0Jp5vJg7j0Yv9p1";

function res(type: string, inputs: Record<string, unknown>, options = ALL_PROTECTED): PolicyInput {
  return { type, urn: `urn:pulumi:t::hastack::${type}::r`, inputs, options };
}

function violationsOf(policy: string, resources: PolicyInput[]): string[] {
  return checkResources(resources)
    .filter((v) => v.policy === policy)
    .map((v) => v.message);
}

const ingress = (port: number, cidr: string, protocol = "tcp", sg = "sg-1"): PolicyInput =>
  res("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule", {
    securityGroupId: sg,
    ipProtocol: protocol,
    fromPort: port,
    toPort: port,
    cidrIpv4: cidr,
  });

/** The policy name each case exercises, a compliant and a non-compliant deployment. */
const CASES: {
  policy: string;
  compliant: PolicyInput[];
  nonCompliant: PolicyInput[];
  message: RegExp;
}[] = [
  {
    policy: "no-world-open-admin-db-sip-ports",
    compliant: [ingress(22, "203.0.113.10/32"), ingress(25, "0.0.0.0/0")],
    nonCompliant: [ingress(22, "0.0.0.0/1"), ingress(22, "128.0.0.0/1")],
    message: /SSH \(tcp 22\) is open to 4294967296 addresses/,
  },
  {
    policy: "imdsv2-required",
    compliant: [
      res("aws:ec2/instance:Instance", {
        metadataOptions: { httpTokens: "required", httpPutResponseHopLimit: 1 },
        rootBlockDevice: { encrypted: true },
      }),
    ],
    nonCompliant: [
      res("aws:ec2/instance:Instance", {
        metadataOptions: { httpTokens: "optional" },
        rootBlockDevice: { encrypted: true },
      }),
    ],
    message: /httpTokens "required"/,
  },
  {
    policy: "encryption-with-customer-keys",
    compliant: [
      res("aws:ssm/parameter:Parameter", {
        type: "SecureString",
        keyId: "arn:aws:kms:ap-southeast-3:123456789012:key/k",
      }),
      res("aws:ebs/volume:Volume", { encrypted: true, kmsKeyId: "arn:aws:kms:r:1:key/v" }),
      res("aws:ec2/instance:Instance", {
        rootBlockDevice: { encrypted: true, kmsKeyId: "arn:aws:kms:r:1:key/v" },
      }),
    ],
    nonCompliant: [res("aws:ssm/parameter:Parameter", { type: "SecureString" })],
    message: /customer-managed key/,
  },
  {
    policy: "encryption-with-customer-keys",
    compliant: [
      res("aws:ebs/volume:Volume", { encrypted: true, kmsKeyId: "arn:aws:kms:r:1:key/v" }),
    ],
    // Encrypted, but under aws/ebs: its snapshots cannot be copied to another account.
    nonCompliant: [res("aws:ebs/volume:Volume", { encrypted: true })],
    message: /volume must name the stack's customer-managed key \(kmsKeyId\), not aws\/ebs/,
  },
  {
    policy: "encryption-with-customer-keys",
    compliant: [
      res("aws:ec2/instance:Instance", {
        rootBlockDevice: { encrypted: true, kmsKeyId: "arn:aws:kms:r:1:key/v" },
      }),
    ],
    nonCompliant: [
      res("aws:ec2/instance:Instance", {
        rootBlockDevice: { encrypted: true, kmsKeyId: "alias/aws/ebs" },
      }),
    ],
    message: /root volume must name the stack's customer-managed key/,
  },
  {
    policy: "stateful-protected",
    compliant: [res("aws:ebs/volume:Volume", { encrypted: true })],
    nonCompliant: [
      res("aws:ebs/volume:Volume", { encrypted: true }, { protect: true, retainOnDelete: false }),
    ],
    message: /retained on delete/,
  },
  {
    policy: "failover-records-health-checked",
    compliant: [
      res("aws:route53/record:Record", {
        name: "mail.example.co.id",
        type: "A",
        ttl: 60,
        failoverRoutingPolicies: [{ type: "PRIMARY" }],
        healthCheckId: "hc-1",
      }),
    ],
    nonCompliant: [
      res("aws:route53/record:Record", {
        name: "mail.example.co.id",
        type: "A",
        ttl: 60,
        failoverRoutingPolicies: [{ type: "SECONDARY" }],
      }),
    ],
    message: /SECONDARY failover record mail\.example\.co\.id has no health check/,
  },
  {
    policy: "switch-record-ttl-at-most-60",
    compliant: [
      res("aws:route53/record:Record", {
        ttl: 60,
        failoverRoutingPolicies: [{ type: "PRIMARY" }],
        healthCheckId: "hc",
      }),
    ],
    nonCompliant: [
      res("aws:route53/record:Record", {
        ttl: 300,
        failoverRoutingPolicies: [{ type: "PRIMARY" }],
        healthCheckId: "hc",
      }),
    ],
    message: /TTL must be at most 60 s, got 300/,
  },
  {
    policy: "remote-commands-pin-host-key",
    compliant: [
      res("command:remote:Command", { connection: { host: "198.51.100.7", hostKey: KEY } }),
    ],
    nonCompliant: [res("command:remote:Command", { connection: { host: "198.51.100.7" } })],
    message: /connection\.hostKey must be/,
  },
  {
    policy: "iam-no-wildcard-account-or-region",
    compliant: [
      res("aws:iam/rolePolicy:RolePolicy", {
        policy: JSON.stringify({
          Statement: [
            {
              Effect: "Allow",
              Action: "ssm:GetParameter",
              Resource: "arn:aws:ssm:ap-southeast-3:123456789012:parameter/hastack/mail/*",
            },
            // An action IAM authorizes only on "*" (certbot's Route 53 zone lookup), alone.
            { Effect: "Allow", Action: ["route53:ListHostedZones"], Resource: "*" },
          ],
        }),
      }),
    ],
    nonCompliant: [
      res("aws:iam/rolePolicy:RolePolicy", {
        policy: JSON.stringify({
          Statement: [
            // Bundled with an action that can be scoped, "*" is refused.
            {
              Effect: "Allow",
              Action: ["route53:ListHostedZones", "route53:ChangeResourceRecordSets"],
              Resource: "*",
            },
          ],
        }),
      }),
      res("aws:iam/rolePolicy:RolePolicy", {
        policy: JSON.stringify({
          Statement: [
            {
              Effect: "Allow",
              Action: "ssm:GetParameter",
              Resource: "arn:aws:ssm:*:*:parameter/hastack/mail/*",
            },
          ],
        }),
      }),
    ],
    message: /must name the stack's region and account/,
  },
];

describe("policy pack: every policy is mandatory and has a case", () => {
  it("each policy of policy/rules.ts is exercised below", () => {
    const exercised = [...new Set(CASES.map((c) => c.policy))].sort();
    expect(exercised).to.deep.equal(POLICIES.map((p) => p.name).sort());
  });
});

for (const c of CASES) {
  describe(`policy ${c.policy}`, () => {
    it("compliant: no violation", () => {
      expect(violationsOf(c.policy, c.compliant)).to.deep.equal([]);
    });
    it("non-compliant: a violation saying why", () => {
      const v = violationsOf(c.policy, c.nonCompliant);
      expect(v.length, JSON.stringify(v)).to.be.greaterThan(0);
      expect(v.join("\n")).to.match(c.message);
    });
  });
}

describe("policy pack: the review's hostile CIDRs fail it (hand-built, config refuses them first)", () => {
  const hostile: [string, string[]][] = [
    ["two /1 halves", ["0.0.0.0/1", "128.0.0.0/1"]],
    ["/00", ["0.0.0.0/00"]],
    ["leading zeros", ["000.0.0.0/0"]],
    ["a host with /0", ["203.0.113.10/0"]],
    ["eight /3 blocks", [0, 32, 64, 96, 128, 160, 192, 224].map((o) => `${o}.0.0.0/3`)],
    ["the world", ["0.0.0.0/0"]],
  ];
  for (const [what, cidrs] of hostile) {
    for (const [port, protocol] of [
      [22, "tcp"],
      [3306, "tcp"],
      [5060, "udp"],
    ] as const) {
      it(`${what} on ${protocol} ${port}`, () => {
        const v = violationsOf(
          "no-world-open-admin-db-sip-ports",
          cidrs.map((c) => ingress(port, c, protocol)),
        );
        expect(v.length, what).to.be.greaterThan(0);
      });
    }
  }
  it("443 open to the world only as the mail servers' MTA-STS rule (exactly 443, its description)", () => {
    const sts = (from: number, description: string): PolicyInput => {
      const r = ingress(443, "0.0.0.0/0");
      r.inputs.fromPort = from;
      r.inputs.description = description;
      return r;
    };
    const v = (r: PolicyInput) => violationsOf("no-world-open-admin-db-sip-ports", [r]);
    expect(v(sts(443, MTA_STS_INGRESS_DESCRIPTION))).to.deep.equal([]);
    expect(v(sts(443, "HTTPS")).length).to.equal(1);
    expect(v(sts(80, MTA_STS_INGRESS_DESCRIPTION)).length).to.be.greaterThan(0);
  });
  it("a /16 of admins and a split list under a /8 pass; rules on other groups do not add up", () => {
    expect(
      violationsOf("no-world-open-admin-db-sip-ports", [
        ingress(22, "10.0.0.0/16"),
        ingress(22, "10.0.0.0/9", "tcp", "sg-2"),
        ingress(22, "10.128.0.0/9", "tcp", "sg-3"),
      ]),
    ).to.deep.equal([]);
  });
});

describe("policy pack on the synthesized prod stack", function () {
  this.timeout(600_000);
  let resources: InspectedResource[] = [];
  before(async () => {
    await synthesize({
      projectDir: PROJECT_DIR,
      stack: "prod",
      inspect: (r) => (resources = r),
    });
  });

  it("prod passes every policy", () => {
    expect(checkResources(resources)).to.deep.equal([]);
  });

  it("prod's remote commands carry their host keys (seen unmasked by the pack)", () => {
    const commands = resources.filter((r) => r.type === "command:remote:Command");
    expect(commands.length).to.be.greaterThan(0);
    for (const c of commands) {
      const conn = c.inputs.connection as { hostKey?: string } | undefined;
      if (conn) {
        expect(conn.hostKey, c.urn).to.match(/^ssh-ed25519 /);
      }
    }
  });

  it("prod with one protection dropped fails, naming the resource", () => {
    const tampered = resources.map((r) =>
      r.type === "aws:backup/vault:Vault"
        ? { ...r, options: { protect: false, retainOnDelete: true } }
        : r,
    );
    const v = checkResources(tampered);
    expect(v.map((x) => x.policy)).to.deep.equal(["stateful-protected"]);
    expect(v[0].urn).to.contain("aws:backup/vault:Vault");
  });
});
