// PbxPair under the SDK mocks: the resources it declares, read like policies (cdk-nag style):
// SIP/RTP never open to the world, admin ports only from admin CIDRs, SRV values well-formed,
// the CDR password secret end to end, the alarm where Route 53's metrics are, and a flip of
// `active` touching only the switch.
import { expect } from "chai";
import { ofType, userDataOf } from "../support/deployment-queries";
import { testPlacement } from "../support/placement";
import { Dns } from "../../components/dns";
import { PbxPair, PbxPairArgs } from "../../components/pbx";
import * as pulumi from "@pulumi/pulumi";
import { ComponentArgsError, ServiceSummary } from "../../components/server-pair";
import { stackConfigSchema } from "../../lib/config/stack-config";
import {
  FREEPBX_CDR_DB_USER,
  FREEPBX_CDR_PASSWORD_FILE,
  PBX_ACTIVATE_REMOTE_COMMAND,
  PBX_FREEPBX_DB_PATH,
  PBX_FREEPBX_DB_UNIT,
  renderFreepbxDbUnit,
} from "../../components/pbx";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { requireTools, run } from "../../lib/rehearse/backup";
import { replicatedSet, syncPlan } from "../../components/pbx-replicated-set";
import {
  Deployment,
  SynthResource,
  diffDeployments,
  runUnderMocks,
} from "../../lib/synth/offline-synth";

const ADMIN = ["203.0.113.10/32", "198.51.100.64/29"];
const OFFICE = ["203.0.113.0/27"];
const TRUNK = ["198.51.100.200/29"];
const INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule";

function pbxConfig(over: Record<string, unknown> = {}) {
  return stackConfigSchema.shape.pbx.parse({ active: "primary", sipTrunkCidrs: TRUNK, ...over });
}

async function synth(
  over: Partial<PbxPairArgs> = {},
  cfg: Record<string, unknown> = {},
): Promise<{ d: Deployment; summary: ServiceSummary; pbx: PbxPair }> {
  let summary: ServiceSummary | undefined;
  let made: PbxPair | undefined;
  const d = await runUnderMocks(() => {
    const dns = new Dns("dns", { domain: "example.co.id", zoneName: "example.co.id" });
    const pbx = new PbxPair("pbx", {
      config: pbxConfig(cfg),
      ...testPlacement(dns),
      region: "ap-southeast-3",
      adminCidrs: ADMIN,
      officeCidrs: OFFICE,
      databaseEndpoint: "db.example.co.id",
      backupClientSecurityGroupIds: ["sg-0nas000000000000"],
      ...over,
    });
    summary = pbx.summary;
    made = pbx;
  });
  return { d, summary: summary!, pbx: made! };
}

const ports = (r: SynthResource): string =>
  `${r.inputs.ipProtocol} ${r.inputs.fromPort}-${r.inputs.toPort}`;

describe("PbxPair argument checks: every problem named, thrown once as a RunError", function () {
  this.timeout(180_000);
  it("non-compliant: a bad port, an inverted RTP range and a bad endpoint are all listed", async () => {
    let err: unknown;
    try {
      // The schema refuses an inverted range; the component must too (args can come from code).
      await synth({
        databasePort: 0,
        databaseEndpoint: "db example",
        config: { ...pbxConfig(), rtpPorts: { from: 20000, to: 10000 } },
      });
    } catch (e) {
      err = e;
    }
    expect(pulumi.RunError.isInstance(err as Error)).to.equal(true);
    expect((err as ComponentArgsError).errors.map((e) => e.propertyPath)).to.deep.equal([
      "databasePort",
      "config.rtpPorts",
      "databaseEndpoint",
    ]);
    expect((err as Error).message).to.contain(
      "  - config.rtpPorts: must be a range of unprivileged UDP ports with from <= to, got 20000-10000",
    );
  });
});

