// Data volumes and root disks under the stack's customer-managed key (issue 13), so their
// snapshots can be copied to another region or account. A live volume cannot change its key
// (kmsKeyId forces a new, empty volume): the stack ignores changes of it, so an existing stack
// that takes this change replaces nothing — proven here with the impact engine on synth pairs,
// and the same engine shows what the change would do without that guard.
import { expect } from "chai";
import { volumeKeyPolicy } from "../../components/volume-key";
import { buildImpactPlan, planInputFromSynth } from "../../lib/impact/impact-plan";
import { Deployment, SynthResource } from "../../lib/synth/offline-synth";
import { ofType } from "../support/deployment-queries";
import { synthProd } from "../support/stack-files";

const VOLUME = "aws:ebs/volume:Volume";
const INSTANCE = "aws:ec2/instance:Instance";
const KEY = "aws:kms/key:Key";

function volumeKey(d: Deployment): SynthResource {
  const keys = ofType(d, KEY).filter((r) => r.urn.includes("VolumeKey"));
  expect(keys).to.have.length(1);
  return keys[0];
}

/**
 * The state a stack made before the volume key left: volumes and root disks under aws/ebs (no
 * kmsKeyId), no key, no ignoreChanges for it.
 */
function beforeVolumeKey(d: Deployment): Deployment {
  const old = JSON.parse(JSON.stringify(d)) as Deployment;
  old.deployment.resources = old.deployment.resources.filter((r) => !r.urn.includes("VolumeKey"));
  for (const r of old.deployment.resources) {
    if (r.type === VOLUME) {
      delete r.inputs.kmsKeyId;
      r.ignoreChanges = r.ignoreChanges.filter((p) => p !== "kmsKeyId");
    }
    if (r.type === INSTANCE) {
      delete (r.inputs.rootBlockDevice as Record<string, unknown>).kmsKeyId;
      r.ignoreChanges = r.ignoreChanges.filter((p) => p !== "rootBlockDevice.kmsKeyId");
    }
  }
  return old;
}

describe("volumes under the stack's customer-managed key", function () {
  this.timeout(300_000);
  let prod: Deployment;
  before(async () => {
    prod = await synthProd();
  });

  describe("a new stack's volumes and root disks name the volume key", () => {
    it("every data volume and every root disk: kmsKeyId is the VolumeKey", () => {
      const arn = `arn:aws:kms:region:123456789012:key/${volumeKey(prod).id}`;
      const volumes = ofType(prod, VOLUME);
      const instances = ofType(prod, INSTANCE);
      expect(volumes).to.have.length(8);
      expect(instances).to.have.length(8);
      for (const v of volumes) {
        expect(v.inputs.kmsKeyId, v.name).to.equal(arn);
        expect(v.inputs.encrypted, v.name).to.equal(true);
      }
      for (const i of instances) {
        expect((i.inputs.rootBlockDevice as Record<string, unknown>).kmsKeyId, i.name).to.equal(
          arn,
        );
      }
    });

    it("the key outlives the stack: protected and retained on delete", () => {
      const key = volumeKey(prod);
      expect([key.protect, key.retainOnDelete]).to.deep.equal([true, true]);
      expect(key.inputs.enableKeyRotation).to.equal(true);
    });

    it("its policy lets only EC2 and AWS Backup use it, and grants only for AWS resources", () => {
      const policy = JSON.parse(String(volumeKey(prod).inputs.policy));
      expect(policy).to.deep.equal(volumeKeyPolicy("123456789012", ["ap-southeast-3"]));
      const deny = policy.Statement.find(
        (s: { Sid: string }) => s.Sid === "UseOnlyThroughEc2AndBackup",
      );
      expect(deny.Effect).to.equal("Deny");
      expect(deny.Action).to.include.members(["kms:Decrypt", "kms:CreateGrant"]);
      expect(deny.Condition.StringNotEquals["kms:ViaService"]).to.deep.equal([
        "ec2.ap-southeast-3.amazonaws.com",
        "backup.ap-southeast-3.amazonaws.com",
      ]);
    });

    it("a copy region is allowed too (EC2 there copies the snapshot)", async () => {
      const copied = await synthProd((c) => {
        const nas = c["hastack:nas"] as { awsBackup: Record<string, unknown> };
        nas.awsBackup.copyToRegion = "ap-southeast-1";
      });
      const deny = JSON.parse(String(volumeKey(copied).inputs.policy)).Statement[1];
      expect(deny.Condition.StringNotEquals["kms:ViaService"]).to.include.members([
        "ec2.ap-southeast-1.amazonaws.com",
        "backup.ap-southeast-1.amazonaws.com",
      ]);
    });
  });

  describe("an existing stack taking the change replaces no volume and no server", () => {
    it("impact engine: only the key and its alias are created; volumes and servers untouched", () => {
      const plan = buildImpactPlan(planInputFromSynth(beforeVolumeKey(prod), prod));
      expect(plan.steps.filter((s) => s.type === VOLUME || s.type === INSTANCE)).to.deep.equal([]);
      expect(plan.steps.map((s) => `${s.op} ${s.type}`).sort()).to.deep.equal([
        "create aws:kms/alias:Alias",
        "create aws:kms/key:Key",
        "create hastack:security:VolumeKey",
      ]);
      expect(plan.worst).to.equal("none");
    });

    it("without the ignoreChanges guard the same change would replace every volume (data risk)", () => {
      const unguarded = JSON.parse(JSON.stringify(prod)) as Deployment;
      for (const r of unguarded.deployment.resources) {
        r.ignoreChanges = r.ignoreChanges.filter(
          (p) => p !== "kmsKeyId" && p !== "rootBlockDevice.kmsKeyId",
        );
      }
      const plan = buildImpactPlan(planInputFromSynth(beforeVolumeKey(prod), unguarded));
      const volumes = plan.steps.filter((s) => s.type === VOLUME);
      expect(volumes).to.have.length(8);
      for (const v of volumes) {
        expect([v.op, v.class], v.name).to.deep.equal(["replace", "data-risk"]);
        expect(v.replaceReasons).to.include("kmsKeyId");
      }
      const servers = plan.steps.filter((s) => s.type === INSTANCE);
      expect(servers.every((s) => s.op === "replace")).to.equal(true);
      expect(plan.worst).to.equal("data-risk");
    });
  });
});
