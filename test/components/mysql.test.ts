// MysqlPair under the SDK mock runtime: what it declares, the invariants a reviewer relies on
// (a flip touches only commands and switch resources; the password is secret everywhere; 3306
// is never open to the world) each with a compliant and a non-compliant case, and its
// user-data checked by the real `cloud-init schema`.
import { expect } from "chai";
import { ofType } from "../support/deployment-queries";
import { expectValidCloudConfig } from "../support/cloud-init";
import { testPlacement } from "../support/placement";
import * as pulumi from "@pulumi/pulumi";
import * as aws from "@pulumi/aws";
import { Dns } from "../../components/dns";
import {
  MysqlPair,
  MysqlPairArgs,
  MysqlSummary,
  checkMysqlPairArgs,
  mysqlCloudConfigParts,
  mysqlServicePorts,
  ROLE_STEPS,
  flipScripts,
} from "../../components/mysql";
import { mysqlSettings, remoteShell, renderScript } from "../../components/mysql-scripts";
import {
  IngressRule,
  ingressRules,
  renderCloudConfig,
  userDataInputs,
} from "../../components/server-pair";
import {
  Deployment,
  SynthResource,
  diffDeployments,
  runUnderMocks,
} from "../../lib/synth/offline-synth";
import { MysqlConfig, stackConfigSchema } from "../../lib/config/stack-config";

const SSH_KEY =
  "-----BEGIN OPENSSH PRIVATE KEY-----\nhastack-test-key-material\n-----END OPENSSH PRIVATE KEY-----";
const CDR_PASSWORD = "cdrTestPassword0123456789";
const COMMAND = "command:remote:Command";

function mysqlConfig(raw: Record<string, unknown> = {}): MysqlConfig {
  return stackConfigSchema.shape.mysql.parse({ active: "primary", ...raw });
}

interface SynthOptions {
  config?: Record<string, unknown>;
  args?: Partial<Omit<MysqlPairArgs, "clientCidr">>;
  /** Client security groups: "pbx" declares one. Defaults to ["pbx"]. */
  clients?: "pbx"[];
}

async function synthMysql(o: SynthOptions = {}): Promise<{ d: Deployment; summary: MysqlSummary }> {
  let summary: MysqlSummary | undefined;
  const d = await runUnderMocks(async () => {
    const dns = new Dns("dns", { domain: "example.co.id", zoneId: "Z0123456789ABC" });
    const clients = (o.clients ?? ["pbx"]).map(
      (c) => new aws.ec2.SecurityGroup(`${c}-sg`, { vpcId: "vpc-0123456789abcdef0" }).id,
    );
    const db = new MysqlPair("mysql", {
      config: mysqlConfig(o.config),
      ...testPlacement(dns),
      region: "ap-southeast-3",
      adminCidrs: ["203.0.113.10/32"],
      clientSecurityGroupIds: clients,
      clientCidr: "10.20.0.0/16",
      accounts: [
        { user: "asteriskcdr", database: "asteriskcdrdb", password: pulumi.secret(CDR_PASSWORD) },
      ],
      sshPrivateKey: pulumi.secret(SSH_KEY),
      ...o.args,
    });
    summary = db.summary;
    return { mysql: db.summary };
  });
  const outputs = d.deployment.resources.find((r) => r.type === "pulumi:pulumi:Stack")!.outputs!;
  return { d, summary: { ...(outputs.mysql as MysqlSummary), engine: summary!.engine } };
}

const named = (d: Deployment, name: string): SynthResource => {
  const r = d.deployment.resources.find((x) => x.name === name);
  if (!r) {
    throw new Error(
      `no resource ${name}; have ${d.deployment.resources.map((x) => x.name).join(", ")}`,
    );
  }
  return r;
};