describe("PbxPair", function () {
  this.timeout(180_000);
  let d: Deployment;
  let summary: ServiceSummary;
  before(async () => ({ d, summary } = await synth()));

  it("is a hastack:pbx:PbxPair holding a ServerPair with two servers", () => {
    const pbx = ofType(d, "hastack:pbx:PbxPair");
    expect(pbx.map((r) => r.name)).to.deep.equal(["pbx"]);
    const pair = ofType(d, "hastack:server:ServerPair");
    expect(pair.map((r) => [r.name, r.parent])).to.deep.equal([["pbx-pair", pbx[0].urn]]);
    expect(ofType(d, "aws:ec2/instance:Instance").map((r) => r.name)).to.deep.equal([
      "pbx-pair-primary",
      "pbx-pair-standby",
    ]);
  });

  describe("invariant: SIP and RTP are never open to 0.0.0.0/0", () => {
    it("compliant: every SIP/RTP rule has a trunk or office CIDR as source", () => {
      const voice = ofType(d, INGRESS).filter((r) =>
        [5060, 5061, 10000].includes(r.inputs.fromPort as number),
      );
      expect(voice.length).to.equal(4 * (TRUNK.length + OFFICE.length));
      for (const r of voice) {
        expect([...TRUNK, ...OFFICE], ports(r)).to.include(r.inputs.cidrIpv4);
      }
      expect(ofType(d, INGRESS).map((r) => r.inputs.cidrIpv4)).not.to.include("0.0.0.0/0");
    });
    it("RTP is UDP only, the configured range", () => {
      const rtp = ofType(d, INGRESS).filter((r) => r.inputs.fromPort === 10000);
      expect(new Set(rtp.map(ports))).to.deep.equal(new Set(["udp 10000-20000"]));
    });
    it("a custom RTP range is what the group opens", async () => {
      const { d: custom } = await synth({}, { rtpPorts: { from: 16384, to: 16482 } });
      const rtp = ofType(custom, INGRESS).filter((r) => r.inputs.fromPort === 16384);
      expect(new Set(rtp.map(ports))).to.deep.equal(new Set(["udp 16384-16482"]));
    });
    it("non-compliant input (no trunk, no office) opens nothing instead of the world", async () => {
      const { d: closed } = await synth({ officeCidrs: [] }, { sipTrunkCidrs: [] });
      const voice = ofType(closed, INGRESS).filter((r) =>
        [5060, 5061, 10000].includes(r.inputs.fromPort as number),
      );
      expect(voice).to.deep.equal([]);
    });
  });

  describe("invariant: SSH only from admin CIDRs; web UI and AMI closed (SSH tunnel only)", () => {
    it("compliant: 22 once per admin CIDR; 80, 443 and 5038 open to nobody", () => {
      for (const port of [80, 443, 5038]) {
        const rules = ofType(d, INGRESS).filter((r) => r.inputs.fromPort === port);
        expect(rules, `port ${port}`).to.deep.equal([]);
      }
      const ssh = ofType(d, INGRESS).filter((r) => r.inputs.fromPort === 22);
      // admin CIDRs, the peer PBX and the NAS's security group — never a CIDR beyond the admins'.
      expect(
        ssh
          .filter((r) => r.inputs.cidrIpv4)
          .map((r) => r.inputs.cidrIpv4)
          .sort(),
      ).to.deep.equal([...ADMIN].sort());
      expect(ssh.filter((r) => r.inputs.referencedSecurityGroupId).length).to.equal(2);
    });
  });

  it("DNS: A records pbx1, pbx2 and pbx (the service EIP), SRV _sip._udp, _sip._tcp, _sips._tcp", () => {
    const records = ofType(d, "aws:route53/record:Record").map((r) => [
      r.inputs.type,
      r.inputs.name,
    ]);
    expect(records).to.deep.include.members([
      ["A", "pbx1.example.co.id"],
      ["A", "pbx2.example.co.id"],
      ["A", "pbx.example.co.id"],
      ["SRV", "_sip._udp.example.co.id"],
      ["SRV", "_sip._tcp.example.co.id"],
      ["SRV", "_sips._tcp.example.co.id"],
    ]);
    const srv = ofType(d, "aws:route53/record:Record").filter((r) => r.inputs.type === "SRV");
    for (const r of srv) {
      expect(r.inputs.records, r.inputs.name as string).to.have.length(1);
      expect((r.inputs.records as string[])[0]).to.match(
        /^\d+ \d+ (5060|5061) pbx\.example\.co\.id$/,
      );
    }
  });

  it("switches by Elastic IP by default (phones and trunks register to an address)", () => {
    expect(ofType(d, "aws:ec2/eipAssociation:EipAssociation")).to.have.length(1);
    expect(summary.switchover).to.equal("eip");
  });

  it("health check TCP 5060, alarmed in us-east-1 where Route 53 publishes its metrics", () => {
    const hc = ofType(d, "aws:route53/healthCheck:HealthCheck");
    expect(hc.map((r) => [r.inputs.type, r.inputs.port])).to.deep.equal([
      ["TCP", 5060],
      ["TCP", 5060],
    ]);
    const providers = ofType(d, "pulumi:providers:aws");
    expect(providers.map((p) => p.inputs.region)).to.deep.equal(["us-east-1"]);
    const alarms = ofType(d, "aws:cloudwatch/metricAlarm:MetricAlarm");
    expect(alarms.map((a) => a.name)).to.deep.equal([
      "pbx-primary-health-alarm",
      "pbx-standby-health-alarm",
    ]);
    for (const a of alarms) {
      expect(a.inputs).to.include({
        namespace: "AWS/Route53",
        metricName: "HealthCheckStatus",
        comparisonOperator: "LessThanThreshold",
        threshold: 1,
        treatMissingData: "breaching",
      });
      expect(a.inputs.dimensions).to.have.property("HealthCheckId");
    }
  });

  it("the CDR password is a RandomPassword, delivered only as an SSM SecureString", () => {
    expect(ofType(d, "random:index/randomPassword:RandomPassword").map((r) => r.name)).to.include(
      "pbx-cdr-db-password",
    );
    const param = ofType(d, "aws:ssm/parameter:Parameter").find(
      (p) => p.inputs.name === "/hastack/pbx/cdr-db-password",
    )!;
    expect(param.inputs.type).to.equal("SecureString");
    expect(param.inputs.value).to.equal("[secret]");
    const forMysql = ofType(d, "aws:ssm/parameter:Parameter").find(
      (p) => p.inputs.name === "/hastack/mysql/cdr-user-password",
    )!;
    expect([forMysql.inputs.type, forMysql.inputs.value]).to.deep.equal([
      "SecureString",
      "[secret]",
    ]);
    const keyParam = ofType(d, "aws:ssm/parameter:Parameter").find(
      (p) => p.inputs.name === "/hastack/pbx/sync-ssh-private-key",
    )!;
    expect(keyParam.inputs.type).to.equal("SecureString");
    for (const i of ofType(d, "aws:ec2/instance:Instance")) {
      expect(userDataOf(i)).to.contain("/hastack/pbx/cdr-db-password");
      expect(userDataOf(i)).not.to.contain("PRIVATE KEY");
    }
  });

  it("the sync key is an ed25519 key whose private half is secret everywhere", () => {
    // Besides the servers' own host keys (ServerPair, issue 13).
    const keys = ofType(d, "tls:index/privateKey:PrivateKey").filter(
      (k) => !k.name.endsWith("-host-key"),
    );
    expect(keys.map((k) => [k.name, k.inputs.algorithm])).to.deep.equal([
      ["pbx-sync-key", "ED25519"],
    ]);
    const privateParam = d.deployment.resources.find((r) => r.name === "pbx-sync-key-private")!;
    expect(privateParam.inputs.type).to.equal("SecureString");
    expect(privateParam.inputs.value).to.equal("[secret]");
    const publicParam = d.deployment.resources.find((r) => r.name === "pbx-sync-key-public")!;
    // aws.ssm.Parameter marks every value secret; the public half is a plain String parameter.
    expect(publicParam.inputs.type).to.equal("String");
    expect(JSON.stringify(d)).not.to.contain("BEGIN OPENSSH PRIVATE KEY");
  });

  it("user-data points CDRs at the database endpoint and syncs to the other server", () => {
    const [primary, standby] = ofType(d, "aws:ec2/instance:Instance").map(userDataOf);
    expect(primary).to.contain("Server = db.example.co.id");
    expect(primary).to.contain("PEER=pbx2.example.co.id");
    expect(standby).to.contain("PEER=pbx1.example.co.id");
  });

  it("summary: RPO is the sync interval, RTO the switch plus phone re-registration", async () => {
    expect(summary.rpoSeconds).to.equal(15 * 60);
    const { summary: five } = await synth({}, { syncIntervalMinutes: 5 });
    expect(five.rpoSeconds).to.equal(300);
    // eip: 3 × 10 s detection + 900 s operator + 30 s re-association + 300 s re-registration.
    expect(summary.rtoSeconds).to.equal(30 + 900 + 30 + 300);
  });

  it("a failover flip changes only the Elastic IP association", async () => {
    const { d: flipped } = await synth({}, { active: "standby" });
    const changes = diffDeployments(d, flipped);
    expect(changes.map((c) => [c.type, c.op])).to.deep.equal([
      ["aws:ec2/eipAssociation:EipAssociation", "update"],
    ]);
  });
});

