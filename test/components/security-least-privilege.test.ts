// Least privilege on the synthesized prod stack (issue 13): IAM ARNs scoped to the stack's region
// and account, SecureStrings under the stack's customer key with each role decrypting only its
// own prefix, and egress per need — with every declared server-to-server flow allowed at both
// ends (egress on the source's group, ingress on the target's).
import { expect } from "chai";
import { Deployment, SynthResource } from "../../lib/synth/offline-synth";
import { synthProd } from "../support/stack-files";
import { egressRules, readSecretsPolicy } from "../../components/server-pair";
import { secretsKeyPolicy } from "../../components/secrets-key";

const INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule";
const EGRESS = "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule";
const SG = "aws:ec2/securityGroup:SecurityGroup";
const REGION = "ap-southeast-3";
const ACCOUNT = "123456789012"; // what offline synth's getCallerIdentity answers

type Service = "mail" | "mysql" | "pbx" | "nas";

/**
 * Every server-to-server flow the services need (README: the stack, NAS design): replication,
 * mail sync, peer syncs, NAS pulls, PBX CDRs. Each must be allowed out of the source's group and
 * into the target's.
 */
const DECLARED_FLOWS: { from: Service; to: Service; port: number; why: string }[] = [
  { from: "mail", to: "mail", port: 22, why: "mail peer SSH" },
  { from: "mail", to: "mail", port: 12345, why: "dsync (doveadm server)" },
  { from: "mysql", to: "mysql", port: 3306, why: "replication" },
  { from: "pbx", to: "pbx", port: 22, why: "PBX config/spool sync" },
  { from: "nas", to: "nas", port: 22, why: "NAS replication" },
  { from: "pbx", to: "mysql", port: 3306, why: "CDRs" },
  { from: "nas", to: "mysql", port: 3306, why: "database dumps" },
  { from: "nas", to: "pbx", port: 22, why: "PBX backup pulls" },
  { from: "nas", to: "mail", port: 22, why: "mail backup pulls" },
];

function ofType(d: Deployment, type: string): SynthResource[] {
  return d.deployment.resources.filter((r) => r.type === type);
}

/** The service's main security group id (`<svc>-pair-sg`), from the synth's mock ids. */
function sgIdOf(d: Deployment, service: Service): string {
  const sg = ofType(d, SG).find((r) => r.name === `${service}-pair-sg`);
  expect(sg, `${service}-pair-sg`).to.not.equal(undefined);
  return sg!.id!;
}

interface Rule {
  urn: string;
  securityGroupId: string;
  ipProtocol: string;
  fromPort?: number;
  toPort?: number;
  cidrIpv4?: string;
  referencedSecurityGroupId?: string;
}

function rules(d: Deployment, type: string): Rule[] {
  return ofType(d, type).map((r) => ({ urn: r.urn, ...(r.inputs as Omit<Rule, "urn">) }));
}

function covers(r: Rule, port: number): boolean {
  return r.ipProtocol === "tcp" && r.fromPort! <= port && port <= r.toPort!;
}