describe("MysqlPair: what it declares", () => {
  let d: Deployment;
  before(async () => {
    ({ d } = await synthMysql());
  });

  it("is one hastack:mysql:MysqlPair holding a ServerPair, the password, its SSM parameters and commands", () => {
    const top = named(d, "mysql");
    expect(top.type).to.equal("hastack:mysql:MysqlPair");
    const children = d.deployment.resources.filter((r) => r.parent === top.urn);
    expect(children.map((r) => `${r.type} ${r.name}`).sort()).to.deep.equal(
      [
        "aws:ssm/parameter:Parameter mysql-active-side",
        "aws:ssm/parameter:Parameter mysql-replication-password",
        `${COMMAND} mysql-bootstrap`,
        `${COMMAND} mysql-failover`,
        `${COMMAND} mysql-fallback`,
        `${COMMAND} mysql-rejoin`,
        `${COMMAND} mysql-setup-primary`,
        `${COMMAND} mysql-setup-standby`,
        "hastack:server:ServerPair mysql-pair",
        "random:index/randomPassword:RandomPassword mysql-replication-password",
        // Issue 13: the pair's replication TLS (CA, server key and certificate) and its SSM copies.
        "aws:ssm/parameter:Parameter mysql-tls-ca",
        "aws:ssm/parameter:Parameter mysql-tls-cert",
        "aws:ssm/parameter:Parameter mysql-tls-key",
        "tls:index/privateKey:PrivateKey mysql-tls-ca",
        "tls:index/selfSignedCert:SelfSignedCert mysql-tls-ca",
        "tls:index/privateKey:PrivateKey mysql-tls-server",
        "tls:index/certRequest:CertRequest mysql-tls-server",
        "tls:index/locallySignedCert:LocallySignedCert mysql-tls-server",
      ].sort(),
    );
    expect(ofType(d, "aws:ec2/instance:Instance")).to.have.length(2);
  });

  it("hands the pair's TLS material to the servers as SSM SecureStrings under /hastack/mysql", () => {
    const of = (type: string, name: string): SynthResource =>
      d.deployment.resources.find((r) => r.type === type && r.name === name)!;
    for (const suffix of ["ca", "cert", "key"]) {
      expect(of("aws:ssm/parameter:Parameter", `mysql-tls-${suffix}`).inputs).to.include({
        name: `/hastack/mysql/tls-${suffix}`,
        type: "SecureString",
      });
    }
    expect(of("tls:index/selfSignedCert:SelfSignedCert", "mysql-tls-ca").inputs).to.include({
      isCaCertificate: true,
    });
  });

  it("keeps the replication password alphanumeric, in an SSM SecureString under /hastack/mysql", () => {
    expect(named(d, "mysql-replication-password").inputs).to.include({
      length: 32,
      special: false,
    });
    const params = ofType(d, "aws:ssm/parameter:Parameter").filter((r) =>
      r.name.startsWith("mysql-"),
    );
    const pw = params.find((p) => p.name === "mysql-replication-password")!;
    expect(pw.inputs).to.include({
      name: "/hastack/mysql/replication-password",
      type: "SecureString",
      value: "[secret]",
    });
    const active = params.find((p) => p.name === "mysql-active-side")!;
    expect(active.inputs).to.include({
      name: "/hastack/mysql/active-side",
      type: "String",
      insecureValue: "primary",
    });
  });

  it("runs every script the same way: constant command text, the script on stdin, parameters in a secret environment", () => {
    const settings = mysqlSettings(mysqlConfig(), [
      { user: "asteriskcdr", database: "asteriskcdrdb" },
    ]);
    const scripts: Record<string, string> = {
      "mysql-setup-primary": "setup",
      "mysql-setup-standby": "setup",
      "mysql-bootstrap": "bootstrap",
      "mysql-fallback": "fallback",
      "mysql-rejoin": "rejoin",
    };
    for (const [name, script] of Object.entries(scripts)) {
      const c = named(d, name).inputs;
      expect(c.create, name).to.equal(
        `cloud-init status --wait >/dev/null 2>&1; ${remoteShell(1)}`,
      );
      expect(c.stdin, name).to.equal(renderScript(script as "setup", settings));
      expect(c.environment, name).to.equal("[secret]");
      expect(c.connection, name).to.equal("[secret]");
    }
  });

  it("while active=primary the failover command runs nothing (no create: the provider never dials)", () => {
    const c = named(d, "mysql-failover").inputs;
    expect(c.create).to.equal(undefined);
    expect(c.stdin).to.equal(undefined);
  });

  it("orders the commands: setup on both, bootstrap, then the role steps", () => {
    expect(ROLE_STEPS.map((s) => `${s.key}<-${s.after.join("+")}`)).to.deep.equal([
      "setup-primary<-",
      "setup-standby<-",
      "bootstrap<-setup-primary+setup-standby",
      "failover<-bootstrap",
      "fallback<-bootstrap",
      "rejoin<-fallback",
    ]);
    expect(flipScripts("standby")).to.deep.equal(["failover@standby"]);
    expect(flipScripts("primary")).to.deep.equal(["fallback@primary", "rejoin@standby"]);
  });

  it("names db.<domain> as the endpoint, with failover records following the active side", () => {
    const records = ofType(d, "aws:route53/record:Record").filter(
      (r) => r.inputs.name === "db.example.co.id",
    );
    expect(records.map((r) => r.inputs.failoverRoutingPolicies)).to.have.length(2);
    expect(records.map((r) => r.inputs.setIdentifier).sort()).to.deep.equal([
      "mysql-primary",
      "mysql-secondary",
    ]);
  });

  it("moves the endpoint only after the role steps: failover records depend on them", () => {
    const roleSteps = ofType(d, COMMAND)
      .filter((c) => ["mysql-failover", "mysql-fallback", "mysql-rejoin"].includes(c.name))
      .map((c) => c.urn)
      .sort();
    expect(roleSteps).to.have.length(3);
    const records = ofType(d, "aws:route53/record:Record").filter((r) =>
      /-failover-(primary|secondary)$/.test(r.name),
    );
    expect(records).to.have.length(2); // this Dns has no private zone: the public pair
    for (const r of records) {
      expect([...(r.dependsOn ?? [])].sort(), r.name).to.deep.equal(roleSteps);
    }
  });

  it("declares no command without an SSH key (the scripts are then run by hand)", async () => {
    const { d: noKey } = await synthMysql({ args: { sshPrivateKey: undefined } });
    expect(ofType(noKey, COMMAND)).to.deep.equal([]);
    expect(ofType(noKey, "aws:ec2/instance:Instance")).to.have.length(2);
    // The switch is still declared, with nothing to wait for.
    const records = ofType(noKey, "aws:route53/record:Record").filter((r) =>
      /-failover-(primary|secondary)$/.test(r.name),
    );
    expect(records.map((r) => r.dependsOn)).to.deep.equal(records.map(() => undefined));
    expect(records.length).to.be.greaterThan(0);
  });
});

