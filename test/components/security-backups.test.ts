// Backups that survive a compromised account (issue 13): the AWS Backup vault is locked with the
// configured retention as its minimum, its access policy denies deleting recovery points to every
// principal, retention has a floor of 7 days, and an optional second region holds a locked copy.
import { expect } from "chai";
import { ConfigError, parseStackConfig } from "../../lib/config/stack-config";
import { Deployment, SynthResource } from "../../lib/synth/offline-synth";
import { readProdStack, synthProd } from "../support/stack-files";
import { VAULT_DENIED_ACTIONS } from "../../components/nas";

function ofType(d: Deployment, type: string): SynthResource[] {
  return d.deployment.resources.filter((r) => r.type === type);
}

function named(d: Deployment, name: string): SynthResource {
  const r = d.deployment.resources.find((x) => x.name === name);
  expect(r, name).to.not.equal(undefined);
  return r!;
}

describe("AWS Backup survives a compromised account", function () {
  this.timeout(600_000);
  let prod: Deployment;
  let copied: Deployment;
  before(async () => {
    prod = await synthProd();
    copied = await synthProd((c) => {
      c["hastack:nas"].awsBackup.copyToRegion = "ap-southeast-1";
    });
  });

  describe("invariant: the vault is locked with the configured retention as minimum", () => {
    it("compliant: prod's lock holds 35 days, turns to compliance mode after 3, protected", () => {
      const locks = ofType(prod, "aws:backup/vaultLockConfiguration:VaultLockConfiguration");
      expect(locks).to.have.length(1);
      expect(locks[0].inputs).to.include({ minRetentionDays: 35, changeableForDays: 3 });
      expect(locks[0].protect && locks[0].retainOnDelete).to.equal(true);
      const plan = ofType(prod, "aws:backup/plan:Plan")[0];
      const [rule] = plan.inputs.rules as { lifecycle: { deleteAfter: number } }[];
      expect(rule.lifecycle.deleteAfter).to.equal(35);
      expect(plan.protect).to.equal(true);
    });

    it("non-compliant: a retention under 7 days is a config error naming the key", () => {
      const raw: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(readProdStack().config)) {
        raw[k === "aws:region" ? "region" : k.replace(/^hastack:/, "")] = v;
      }
      raw.sshPrivateKey = "-----BEGIN OPENSSH PRIVATE KEY----- test"; // the file holds ciphertext
      (raw.nas as { awsBackup: { retentionDays: number } }).awsBackup.retentionDays = 6;
      let problems: string[] = [];
      try {
        parseStackConfig(raw);
      } catch (e) {
        expect(e).to.be.instanceOf(ConfigError);
        problems = (e as ConfigError).problems.map((p) => `${p.key} ${p.message}`);
      }
      expect(problems).to.deep.equal([
        "hastack:nas.awsBackup.retentionDays needs at least 7 days (the vault lock's minimum retention), got 6",
      ]);
    });
  });

  describe("invariant: no principal may delete recovery points", () => {
    it("compliant: the vault policy denies the deleting actions to everyone", () => {
      const [policy] = ofType(prod, "aws:backup/vaultPolicy:VaultPolicy");
      expect(policy.protect && policy.retainOnDelete).to.equal(true);
      const doc = JSON.parse(policy.inputs.policy as string);
      const deny = doc.Statement.find((s: { Effect: string }) => s.Effect === "Deny");
      expect(deny.Principal).to.deep.equal({ AWS: "*" });
      expect(deny.Action).to.include.members([
        "backup:DeleteRecoveryPoint",
        "backup:UpdateRecoveryPointLifecycle",
        "backup:DeleteBackupVault",
      ]);
      expect(doc.Statement.some((s: { Effect: string }) => s.Effect === "Allow")).to.equal(false);
    });

    it("non-compliant detector: a policy without DeleteRecoveryPoint fails the same check", () => {
      const weakened = VAULT_DENIED_ACTIONS.filter((a) => a !== "backup:DeleteRecoveryPoint");
      expect(weakened).not.to.include("backup:DeleteRecoveryPoint");
    });
  });

  describe("copyToRegion: a locked copy with its own key in a second region", () => {
    it("without it there is one vault and no copy action", () => {
      expect(ofType(prod, "aws:backup/vault:Vault")).to.have.length(1);
      const [rule] = ofType(prod, "aws:backup/plan:Plan")[0].inputs.rules as {
        copyActions?: unknown[];
      }[];
      expect(rule.copyActions ?? []).to.deep.equal([]);
    });

    it("with it: a provider in that region, its own key, vault, lock and policy, and the copy action", () => {
      const provider = named(copied, "nas-copy-region");
      expect(provider.type).to.equal("pulumi:providers:aws");
      expect(provider.inputs.region).to.equal("ap-southeast-1");
      const key = named(copied, "nas-copy-vault-key");
      const vault = named(copied, "nas-copy-vault");
      const lock = named(copied, "nas-copy-vault-lock");
      const policy = named(copied, "nas-copy-vault-policy");
      for (const r of [key, vault, lock, policy]) {
        expect(r.protect && r.retainOnDelete, r.name).to.equal(true);
      }
      expect(vault.inputs.kmsKeyArn).to.contain(key.id!);
      expect(vault.inputs.kmsKeyArn).not.to.equal(named(copied, "nas-vault").inputs.kmsKeyArn);
      expect(lock.inputs.minRetentionDays).to.equal(35);
      const [rule] = ofType(copied, "aws:backup/plan:Plan")[0].inputs.rules as {
        copyActions: { destinationVaultArn: string; lifecycle: { deleteAfter: number } }[];
      }[];
      expect(rule.copyActions).to.have.length(1);
      expect(rule.copyActions[0].destinationVaultArn).to.contain("nas-copy-vault");
      expect(rule.copyActions[0].lifecycle.deleteAfter).to.equal(35);
    });
  });
});
