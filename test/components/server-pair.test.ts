import { expect } from "chai";
import { ofType } from "../support/deployment-queries";
import * as aws from "@pulumi/aws";
import { randomBytes } from "crypto";
import { gunzipSync } from "zlib";
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { serverFile, userDataFile } from "../../components/server-files";

const PY_AST = "import ast, sys; print(ast.dump(ast.parse(open(sys.argv[1]).read())))";
import { Dns } from "../../components/dns";
import * as pulumi from "@pulumi/pulumi";
import {
  checkServerPairArgs,
  ComponentArgsError,
  estimateRtoSeconds,
  failoverRecords,
  ingressRules,
  Role,
  ServerPair,
  ServerPairArgs,
  userDataInputs,
} from "../../components/server-pair";
import { StackConfigDoc } from "../support/stack-files";
import {
  diffDeployments,
  Deployment,
  runUnderMocks,
  SynthResource,
} from "../../lib/synth/offline-synth";

const ADMIN = ["203.0.113.10/32"];

function pairArgs(dns: Dns, over: Partial<ServerPairArgs> = {}): ServerPairArgs {
  const parts = { hostname: "svc", fqdn: "svc.example.co.id" };
  return {
    service: "svc",
    active: Role.Primary,
    switchover: "dns",
    vpcId: "vpc-0123456789abcdef0",
    subnets: {
      primary: { id: "subnet-aaaaaaaa", az: "ap-southeast-3a" },
      standby: { id: "subnet-bbbbbbbb", az: "ap-southeast-3b" },
    },
    ami: "ami-0123456789abcdef0",
    instanceType: "t3.small",
    dataVolumeGb: 50,
    cloudConfig: { primary: parts, standby: parts },
    servicePorts: [
      { protocol: "tcp", fromPort: 25, description: "SMTP", name: "smtp", probe: "smtp_banner" },
    ],
    adminCidrs: ADMIN,
    healthCheck: { type: "TCP", port: 25, failureThreshold: 3 },
    dns,
    serviceName: "svc.example.co.id",
    serverNames: { primary: "svc1.example.co.id", standby: "svc2.example.co.id" },
    ...over,
  };
}

async function synthPair(over: Partial<ServerPairArgs> = {}): Promise<Deployment> {
  return runUnderMocks(() => {
    const dns = new Dns("dns", { domain: "example.co.id", zoneName: "example.co.id" });
    new ServerPair("svc", pairArgs(dns, over));
  });
}

const byName = (d: Deployment, name: string): SynthResource => {
  const r = d.deployment.resources.find((x) => x.name === name);
  if (!r) {
    throw new Error(`no resource ${name}`);
  }
  return r;
};

/** Resource types a flip of `active` may change: the switch and nothing else. */
const SWITCH_TYPES = ["aws:route53/record:Record", "aws:ec2/eipAssociation:EipAssociation"];