describe("MysqlPair: outputs", () => {
  it("semi-sync (default): replication semi-sync, RPO 0, RTO with the operator's flip and drain bound", async () => {
    const { summary } = await synthMysql();
    expect(summary).to.include({
      service: "mysql",
      activeSide: "primary",
      standbySide: "standby",
      switchover: "dns",
      dnsName: "db.example.co.id",
      endpoint: "db.example.co.id",
      engine: "mariadb",
      replication: "semi-sync",
      rpoSeconds: 0,
      // detection 3 × 10 s + TTL 30 (the default) + operator 900 + drain bound 30
      rtoSeconds: 30 + 30 + 900 + 30,
    });
    expect(summary.ports).to.deep.equal([
      { name: "mysql", port: 3306, protocol: "tcp", probe: "mysql" },
    ]);
  });

  it("async: RPO is the failover's lag bound", async () => {
    const { summary } = await synthMysql({
      config: { semiSync: false, maxFailoverLagSeconds: 45, engine: "mysql" },
    });
    expect(summary).to.include({ replication: "async", rpoSeconds: 45, engine: "mysql" });
  });
});

describe("invariant: a flip of hastack:mysql.active changes only commands and switch resources", () => {
  const ALLOWED = new Set([COMMAND, "aws:route53/record:Record", "aws:ssm/parameter:Parameter"]);
  let primary: Deployment;
  let standby: Deployment;
  before(async () => {
    primary = (await synthMysql()).d;
    standby = (await synthMysql({ config: { active: "standby" } })).d;
  });

  const updates = (a: Deployment, b: Deployment): string[] =>
    diffDeployments(a, b)
      .map((c) => `${c.op} ${c.urn.split("::").pop()} ${c.changedKeys.join(",")}`)
      .sort();

  it("failover (primary → standby): only updates — the role commands, the intent, the records", () => {
    expect(updates(primary, standby)).to.deep.equal(
      [
        "update mysql-active-side insecureValue",
        "update mysql-failover create,stdin,triggers",
        "update mysql-fallback create,stdin,triggers",
        "update mysql-pair-failover-primary healthCheckId,records",
        "update mysql-pair-failover-secondary healthCheckId,records",
        "update mysql-rejoin create,stdin,triggers",
      ].sort(),
    );
    for (const c of diffDeployments(primary, standby)) {
      expect(ALLOWED.has(c.type), `${c.op} ${c.urn}`).to.equal(true);
    }
    // What runs: the failover on the standby; the primary's commands lose their script.
    expect(named(standby, "mysql-failover").inputs.create).to.be.a("string");
    expect(named(standby, "mysql-fallback").inputs.create).to.equal(undefined);
    expect(named(standby, "mysql-rejoin").inputs.create).to.equal(undefined);
  });

  it("fallback (standby → primary) is the exact reverse", () => {
    expect(updates(standby, primary)).to.deep.equal(updates(primary, standby));
    expect(named(primary, "mysql-fallback").inputs.create).to.be.a("string");
    expect(named(primary, "mysql-rejoin").inputs.create).to.be.a("string");
  });

  it("never touches instances, volumes, security groups, setup or bootstrap", () => {
    const touched = diffDeployments(primary, standby).map((c) => c.urn);
    for (const r of primary.deployment.resources) {
      if (
        /aws:ec2\/instance|aws:ebs\/volume|securityGroup|SecurityGroup|aws:ec2\/eip:Eip/.test(
          r.type,
        ) ||
        /mysql-(setup|bootstrap)/.test(r.name)
      ) {
        expect(touched, r.urn).not.to.include(r.urn);
      }
    }
  });

  it("the check itself catches a non-compliant change (a config change that touches an instance)", async () => {
    const bigger = (await synthMysql({ config: { instanceType: "t3.large" } })).d;
    const bad = diffDeployments(primary, bigger).filter((c) => !ALLOWED.has(c.type));
    expect(bad.map((c) => c.type)).to.include("aws:ec2/instance:Instance");
  });
});