describe("PbxPair: the replicated set, FreePBX's database and the switch (issue 16)", function () {
  this.timeout(180_000);
  const KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nstub\n-----END OPENSSH PRIVATE KEY-----\n";
  const INTERNAL_DB = "db.internal.example.co.id";
  let d: Deployment;
  let pbx: PbxPair;
  before(async () => {
    ({ d, pbx } = await synth({ databaseEndpoint: INTERNAL_DB, sshPrivateKey: KEY }));
  });
  const activations = (dep: Deployment): SynthResource[] =>
    ofType(dep, "command:remote:Command").filter((r) => r.name.startsWith("pbx-activate-"));

  it("FreePBX's config and the CDR DSN point at the MySQL pair's internal name", () => {
    for (const userData of ofType(d, "aws:ec2/instance:Instance").map(userDataOf)) {
      expect(userData).to.contain(`$amp_conf['AMPDBHOST'] = '${INTERNAL_DB}';`);
      expect(userData).to.contain("$amp_conf['AMPDBNAME'] = 'asterisk';");
      expect(userData).to.contain(`Server = ${INTERNAL_DB}`);
      expect(userData).to.contain("DB_HOST=db.internal.example.co.id");
      expect(userData).to.contain("/usr/local/sbin/hastack-pbx-freepbx-db");
    }
  });

  it("FreePBX's CDR reports read the CDR database by the internal name with their own read-only account", async () => {
    for (const userData of ofType(d, "aws:ec2/instance:Instance").map(userDataOf)) {
      expect(userData).to.contain(`$amp_conf['CDRDBHOST'] = '${INTERNAL_DB}';`);
      expect(userData).to.contain("$amp_conf['CDRDBNAME'] = 'asteriskcdrdb';");
      expect(userData).to.contain(`$amp_conf['CDRDBUSER'] = '${FREEPBX_CDR_DB_USER}';`);
      expect(userData).to.contain(
        `$amp_conf['CDRDBPASS'] = trim(file_get_contents('${FREEPBX_CDR_PASSWORD_FILE}'));`,
      );
      expect(userData).to.contain("CDR_PASSWORD_PARAMETER=/hastack/pbx/freepbx-cdr-db-password");
      expect(userData).not.to.match(/CDRDBPASS'\] = '[A-Za-z0-9]/);
    }
    // The account the MySQL pair creates for them: SELECT on the CDR database only.
    const account = pbx.freepbxCdrDbAccount!;
    expect([account.user, account.database, account.privileges]).to.deep.equal([
      FREEPBX_CDR_DB_USER,
      "asteriskcdrdb",
      "SELECT",
    ]);
    expect(ofType(d, "random:index/randomPassword:RandomPassword").map((r) => r.name)).to.include(
      "pbx-freepbx-cdr-db-password",
    );
  });

  it("FreePBX's database setup is a unit retried until the pair's account answers, not a one-shot runcmd", async () => {
    const userData = userDataOf(ofType(d, "aws:ec2/instance:Instance")[0]);
    expect(userData).to.contain(`/etc/systemd/system/${PBX_FREEPBX_DB_UNIT}`);
    // runcmd: `systemctl enable --now --no-block <unit>` (YAML list items).
    expect(userData).to.match(/--no-block\W+hastack-pbx-freepbx-db\.service/);
    expect(userData).not.to.match(/-\s+\/usr\/local\/sbin\/hastack-pbx-freepbx-db\b/);
    const unit = renderFreepbxDbUnit().content;
    expect(unit).to.match(/^Restart=on-failure$/m);
    expect(unit).to.match(/^StartLimitIntervalSec=0$/m);
    // systemd's own reading of the unit (the script path must exist for verify).
    requireTools({ "systemd-analyze": "systemd" });
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "hastack-freepbx-unit-"));
    try {
      const script = path.join(dir, "hastack-pbx-freepbx-db");
      fs.writeFileSync(script, "#!/bin/sh\n", { mode: 0o755 });
      const file = path.join(dir, PBX_FREEPBX_DB_UNIT);
      fs.writeFileSync(file, unit.replace(PBX_FREEPBX_DB_PATH, script));
      const r = await run("systemd-analyze", ["verify", "--man=no", file], {
        deadline: Date.now() + 60_000,
      });
      expect(r.code, r.stderr).to.equal(0);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("only the primary may adopt a local FreePBX database into the empty schema", () => {
    const [primary, standby] = ofType(d, "aws:ec2/instance:Instance").map(userDataOf);
    expect(primary).to.contain("ADOPT_LOCAL=yes");
    expect(standby).to.contain("ADOPT_LOCAL=no");
  });

  it("FreePBX's password is a RandomPassword delivered only as a SecureString under the pair's prefix", () => {
    const params = ofType(d, "aws:ssm/parameter:Parameter").filter((p) =>
      String(p.inputs.name).includes("freepbx"),
    );
    expect(params.map((p) => [p.inputs.name, p.inputs.type])).to.deep.equal([
      ["/hastack/pbx/freepbx-db-password", "SecureString"],
      ["/hastack/pbx/freepbx-cdr-db-password", "SecureString"],
    ]);
    expect(ofType(d, "random:index/randomPassword:RandomPassword").map((r) => r.name)).to.include(
      "pbx-freepbx-db-password",
    );
    for (const userData of ofType(d, "aws:ec2/instance:Instance").map(userDataOf)) {
      expect(userData).to.contain("PASSWORD_PARAMETER=/hastack/pbx/freepbx-db-password");
      expect(userData).not.to.match(/AMPDBPASS'\] = '[A-Za-z0-9]/);
    }
  });

  it("the sync env in user-data carries exactly the table's paths, excludes and copies", () => {
    const plan = syncPlan(replicatedSet("freepbx"));
    const userData = userDataOf(ofType(d, "aws:ec2/instance:Instance")[0]);
    const env = (name: string): string => {
      const m = new RegExp(`^\\s*${name}=(.*)$`, "m").exec(userData);
      expect(m, name).to.not.equal(null);
      return m![1].replace(/^'|'$/g, "");
    };
    expect(env("SYNC_PATHS").split(" ")).to.deep.equal(plan.paths);
    expect(env("EXCLUDES").split(" ")).to.deep.equal(plan.excludes);
    expect(env("SQLITE_FILES")).to.equal(plan.sqlite.join(" "));
    expect(userData).to.contain("/usr/local/sbin/hastack-pbx-sqlite-copy");
  });

  it("plain Asterisk: no FreePBX database, account or reload", async () => {
    const { d: plain } = await synth(
      { databaseEndpoint: INTERNAL_DB, sshPrivateKey: KEY },
      { flavour: "asterisk" },
    );
    expect(JSON.stringify(plain)).not.to.contain("freepbx-db");
    const userData = userDataOf(ofType(plain, "aws:ec2/instance:Instance")[0]);
    expect(userData).to.contain("FLAVOUR=asterisk");
    expect(userData).not.to.contain("AMPDBHOST");
  });

  describe("invariant: the address moves only after the new server is activated", () => {
    it("compliant: the activation runs on the active side only, and the EIP association waits for it", () => {
      const cmds = activations(d);
      expect(cmds.map((c) => [c.name, c.inputs.create ?? null])).to.deep.equal([
        [
          "pbx-activate-primary",
          `cloud-init status --wait >/dev/null 2>&1; sudo -n ${PBX_ACTIVATE_REMOTE_COMMAND}`,
        ],
        ["pbx-activate-standby", null],
      ]);
      const [assoc] = ofType(d, "aws:ec2/eipAssociation:EipAssociation");
      expect([...(assoc.dependsOn ?? [])].sort()).to.deep.equal(cmds.map((c) => c.urn).sort());
    });
    it("a failover flip changes the EIP association and the activations, nothing else", async () => {
      const { d: flipped } = await synth(
        { databaseEndpoint: INTERNAL_DB, sshPrivateKey: KEY },
        { active: "standby" },
      );
      const changes = diffDeployments(d, flipped);
      expect(changes.map((c) => [c.type, c.urn.split("::").pop(), c.op]).sort()).to.deep.equal(
        [
          ["aws:ec2/eipAssociation:EipAssociation", "pbx-pair-service-eip-assoc", "update"],
          ["command:remote:Command", "pbx-activate-primary", "update"],
          ["command:remote:Command", "pbx-activate-standby", "update"],
        ].sort(),
      );
      const standby = activations(flipped).find((c) => c.name === "pbx-activate-standby")!;
      expect(standby.inputs.create).to.contain(PBX_ACTIVATE_REMOTE_COMMAND);
      // The script travels on stdin with its env (servers older than it lack both on disk).
      expect(standby.inputs.stdin).to.contain("FLAVOUR=freepbx");
      expect(standby.inputs.stdin).to.contain("fwconsole");
    });
    it("non-compliant setup (no SSH key): no command, a warning says what to run by hand", async () => {
      const { d: noKey } = await synth({ databaseEndpoint: INTERNAL_DB });
      expect(activations(noKey)).to.deep.equal([]);
    });
  });
});