describe("least privilege on the prod synth", function () {
  this.timeout(600_000);
  let d: Deployment;
  before(async () => {
    d = await synthProd();
  });

  describe("invariant: every declared server-to-server flow is allowed at both ends", () => {
    for (const f of DECLARED_FLOWS) {
      it(`${f.from} → ${f.to} tcp ${f.port} (${f.why})`, () => {
        const from = sgIdOf(d, f.from);
        const to = sgIdOf(d, f.to);
        const out = rules(d, EGRESS).filter(
          (r) =>
            r.securityGroupId === from && r.referencedSecurityGroupId === to && covers(r, f.port),
        );
        const inn = rules(d, INGRESS).filter(
          (r) =>
            r.securityGroupId === to && r.referencedSecurityGroupId === from && covers(r, f.port),
        );
        expect(out, "egress on the source's group").to.have.length.greaterThan(0);
        expect(inn, "ingress on the target's group").to.have.length.greaterThan(0);
      });
    }

    it("no group-to-group egress exists without its declared flow (nothing undeclared slipped in)", () => {
      const ids = new Map(
        (["mail", "mysql", "pbx", "nas"] as Service[]).map((s) => [sgIdOf(d, s), s]),
      );
      const undeclared = rules(d, EGRESS)
        .filter((r) => r.referencedSecurityGroupId !== undefined)
        .filter(
          (r) =>
            !DECLARED_FLOWS.some(
              (f) =>
                ids.get(r.securityGroupId) === f.from &&
                ids.get(r.referencedSecurityGroupId!) === f.to &&
                covers(r, f.port),
            ),
        )
        .map((r) => r.urn);
      expect(undeclared).to.deep.equal([]);
    });
  });

  describe("invariant: egress per need, never all protocols to anywhere", () => {
    it("compliant: each server reaches the world only on 80/443 (and mail on 25, 993)", () => {
      const world = rules(d, EGRESS).filter((r) => r.cidrIpv4 === "0.0.0.0/0");
      expect(world.length).to.be.greaterThan(0);
      for (const r of world) {
        const mail = r.urn.includes("mail-pair-out-");
        const allowed = mail ? [25, 80, 443, 993] : [80, 443];
        expect(r.ipProtocol, r.urn).to.equal("tcp");
        expect(r.fromPort, r.urn).to.equal(r.toPort);
        expect(allowed, r.urn).to.include(r.fromPort);
      }
      expect(rules(d, EGRESS).filter((r) => r.ipProtocol === "-1")).to.deep.equal([]);
    });

    it("SIP and RTP leave the PBX only towards the trunk and office CIDRs", () => {
      const voice = ["198.51.100.200/29", "203.0.113.0/27"];
      const sip = rules(d, EGRESS).filter(
        (r) => r.urn.includes("pbx-pair-out-") && [5060, 5061, 10000].includes(r.fromPort!),
      );
      expect(sip).to.have.length(8);
      for (const r of sip) {
        expect(voice, r.urn).to.include(r.cidrIpv4);
      }
    });

    it("non-compliant: egressRules never invents a world rule from an empty CIDR list", () => {
      expect(
        egressRules([{ protocol: "udp", fromPort: 5060, cidrs: [], description: "SIP" }], []),
      ).to.deep.equal([]);
    });
  });

  describe("invariant: IAM ARNs name the stack's region and account", () => {
    it("compliant: every role policy's resources are region- and account-scoped", () => {
      const policies = ofType(d, "aws:iam/rolePolicy:RolePolicy");
      // One per pair (read its secrets) + mail's ACME DNS-01 policy (issue 17).
      expect(policies).to.have.length(5);
      for (const p of policies) {
        const doc = JSON.parse(p.inputs.policy as string) as {
          Statement: { Resource: string }[];
        };
        for (const s of doc.Statement) {
          expect(s.Resource, p.urn).to.not.match(/^arn:aws:[a-z]+:\*|:\*:/);
          if (s.Resource.startsWith("arn:aws:ssm:")) {
            expect(s.Resource).to.match(
              new RegExp(`^arn:aws:ssm:${REGION}:${ACCOUNT}:parameter/hastack/[a-z]+/\\*$`),
            );
          }
        }
      }
    });

    it("non-compliant: the old wildcard policy shape would be caught by the same check", () => {
      const old = "arn:aws:ssm:*:*:parameter/hastack/mail/*";
      expect(old).to.match(/^arn:aws:[a-z]+:\*|:\*:/);
    });
  });

  describe("invariant: SecureStrings under the stack's key; each role decrypts only its own prefix", () => {
    it("the key is customer-managed, rotated, protected, retained, and serves SSM parameters only", () => {
      const keys = ofType(d, "aws:kms/key:Key").filter((k) => k.name === "secrets-key");
      expect(keys).to.have.length(1);
      const key = keys[0];
      expect(key.protect && key.retainOnDelete).to.equal(true);
      expect(key.inputs.enableKeyRotation).to.equal(true);
      const policy = JSON.parse(key.inputs.policy as string);
      expect(policy).to.deep.equal(secretsKeyPolicy(ACCOUNT));
      const deny = policy.Statement.find((s: { Effect: string }) => s.Effect === "Deny");
      expect(deny.Condition.Null["kms:EncryptionContext:PARAMETER_ARN"]).to.equal("true");
    });

    it("every SecureString names the stack's key", () => {
      const keyArn = ofType(d, "aws:kms/key:Key").find((k) => k.name === "secrets-key")!;
      const secure = ofType(d, "aws:ssm/parameter:Parameter").filter(
        (p) => p.inputs.type === "SecureString",
      );
      expect(secure.length).to.be.greaterThan(5);
      for (const p of secure) {
        expect(p.inputs.keyId, p.urn).to.be.a("string").and.contain(keyArn.id!);
      }
    });

    it("each role's decrypt condition matches exactly its own service's parameters", () => {
      const parameters = ofType(d, "aws:ssm/parameter:Parameter").map(
        (p) => p.inputs.name as string,
      );
      // The secrets-read policy of each pair (mail's ACME DNS policy decrypts nothing).
      const readSecrets = ofType(d, "aws:iam/rolePolicy:RolePolicy").filter((p) =>
        p.name.endsWith("-read-secrets"),
      );
      expect(readSecrets).to.have.length(4);
      for (const p of readSecrets) {
        const service = p.name.split("-")[0];
        const doc = JSON.parse(p.inputs.policy as string);
        const decrypt = doc.Statement.find((s: { Action: string }) => s.Action === "kms:Decrypt");
        expect(decrypt, p.urn).to.not.equal(undefined);
        const pattern: string = decrypt.Condition.StringLike["kms:EncryptionContext:PARAMETER_ARN"];
        expect(decrypt.Condition.StringEquals["kms:ViaService"]).to.equal(
          `ssm.${REGION}.amazonaws.com`,
        );
        const re = new RegExp(
          "^" + pattern.replace(/[.+?^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*") + "$",
        );
        for (const name of parameters) {
          const arn = `arn:aws:ssm:${REGION}:${ACCOUNT}:parameter${name}`;
          expect(re.test(arn), `${service} role and ${name}`).to.equal(
            name.startsWith(`/hastack/${service}/`),
          );
        }
      }
    });

    it("non-compliant: without a key the policy grants no decrypt at all (aws/ssm is not ours to scope)", () => {
      const doc = readSecretsPolicy({ region: REGION, account: ACCOUNT, prefix: "/hastack/mail" });
      expect(JSON.stringify(doc)).not.to.contain("kms:");
    });
  });
});