describe("invariant: the replication password is secret everywhere", () => {
  let json: string;
  before(async () => {
    json = JSON.stringify((await synthMysql()).d);
  });
  it("no plaintext password, account password or SSH key anywhere in the synthesized inputs and outputs", () => {
    expect(json).not.to.match(/mock-?[0-9a-f]{24}/); // the mocked RandomPassword result
    expect(json).not.to.contain(CDR_PASSWORD);
    expect(json).not.to.contain("hastack-test-key-material");
  });
  it("the check can fail: a password passed in plain text would show up", async () => {
    const leaky = JSON.stringify(
      (
        await synthMysql({
          args: {
            accounts: [{ user: "leaky", database: "app", password: CDR_PASSWORD }],
            sshPrivateKey: SSH_KEY,
          },
        })
      ).d,
    );
    // The component re-wraps them as secrets: even plain inputs never reach the state in clear.
    expect(leaky).not.to.contain(CDR_PASSWORD);
    expect(leaky).not.to.contain("hastack-test-key-material");
    // …while a value that is not secret does appear, so the search above is meaningful.
    expect(leaky).to.contain("/hastack/mysql/replication-password");
  });
  it("scripts and command lines only ever reference the password through the environment", () => {
    const commands = JSON.parse(json).deployment.resources.filter(
      (r: SynthResource) => r.type === COMMAND,
    );
    const running = commands.filter((c: SynthResource) => c.inputs.create !== undefined);
    expect(running).to.have.length(5);
    for (const c of running) {
      expect(c.inputs.create).not.to.match(/PASSWORD=/);
      expect(c.inputs.stdin).to.contain("$HASTACK_REPL_PASSWORD");
    }
  });
});

