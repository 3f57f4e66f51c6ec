// NasBackups under the SDK mocks, read like policies: never reachable from the internet,
// encrypted, a protected AWS Backup vault, a plan with the configured retention selecting the
// tag ServerPair puts on every data volume, jobs with per-service retention, secrets secret.
import { expect } from "chai";
import { ofType, userDataOf } from "../support/deployment-queries";
import { expectValidCloudConfig } from "../support/cloud-init";
import { testPlacement } from "../support/placement";
import { Dns } from "../../components/dns";
import {
  NasBackups,
  NasBackupsArgs,
  NasOutputs,
  checkNasArgs,
  jobOutputs,
  nasCloudConfigParts,
} from "../../components/nas";
import { BACKUP_ROOT, backupJobs } from "../../components/backup-jobs";
import { renderCloudConfig } from "../../components/server-pair";
import { stackConfigSchema } from "../../lib/config/stack-config";
import {
  Deployment,
  SynthResource,
  diffDeployments,
  runUnderMocks,
} from "../../lib/synth/offline-synth";
import * as zlib from "zlib";

const ADMIN = ["203.0.113.10/32"];

function nasConfig(over: Record<string, unknown> = {}) {
  return stackConfigSchema.shape.nas.parse({ active: "primary", ...over });
}

async function synth(
  cfg: Record<string, unknown> = {},
): Promise<{ d: Deployment; outputs: NasOutputs }> {
  let outputs: NasOutputs | undefined;
  const d = await runUnderMocks(() => {
    const dns = new Dns("dns", { domain: "example.co.id", zoneName: "example.co.id" });
    const nas = new NasBackups("nas", {
      config: nasConfig(cfg),
      ...testPlacement(dns),
      region: "ap-southeast-3",
      adminCidrs: ADMIN,
      sources: {
        mailHostname: "mail",
        mysqlHostname: "db",
        pbxHostname: "pbx",
        databases: ["asteriskcdrdb", "app"],
      },
    });
    outputs = nas.outputs;
  });
  return { d, outputs: outputs! };
}

const one = (d: Deployment, type: string): SynthResource => {
  const rs = ofType(d, type);
  expect(rs, type).to.have.length(1);
  return rs[0];
};

describe("NasBackups argument checks", () => {
  const args = (over: Partial<NasBackupsArgs["sources"]> = {}, cfg: Record<string, unknown> = {}) =>
    ({
      config: nasConfig(cfg),
      sources: {
        mailHostname: "mail",
        mysqlHostname: "db",
        pbxHostname: "pbx",
        databases: ["asteriskcdrdb"],
        ...over,
      },
    }) as NasBackupsArgs;
  it("compliant: the default config has no problem", () => {
    expect(checkNasArgs(args())).to.deep.equal([]);
  });
  it("non-compliant: each problem names its argument", () => {
    const cfg = nasConfig();
    const bad = { ...args({ databases: [], pbxHostname: "pbx.example" }), config: cfg };
    bad.config = { ...cfg, intervalHours: { ...cfg.intervalHours, mysql: 0.5 } };
    expect(checkNasArgs(bad).map((p) => p.propertyPath)).to.deep.equal([
      "config.intervalHours.mysql",
      "sources.databases",
      "sources.pbxHostname",
    ]);
  });
});