describe("ServerPair", () => {
  describe("argument checks: every problem named by its argument, thrown once", () => {
    it("compliant: the test pair has no problem", () => {
      expect(checkServerPairArgs(pairArgs({} as Dns))).to.deep.equal([]);
    });
    it("non-compliant: three problems give one RunError listing all three, and no server", async () => {
      let err: unknown;
      let created = 0;
      try {
        const d = await synthPair({
          ttl: 300,
          adminCidrs: [],
          subnets: {
            primary: { id: "subnet-aaaaaaaa", az: "ap-southeast-3a" },
            standby: { id: "subnet-bbbbbbbb", az: "ap-southeast-3a" },
          },
        });
        created = ofType(d, "aws:ec2/instance:Instance").length;
      } catch (e) {
        err = e;
      }
      expect(created).to.equal(0);
      expect(err).to.be.instanceOf(ComponentArgsError);
      // A RunError: the CLI prints the message without a stack trace.
      expect(pulumi.RunError.isInstance(err as Error)).to.equal(true);
      const e = err as ComponentArgsError;
      expect(e.errors.map((p) => p.propertyPath)).to.deep.equal(["subnets", "ttl", "adminCidrs"]);
      expect(e.message).to.equal(
        "ServerPair svc: invalid arguments:\n" +
          "  - subnets: primary and standby must be in different availability zones (both ap-southeast-3a)\n" +
          "  - ttl: switch record TTL must be at most 60 s so a failover is seen quickly, got 300\n" +
          "  - adminCidrs: at least one admin CIDR is required",
      );
    });
  });

  describe("invariant: primary and standby are in different AZs", () => {
    it("compliant: two AZs give one instance and one data volume in each", async () => {
      const d = await synthPair();
      const volumes = ofType(d, "aws:ebs/volume:Volume").map((v) => v.inputs.availabilityZone);
      expect(volumes).to.deep.equal(["ap-southeast-3a", "ap-southeast-3b"]);
      const subnets = ofType(d, "aws:ec2/networkInterface:NetworkInterface").map(
        (i) => i.inputs.subnetId,
      );
      expect(subnets).to.deep.equal(["subnet-aaaaaaaa", "subnet-bbbbbbbb"]);
      const enis = ofType(d, "aws:ec2/networkInterface:NetworkInterface").map((e) => e.id);
      const attached = ofType(d, "aws:ec2/instance:Instance").map(
        (i) =>
          (i.inputs.primaryNetworkInterface as { networkInterfaceId: string }).networkInterfaceId,
      );
      expect(attached).to.deep.equal(enis);
    });
    it("non-compliant: the same AZ twice is refused before anything is declared", async () => {
      const same = { id: "subnet-aaaaaaaa", az: "ap-southeast-3a" };
      let error = "";
      const d = await runUnderMocks(() => {
        const dns = new Dns("dns", { domain: "example.co.id", zoneName: "example.co.id" });
        try {
          new ServerPair("svc", pairArgs(dns, { subnets: { primary: same, standby: same } }));
        } catch (e) {
          error = (e as Error).message;
        }
      });
      expect(error).to.contain("different availability zones (both ap-southeast-3a)");
      expect(ofType(d, "aws:ec2/instance:Instance")).to.have.length(0);
    });
  });

  describe("invariant: exactly one PRIMARY and one SECONDARY per failover name, TTL ≤ 60", () => {
    for (const active of [Role.Primary, Role.Standby]) {
      it(`compliant: active=${active} is PRIMARY, the other side SECONDARY, both health-checked`, async () => {
        const d = await synthPair({ active, ttl: 30 });
        const failover = ofType(d, "aws:route53/record:Record").filter(
          (r) => r.inputs.failoverRoutingPolicies,
        );
        expect(failover).to.have.length(2);
        const roles = failover.map(
          (r) => (r.inputs.failoverRoutingPolicies as { type: string }[])[0].type,
        );
        expect(roles.sort()).to.deep.equal(["PRIMARY", "SECONDARY"]);
        const primaryRecord = failover.find(
          (r) => (r.inputs.failoverRoutingPolicies as { type: string }[])[0].type === "PRIMARY",
        )!;
        expect(primaryRecord.inputs.setIdentifier).to.equal("svc-primary");
        const activeIp = d.deployment.resources.find((r) => r.name === `svc-${active}-eip`);
        expect(activeIp).to.not.equal(undefined);
        expect(primaryRecord.inputs.healthCheckId).to.equal(`svc-${active}-hc-id`);
        for (const r of failover) {
          expect(r.inputs.name).to.equal("svc.example.co.id");
          expect(r.inputs.ttl).to.be.at.most(60);
          expect(r.inputs.healthCheckId).to.match(/^svc-(primary|standby)-hc-id$/);
        }
      });
    }
    it("non-compliant: a TTL above 60 s is refused", () => {
      const fakeDns = {} as Dns;
      expect(checkServerPairArgs(pairArgs(fakeDns, { ttl: 300 }))).to.deep.include({
        propertyPath: "ttl",
        reason: "switch record TTL must be at most 60 s so a failover is seen quickly, got 300",
      });
    });
    it("failoverRecords names the active side PRIMARY", () => {
      expect(failoverRecords(Role.Standby)).to.deep.equal([
        { side: "standby", failover: "PRIMARY" },
        { side: "primary", failover: "SECONDARY" },
      ]);
    });
  });

  describe("invariant: a flip of active changes only switch resources", () => {
    for (const switchover of ["dns", "eip"] as const) {
      it(`${switchover}: primary → standby touches only ${switchover === "dns" ? "the failover records" : "the EIP association"}`, async () => {
        const userData = { primary: "#cloud-config\n", standby: "#cloud-config\n" };
        const extra = switchover === "eip" ? { userData, cloudConfig: undefined } : {};
        const before = await synthPair({ switchover, ...extra });
        const after = await synthPair({ switchover, active: Role.Standby, ...extra });
        const changes = diffDeployments(before, after);
        expect(changes.length).to.be.greaterThan(0);
        for (const c of changes) {
          expect(c.op, c.urn).to.equal("update");
          expect(SWITCH_TYPES, c.urn).to.include(c.type);
        }
        if (switchover === "eip") {
          expect(changes.map((c) => c.type)).to.deep.equal([
            "aws:ec2/eipAssociation:EipAssociation",
          ]);
          expect(changes[0].changedKeys).to.deep.equal(["networkInterfaceId", "privateIpAddress"]);
        } else {
          // Role-named records: each keeps its routing role, only its target moves.
          expect(changes).to.have.length(2);
          for (const c of changes) {
            expect(c.changedKeys).to.deep.equal(["healthCheckId", "records"]);
          }
        }
      });
    }
    it("non-compliant detector: a changed instance type is not a switch change", async () => {
      const before = await synthPair();
      const after = await synthPair({ active: Role.Standby, instanceType: "t3.large" });
      const outside = diffDeployments(before, after).filter((c) => !SWITCH_TYPES.includes(c.type));
      expect(outside.map((c) => c.type)).to.include("aws:ec2/instance:Instance");
    });
  });

  describe("invariant: data survives mistakes", () => {
    it("data volumes and server EIPs are protected and retained on delete; instances protected", async () => {
      const d = await synthPair();
      for (const v of ofType(d, "aws:ebs/volume:Volume")) {
        expect(v.protect && v.retainOnDelete, v.name).to.equal(true);
        expect(v.inputs.encrypted, v.name).to.equal(true);
        expect((v.inputs.tags as Record<string, string>)["hastack:backup"]).to.equal("true");
      }
      for (const e of ofType(d, "aws:ec2/eip:Eip")) {
        expect(e.protect && e.retainOnDelete, e.name).to.equal(true);
      }
      for (const i of ofType(d, "aws:ec2/instance:Instance")) {
        expect(i.protect, i.name).to.equal(true);
        expect(i.ignoreChanges).to.include.members(["ami", "userData"]);
        expect(i.inputs.disableApiTermination).to.equal(true);
        expect((i.inputs.metadataOptions as Record<string, unknown>).httpTokens).to.equal(
          "required",
        );
        expect((i.inputs.rootBlockDevice as Record<string, unknown>).encrypted).to.equal(true);
      }
    });
    it("non-compliant detector: a plain synth of an unprotected resource reads protect=false", async () => {
      const d = await synthPair();
      expect(byName(d, "svc-primary-data-attach").protect).to.equal(false);
    });
  });

  describe("invariant: no admin port is open to 0.0.0.0/0", () => {
    it("compliant: SSH only from the admin CIDRs, service port public, peer by security group", async () => {
      const d = await synthPair();
      const rules = ofType(d, "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule");
      const world = rules
        .filter((r) => r.inputs.cidrIpv4 === "0.0.0.0/0")
        .map((r) => r.inputs.fromPort);
      expect(world).to.deep.equal([25]);
      const exporter = rules
        .filter((r) => r.inputs.fromPort === 9100)
        .map((r) => r.inputs.cidrIpv4);
      expect(exporter, "node_exporter only from the admin network").to.deep.equal(ADMIN);
      const ssh = rules.filter((r) => r.inputs.fromPort === 22);
      expect(ssh.map((r) => r.inputs.cidrIpv4 ?? "peer-sg")).to.have.members([...ADMIN, "peer-sg"]);
      const agent = byName(d, "svc-health-sg").inputs.ingress as {
        cidrBlocks: string[];
        fromPort: number;
      }[];
      expect(agent).to.have.length(1);
      expect(agent[0].fromPort).to.equal(9780);
      expect(agent[0].cidrBlocks).to.not.include("0.0.0.0/0");
    });
    it("non-compliant: admin CIDR 0.0.0.0/0 is refused", () => {
      expect(
        checkServerPairArgs(pairArgs({} as Dns, { adminCidrs: ["0.0.0.0/0"] })),
      ).to.deep.include({
        propertyPath: "adminCidrs",
        reason: "admin ports must not be open to 0.0.0.0/0",
      });
    });
    it("rule names derive from port and source, so adding a CIDR renames nothing", () => {
      const a = ingressRules([], [22], ["203.0.113.10/32"], []).map((r) => r.key);
      const b = ingressRules([], [22], ["198.51.100.1/32", "203.0.113.10/32"], []).map(
        (r) => r.key,
      );
      expect(b).to.include.members(a);
    });
  });

  describe("eip mode: the service address never displaces a server's own", () => {
    it("the service EIP binds to the active server's secondary IP; each server EIP to its primary IP", async () => {
      const d = await synthPair({
        switchover: "eip",
        active: Role.Standby,
        userData: { primary: "#cloud-config\n", standby: "#cloud-config\n" },
        cloudConfig: undefined,
      });
      const standbyEni = byName(d, "svc-standby-eni");
      const assoc = byName(d, "svc-service-eip-assoc");
      expect(assoc.inputs.networkInterfaceId).to.equal(standbyEni.id);
      const serverEip = byName(d, "svc-standby-eip");
      expect(serverEip.inputs.networkInterface).to.equal(standbyEni.id);
      expect(serverEip.inputs.associateWithPrivateIp).to.match(/^10\.20\./);
      expect(assoc.inputs.privateIpAddress).to.match(/^10\.20\./);
      expect(assoc.inputs.privateIpAddress).to.not.equal(serverEip.inputs.associateWithPrivateIp);
      expect(standbyEni.inputs.privateIpsCount).to.equal(1);
    });
    it("Route 53's checkers reach the probed port in both modes, and nothing else", async () => {
      for (const [switchover, port] of [
        ["dns", 9780],
        ["eip", 25],
      ] as const) {
        const extra =
          switchover === "eip"
            ? {
                userData: { primary: "#cloud-config\n", standby: "#cloud-config\n" },
                cloudConfig: undefined,
              }
            : {};
        const d = await synthPair({ switchover, ...extra });
        const ingress = byName(d, "svc-health-sg").inputs.ingress as {
          fromPort: number;
          toPort: number;
          cidrBlocks: string[];
        }[];
        expect(ingress.map((r) => [r.fromPort, r.toPort])).to.deep.equal([[port, port]]);
        expect(ingress[0].cidrBlocks).to.include("15.177.0.0/18").and.not.include("0.0.0.0/0");
        const enis = ofType(d, "aws:ec2/networkInterface:NetworkInterface");
        for (const eni of enis) {
          expect(eni.inputs.securityGroups).to.include(byName(d, "svc-health-sg").id);
        }
      }
    });
  });

  describe("internal names (private zone)", () => {
    const withInternal = async (over: Partial<ServerPairArgs> = {}): Promise<Deployment> =>
      runUnderMocks(() => {
        const dns = new Dns("dns", {
          domain: "example.co.id",
          zoneName: "example.co.id",
          internalVpcId: "vpc-0123456789abcdef0",
        });
        new ServerPair("svc", pairArgs(dns, over));
      });
    it("each server and the service get private-address records in internal.<domain>", async () => {
      const d = await withInternal();
      const zone = byName(d, "dns-internal");
      expect(zone.inputs.name).to.equal("internal.example.co.id");
      const internal = ofType(d, "aws:route53/record:Record").filter((r) =>
        String(r.inputs.name).endsWith("internal.example.co.id"),
      );
      expect(internal.map((r) => r.inputs.name).sort()).to.deep.equal([
        "svc.internal.example.co.id",
        "svc.internal.example.co.id",
        "svc1.internal.example.co.id",
        "svc2.internal.example.co.id",
      ]);
      const publicZone = byName(d, "svc-primary-a").inputs.zoneId;
      expect(internal[0].inputs.zoneId).to.not.equal(publicZone);
      for (const r of internal) {
        expect(r.inputs.zoneId).to.equal(internal[0].inputs.zoneId);
        for (const ip of r.inputs.records as string[]) {
          expect(ip).to.match(/^10\.20\./);
        }
      }
    });
    it("a flip moves the internal failover pair too, and still nothing but records", async () => {
      const before = await withInternal();
      const after = await withInternal({ active: Role.Standby });
      const changes = diffDeployments(before, after);
      expect(changes.map((c) => c.urn.split("::").pop()).sort()).to.deep.equal([
        "svc-failover-primary",
        "svc-failover-secondary",
        "svc-internal-failover-primary",
        "svc-internal-failover-secondary",
      ]);
    });
  });

  describe("deferred switch", () => {
    it("declares the switch only when asked, after what it must wait for, and only once", async () => {
      let twice = "";
      const d = await runUnderMocks(() => {
        const dns = new Dns("dns", { domain: "example.co.id", zoneName: "example.co.id" });
        const pair = new ServerPair("svc", pairArgs(dns, { deferSwitch: true }));
        const gate = new aws.ec2.SecurityGroup("gate", { vpcId: "vpc-0123456789abcdef0" });
        pair.declareSwitch({ dependsOn: [gate] });
        try {
          pair.declareSwitch();
        } catch (e) {
          twice = (e as Error).message;
        }
      });
      const failover = ofType(d, "aws:route53/record:Record").filter(
        (r) => r.inputs.failoverRoutingPolicies,
      );
      expect(failover).to.have.length(2);
      for (const r of failover) {
        expect(r.dependsOn).to.deep.equal([byName(d, "gate").urn]);
      }
      expect(twice).to.equal("ServerPair svc: the switch is declared already");
    });
    it("without declareSwitch a deferred pair has no switch resources", async () => {
      const d = await synthPair({ deferSwitch: true });
      const failover = ofType(d, "aws:route53/record:Record").filter(
        (r) => r.inputs.failoverRoutingPolicies,
      );
      expect(failover).to.deep.equal([]);
    });
  });

  describe("user-data size", () => {
    it("plain when it fits EC2's 16 KiB, gzip+base64 beyond (cloud-init reads both)", () => {
      expect(userDataInputs("#cloud-config\n")).to.deep.equal({ userData: "#cloud-config\n" });
      const big = "#cloud-config\n" + "write_files: []\n# padding\n".repeat(2000);
      const packed = userDataInputs(big);
      expect(packed.userData).to.equal(undefined);
      expect(
        gunzipSync(Buffer.from(packed.userDataBase64 as string, "base64")).toString(),
      ).to.equal(big);
      expect(userDataInputs(big)).to.deep.equal(packed); // deterministic bytes
    });
    it("shared server files lose their comment lines in user-data, and mean the same", () => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), "hastack-ud-comments-"));
      try {
        for (const rel of [
          "lib/hastack.sh",
          "common/hastack-mount-data.sh",
          "common/hastack-install-host-key.sh",
          "common/hastack-unfence.sh",
          "common/hastack-secondary-ips.sh",
          "common/hastack-health-agent.py",
        ]) {
          const source = serverFile(rel);
          const carried = userDataFile(rel);
          expect(
            carried
              .split("\n")
              .slice(2)
              .filter((l) => /^\s*#/.test(l)),
            rel,
          ).to.deep.equal([]);
          expect(carried.length, rel).to.be.at.most(source.length);
          const file = path.join(dir, path.basename(rel));
          fs.writeFileSync(file, carried);
          if (rel.endsWith(".py")) {
            // Same program: the syntax trees of the file and of what user-data carries are equal.
            const ast = (f: string): string =>
              execFileSync("/usr/bin/python3", ["-c", PY_AST, f], { encoding: "utf8" });
            fs.writeFileSync(`${file}.orig`, source);
            expect(ast(file), rel).to.equal(ast(`${file}.orig`));
          } else {
            // No heredoc whose `#` lines the stripping would eat; bash still parses it.
            expect(source, rel).to.not.match(/<<-?\s*['"]?\w+/);
            execFileSync("bash", ["-n", file]);
          }
        }
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    });
    it("refuses user-data that does not fit even gzipped", () => {
      const noise = "#cloud-config\n# " + randomBytes(20000).toString("base64");
      expect(() => userDataInputs(noise)).to.throw("even gzipped; EC2 allows 16384");
    });
  });

  describe("reverse DNS", () => {
    it("sets each server EIP's PTR to its own name when asked", async () => {
      const d = await synthPair({ reverseDns: true });
      const ptrs = ofType(d, "aws:ec2/eipDomainName:EipDomainName");
      expect(ptrs.map((p) => p.inputs.domainName)).to.deep.equal([
        "svc1.example.co.id",
        "svc2.example.co.id",
      ]);
      expect(ptrs.map((p) => p.inputs.allocationId)).to.deep.equal(
        ofType(d, "aws:ec2/eip:Eip").map((e) => e.id),
      );
    });
    it("declares no PTR by default, and refuses reverseDns without server names", async () => {
      expect(ofType(await synthPair(), "aws:ec2/eipDomainName:EipDomainName")).to.have.length(0);
      expect(
        checkServerPairArgs(pairArgs({} as Dns, { reverseDns: true, serverNames: undefined })),
      ).to.deep.include({
        propertyPath: "serverNames",
        reason: "reverseDns needs serverNames (the PTR points at the server's own name)",
      });
    });
  });

  describe("outputs and RTO", () => {
    it("exports active side, per-side facts and health-check ids", async () => {
      const d = await runUnderMocks(() => {
        const dns = new Dns("dns", { domain: "example.co.id", zoneName: "example.co.id" });
        const pair = new ServerPair("svc", pairArgs(dns, { active: Role.Standby }));
        return { svc: pair.summary };
      });
      const out = d.deployment.resources[0].outputs!.svc as StackConfigDoc;
      expect(out.activeSide).to.equal("standby");
      expect(out.sides.primary.az).to.equal("ap-southeast-3a");
      expect(out.sides.standby.publicIp).to.match(/^198\.51\.100\.\d+$/);
      expect(out.healthCheckIds.primary).to.equal("svc-primary-hc-id");
      // The default: 3 failed 10 s probes + TTL 30 s = the office's 60 s.
      expect(out.rtoSeconds).to.equal(60);
    });
    it("estimates RTO: automatic dns vs operator-confirmed eip", () => {
      expect(estimateRtoSeconds({ switchover: "dns", ttl: 60, failureThreshold: 3 })).to.equal(90);
      expect(estimateRtoSeconds({ switchover: "dns", ttl: 30, failureThreshold: 3 })).to.equal(60);
      expect(estimateRtoSeconds({ switchover: "eip", ttl: 60, failureThreshold: 2 })).to.equal(950);
    });
  });
});