describe("invariant: 3306 is never open to 0.0.0.0/0", () => {
  const openToWorld = (
    rules: { fromPort: number; toPort?: number; cidr?: string; cidrIpv4?: unknown }[],
  ): boolean =>
    rules.some(
      (r) =>
        r.fromPort <= 3306 &&
        (r.toPort ?? r.fromPort) >= 3306 &&
        (r.cidr ?? r.cidrIpv4) === "0.0.0.0/0",
    );

  it("compliant: only the client security groups and the peer reach 3306", async () => {
    const { d } = await synthMysql();
    const rules = ofType(d, "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule").filter(
      (r) => r.inputs.fromPort === 3306,
    );
    expect(rules.map((r) => r.name).sort()).to.deep.equal([
      "mysql-pair-in-peer-tcp3306",
      "mysql-pair-in-tcp3306-sg0",
    ]);
    for (const r of rules) {
      expect(r.inputs.cidrIpv4, r.name).to.equal(undefined);
      expect(r.inputs.referencedSecurityGroupId, r.name).to.be.a("string");
    }
    expect(
      openToWorld(rules.map((r) => r.inputs as { fromPort: number; cidrIpv4?: unknown })),
    ).to.equal(false);
  });

  it("compliant even with no client group at all: only the peer", async () => {
    const { d } = await synthMysql({ clients: [] });
    const rules = ofType(d, "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule").filter(
      (r) => r.inputs.fromPort === 3306,
    );
    expect(rules.map((r) => r.name)).to.deep.equal(["mysql-pair-in-peer-tcp3306"]);
    expect(
      ingressRules(mysqlServicePorts([]), [22], ["203.0.113.10/32"], [3306]).some(
        (r) => r.cidr === "0.0.0.0/0",
      ),
    ).to.equal(false);
  });

  it("non-compliant: a 3306 port without explicit cidrs would be opened to the world (what mysqlServicePorts prevents)", () => {
    const careless: IngressRule[] = ingressRules(
      [{ protocol: "tcp", fromPort: 3306, description: "MySQL" }],
      [22],
      ["203.0.113.10/32"],
      [],
    );
    expect(openToWorld(careless)).to.equal(true);
  });
});

describe("MysqlPair: arguments and user-data", () => {
  it("refuses reserved, duplicate or unquotable account names", () => {
    const base = { password: "x" };
    const args = (accounts: MysqlPairArgs["accounts"]): MysqlPairArgs =>
      ({ accounts }) as unknown as MysqlPairArgs;
    expect(checkMysqlPairArgs(args([{ user: "app", database: "app", ...base }]))).to.deep.equal([]);
    expect(checkMysqlPairArgs(args([{ user: "backup", database: "*", ...base }]))).to.deep.equal(
      [],
    );
    expect(
      checkMysqlPairArgs(args([{ user: "hastack_repl", database: "app", ...base }])),
    ).to.deep.equal(["account name hastack_repl is reserved"]);
    expect(
      checkMysqlPairArgs(
        args([
          { user: "a", database: "app", ...base },
          { user: "a", database: "app", ...base },
        ]),
      ),
    ).to.deep.equal(["account a is declared twice"]);
    expect(checkMysqlPairArgs(args([{ user: "x'y", database: "a b", ...base }]))).to.have.length(2);
  });

  for (const engine of ["mariadb", "mysql"] as const) {
    it(`${engine}: user-data passes the real \`cloud-init schema\` and fits EC2's 16 KB`, () => {
      const parts = mysqlCloudConfigParts({
        side: "standby",
        hostname: "db-standby",
        fqdn: "db-standby.example.co.id",
        settings: mysqlSettings(mysqlConfig({ engine })),
        region: "ap-southeast-3",
        activeSideParameter: "/hastack/mysql/active-side",
      });
      const text = renderCloudConfig({
        ...parts,
        healthAgent: { servicePort: 3306, failureThreshold: 3 },
      });
      // EC2 caps user-data at 16 KB; beyond it ServerPair sends it gzipped (cloud-init reads
      // gzip), as for mail and the NAS since the shared helpers (server/lib/hastack.sh) ship too.
      const sent = userDataInputs(text);
      const sentBytes =
        typeof sent.userData === "string"
          ? Buffer.byteLength(sent.userData)
          : Buffer.from(sent.userDataBase64 as string, "base64").length;
      expect(sentBytes).to.be.lessThan(16 * 1024);
      expect(text).to.contain("path: /usr/local/lib/hastack/hastack.sh");
      expectValidCloudConfig(text);
      expect(text).to.contain("/usr/local/sbin/hastack-mysql-boot-role");
      expect(text).to.contain("AcceptEnv HASTACK_*");
      expect(text).to.contain("server_id = 2");
    });
  }

  it("user-data does not depend on the active side (it must not change on a flip)", () => {
    const render = (active: "primary" | "standby"): string =>
      JSON.stringify(
        mysqlCloudConfigParts({
          side: "primary",
          hostname: "db-primary",
          fqdn: "db-primary.example.co.id",
          settings: mysqlSettings(mysqlConfig({ active })),
          region: "ap-southeast-3",
          activeSideParameter: "/hastack/mysql/active-side",
        }),
      );
    expect(render("standby")).to.equal(render("primary"));
  });
});