describe("NasBackups", function () {
  this.timeout(180_000);
  let d: Deployment;
  let outputs: NasOutputs;
  before(async () => ({ d, outputs } = await synth()));

  it("is a hastack:nas:NasBackups holding a ServerPair for service nas", () => {
    const nas = one(d, "hastack:nas:NasBackups");
    const pair = one(d, "hastack:server:ServerPair");
    expect([pair.name, pair.parent]).to.deep.equal(["nas-pair", nas.urn]);
    expect(
      ofType(d, "aws:ec2/instance:Instance").map(
        (i) => (i.inputs.tags as Record<string, string>)["hastack:service"],
      ),
    ).to.deep.equal(["nas", "nas"]);
  });

  describe("invariant: the NAS is never reachable from 0.0.0.0/0", () => {
    it("compliant: no ingress rule or inline ingress names 0.0.0.0/0; SSH only from admins and the peer", () => {
      const rules = ofType(d, "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule");
      expect(rules.map((r) => r.inputs.cidrIpv4)).not.to.include("0.0.0.0/0");
      // SSH, and node_exporter for monitoring (ServerPair's ADMIN_PORTS): nothing else.
      expect(rules.map((r) => `${r.inputs.fromPort}-${r.inputs.toPort}`)).to.have.members([
        ...ADMIN.map(() => "22-22"),
        ...ADMIN.map(() => "9100-9100"),
        "22-22",
      ]);
      expect(rules.filter((r) => r.inputs.cidrIpv4).map((r) => r.inputs.cidrIpv4)).to.have.members([
        ...ADMIN,
        ...ADMIN,
      ]);
      for (const sg of ofType(d, "aws:ec2/securityGroup:SecurityGroup")) {
        for (const rule of (sg.inputs.ingress as { cidrBlocks?: string[] }[] | undefined) ?? []) {
          expect(rule.cidrBlocks ?? [], sg.name).not.to.include("0.0.0.0/0");
        }
      }
    });
    it("non-compliant admin input is refused before anything is declared", async () => {
      let error = "";
      await runUnderMocks(() => {
        const dns = new Dns("dns", { domain: "example.co.id", zoneName: "example.co.id" });
        try {
          new NasBackups("nas", {
            config: nasConfig(),
            ...testPlacement(dns),
            region: "ap-southeast-3",
            adminCidrs: ["0.0.0.0/0"],
            sources: {
              mailHostname: "mail",
              mysqlHostname: "db",
              pbxHostname: "pbx",
              databases: ["app"],
            },
          });
        } catch (e) {
          error = (e as Error).message;
        }
      });
      expect(error).to.contain("must not be open to 0.0.0.0/0");
    });
  });

  describe("invariant: backups are encrypted and the vault survives a stack mistake", () => {
    it("the vault is KMS-encrypted, protected and retained; so is its key (rotated)", () => {
      const vault = one(d, "aws:backup/vault:Vault");
      const key = one(d, "aws:kms/key:Key");
      expect([vault.protect, vault.retainOnDelete, key.protect, key.retainOnDelete]).to.deep.equal([
        true,
        true,
        true,
        true,
      ]);
      expect(vault.inputs.kmsKeyArn).to.be.a("string").and.not.equal("");
      expect(vault.inputs.forceDestroy).to.equal(false);
      expect(key.inputs.enableKeyRotation).to.equal(true);
    });
    it("every NAS volume is encrypted and the data volumes carry the backup tag", () => {
      const volumes = ofType(d, "aws:ebs/volume:Volume");
      expect(volumes).to.have.length(2);
      for (const v of volumes) {
        expect(v.inputs.encrypted).to.equal(true);
        expect((v.inputs.tags as Record<string, string>)["hastack:backup"]).to.equal("true");
        expect([v.protect, v.retainOnDelete]).to.deep.equal([true, true]);
      }
      for (const i of ofType(d, "aws:ec2/instance:Instance")) {
        expect((i.inputs.rootBlockDevice as { encrypted: boolean }).encrypted).to.equal(true);
      }
    });
  });

  describe("AWS Backup plan", () => {
    it("one rule to the vault with the configured schedule and retention", () => {
      const plan = one(d, "aws:backup/plan:Plan");
      const [rule] = plan.inputs.rules as Record<string, unknown>[];
      expect(rule.schedule).to.equal("cron(0 19 * * ? *)");
      expect(rule.lifecycle).to.deep.equal({ deleteAfter: 35 });
      expect(rule.targetVaultName).to.be.a("string");
    });
    it("retention and schedule follow config", async () => {
      const { d: custom } = await synth({
        awsBackup: { retentionDays: 90, schedule: "cron(0 20 * * ? *)" },
      });
      const [rule] = one(custom, "aws:backup/plan:Plan").inputs.rules as Record<string, unknown>[];
      expect(rule.lifecycle).to.deep.equal({ deleteAfter: 90 });
      expect(rule.schedule).to.equal("cron(0 20 * * ? *)");
    });
    it("selects by the tag hastack:backup=true with a role AWS Backup assumes", () => {
      const sel = one(d, "aws:backup/selection:Selection");
      expect(sel.inputs.selectionTags).to.deep.equal([
        { type: "STRINGEQUALS", key: "hastack:backup", value: "true" },
      ]);
      const role = ofType(d, "aws:iam/role:Role").find((r) => r.name === "nas-backup-role")!;
      expect(
        JSON.parse(role.inputs.assumeRolePolicy as string).Statement[0].Principal,
      ).to.deep.equal({
        Service: "backup.amazonaws.com",
      });
      const attached = ofType(d, "aws:iam/rolePolicyAttachment:RolePolicyAttachment").map(
        (a) => a.inputs.policyArn,
      );
      expect(attached).to.deep.equal([
        "arn:aws:iam::aws:policy/service-role/AWSBackupServiceRolePolicyForBackup",
        "arn:aws:iam::aws:policy/service-role/AWSBackupServiceRolePolicyForRestores",
      ]);
    });
  });

  describe("jobs", () => {
    it("outputs per service: schedule, retention, interval, RPO, target on the NAS", async () => {
      expect(outputs.jobs).to.deep.equal([
        {
          service: "mail",
          name: "mail-maildirs",
          schedule: "OnCalendar=*-*-* 00:00:00",
          intervalHours: 24,
          retentionDays: 14,
          rpoSeconds: 86400,
          target: `nas.example.co.id:${BACKUP_ROOT}/mail-maildirs`,
        },
        {
          service: "mysql",
          name: "mysql-dump",
          schedule: "OnCalendar=*-*-* 00/6:00:00",
          intervalHours: 6,
          retentionDays: 30,
          rpoSeconds: 21600,
          target: `nas.example.co.id:${BACKUP_ROOT}/mysql-dump`,
        },
        // FreePBX's replicated set (components/pbx-replicated-set.ts, issue 16).
        ...[
          "pbx-config",
          "pbx-spool",
          "pbx-lib",
          "pbx-provisioning",
          "pbx-webroot",
          "pbx-copies",
        ].map((name) => ({
          service: "pbx",
          name,
          schedule: "OnCalendar=*-*-* 00:00:00",
          intervalHours: 24,
          retentionDays: 30,
          rpoSeconds: 86400,
          target: `nas.example.co.id:${BACKUP_ROOT}/${name}`,
        })),
      ]);
      expect(outputs.hosts).to.deep.equal({
        primary: "nas1.example.co.id",
        standby: "nas2.example.co.id",
      });
      expect(outputs.backupRoot).to.equal(BACKUP_ROOT);
      const ip = (o: unknown) =>
        new Promise((res) => (o as { apply: (f: (v: unknown) => void) => void }).apply(res));
      const [primary, standby] = await Promise.all([
        ip(outputs.endpoints.primary),
        ip(outputs.endpoints.standby),
      ]);
      expect(primary).to.match(/^\d+\.\d+\.\d+\.\d+$/);
      expect(standby).to.match(/^\d+\.\d+\.\d+\.\d+$/);
      expect(primary).not.to.equal(standby);
    });
    it("retention and interval per job come from config, into the outputs and the NAS's job files", async () => {
      const { d: custom, outputs: o } = await synth({
        retentionDays: { mail: 7, mysql: 60, pbx: 90 },
        intervalHours: { mail: 12, mysql: 1, pbx: 48 },
      });
      expect(o.jobs.map((j) => [j.name, j.intervalHours, j.retentionDays])).to.deep.equal([
        ["mail-maildirs", 12, 7],
        ["mysql-dump", 1, 60],
        ...["config", "spool", "lib", "provisioning", "webroot", "copies"].map((k) => [
          `pbx-${k}`,
          48,
          90,
        ]),
      ]);
      const userData = userDataOf(ofType(custom, "aws:ec2/instance:Instance")[0]);
      expect(userData).to.contain("RETENTION_DAYS=60");
      expect(userData).to.contain("OnCalendar=*-*-* 00/1:00:00");
      expect(userData).to.contain("OnUnitActiveSec=2880min");
    });
  });

  describe("secrets", () => {
    it("the dump password and the NAS private key are SecureStrings with secret values", () => {
      const params = ofType(d, "aws:ssm/parameter:Parameter");
      const byName = (n: string) => params.find((p) => p.inputs.name === n)!;
      for (const n of [
        "/hastack/nas/mysql-backup-password",
        "/hastack/mysql/backup-user-password",
        "/hastack/nas/ssh-private-key",
      ]) {
        expect(byName(n).inputs.type, n).to.equal("SecureString");
        expect(byName(n).inputs.value, n).to.equal("[secret]");
      }
      // The public half goes where the mail and PBX servers (and the other NAS) read it.
      for (const n of [
        "/hastack/nas/ssh-public-key",
        "/hastack/mail/nas-backup-ssh-public-key",
        "/hastack/pbx/nas-backup-ssh-public-key",
      ]) {
        expect(byName(n).inputs.type, n).to.equal("String");
      }
    });
    it("user-data names parameters, never values", () => {
      for (const i of ofType(d, "aws:ec2/instance:Instance")) {
        const ud = userDataOf(i);
        expect(ud).to.contain("/hastack/nas/mysql-backup-password");
        expect(ud).not.to.contain("PRIVATE KEY");
        expect(ud).not.to.match(/password=[^%\s]/);
      }
    });
  });

  it("a NAS failover flip changes only switch resources", async () => {
    const { d: flipped } = await synth({ active: "standby" });
    const changed = diffDeployments(d, flipped);
    expect(changed.length).to.be.greaterThan(0);
    expect([...new Set(changed.map((c) => c.type))]).to.deep.equal(["aws:route53/record:Record"]);
  });
});

describe("NAS cloud-init part", function () {
  this.timeout(180_000);
  const jobs = backupJobs({
    domain: "example.co.id",
    hostnames: { mail: "mail", mysql: "db", pbx: "pbx" },
    intervalHours: { mail: 24, mysql: 6, pbx: 24 },
    retentionDays: { mail: 14, mysql: 30, pbx: 30 },
    databases: ["asteriskcdrdb", "app"],
  });
  const parts = nasCloudConfigParts({
    hostname: "nas1",
    fqdn: "nas1.example.co.id",
    serviceName: "nas.example.co.id",
    peer: "nas2.example.co.id",
    peerSide: "standby",
    region: "ap-southeast-3",
    ssmPrefix: "/hastack/nas",
    jobs,
  });

  it("passes `cloud-init schema` once rendered by ServerPair", () => {
    expectValidCloudConfig(renderCloudConfig(parts));
  });

  it("one env file and timer per job, replication to the other NAS, all timers enabled", () => {
    const paths = parts.writeFiles!.map((f) => f.path);
    for (const j of jobs) {
      expect(paths).to.include(`/etc/hastack/backup/${j.name}.env`);
      expect(paths).to.include(`/etc/systemd/system/hastack-backup-${j.name}.timer`);
    }
    const replicate = parts.writeFiles!.find(
      (f) => f.path === "/etc/hastack/backup/replicate.env",
    )!;
    expect(replicate.content).to.contain("PEER=nas2.example.co.id");
    const enable = (parts.runcmd ?? []).find(
      (c) => Array.isArray(c) && c.includes("enable"),
    ) as string[];
    expect(enable).to.include.members([
      ...jobs.map((j) => `hastack-backup-${j.name}.timer`),
      "hastack-nas-replicate.timer",
    ]);
  });

  it("fits EC2's 16 KiB user-data limit once gzipped (cloud-init reads gzip user-data)", () => {
    // Uncompressed it does not fit (the scripts are whole): ServerPair must send it gzipped.
    const text = renderCloudConfig({
      ...parts,
      healthAgent: { servicePort: 22, failureThreshold: 3 },
    });
    expect(zlib.gzipSync(text).length).to.be.lessThan(16 * 1024);
    expect(zlib.gunzipSync(zlib.gzipSync(text)).toString()).to.equal(text);
  });

  it("jobOutputs uses the monotonic schedule for intervals that do not divide a day", () => {
    const out = jobOutputs([{ ...jobs[0], intervalHours: 5 }], "nas.example.co.id");
    expect(out[0].schedule).to.equal("OnBootSec=15min OnUnitActiveSec=300min");
  });
});
