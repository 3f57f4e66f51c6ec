import { expect } from "chai";
import * as pulumi from "@pulumi/pulumi";
import { checkRecordSpec, Dns, internalName, recordSetKey } from "../../components/dns";
import { runUnderMocks } from "../../lib/synth/offline-synth";

class Owner extends pulumi.ComponentResource {
  constructor(name: string) {
    super("hastack:test:Owner", name, {});
  }
}

describe("Dns", () => {
  describe("invariant: every (name, type) is exactly one record set", () => {
    it("compliant: several MX values live in one record set", async () => {
      const d = await runUnderMocks(() => {
        const dns = new Dns("dns", { domain: "example.co.id", zoneName: "example.co.id" });
        dns.record(new Owner("mail"), "mail-mx", {
          name: "example.co.id",
          type: "MX",
          records: ["0 mx1.example.co.id", "10 mx2.example.co.id"],
        });
      });
      const mx = d.deployment.resources.filter((r) => r.type === "aws:route53/record:Record");
      expect(mx).to.have.length(1);
      expect(mx[0].inputs.records).to.deep.equal(["0 mx1.example.co.id", "10 mx2.example.co.id"]);
      expect(mx[0].inputs.allowOverwrite).to.equal(false);
      expect(mx[0].parent).to.match(/hastack:test:Owner::mail$/);
    });
    it("non-compliant: a second record set for the same name and type is refused", async () => {
      let error = "";
      await runUnderMocks(() => {
        const dns = new Dns("dns", { domain: "example.co.id", zoneName: "example.co.id" });
        const owner = new Owner("mail");
        dns.record(owner, "mx-a", {
          name: "example.co.id",
          type: "MX",
          records: ["0 mx1.example.co.id"],
        });
        try {
          dns.record(owner, "mx-b", {
            name: "Example.co.id.",
            type: "MX",
            records: ["10 mx2.example.co.id"],
          });
        } catch (e) {
          error = (e as Error).message;
        }
      });
      expect(error).to.contain("example.co.id MX is already declared by mx-a");
    });
    it("failover records share a name but not a set identifier", () => {
      expect(
        recordSetKey({ name: "db.example.co.id", type: "A", setIdentifier: "mysql-primary" }),
      ).to.not.equal(
        recordSetKey({ name: "db.example.co.id", type: "A", setIdentifier: "mysql-secondary" }),
      );
    });
  });

  it("refuses names outside the zone, empty sets and failover without an identifier", () => {
    expect(
      checkRecordSpec(
        { name: "mail.other.com", type: "A", records: [], failover: "PRIMARY" },
        "example.co.id",
      ),
    ).to.deep.equal([
      'name "mail.other.com" is outside the zone example.co.id',
      "a record set needs at least one value",
      "failover routing needs a setIdentifier",
    ]);
  });

  it("internal names go to the private zone; without it they are refused", async () => {
    expect(internalName("db.example.co.id", "example.co.id")).to.equal("db.internal.example.co.id");
    expect(() => internalName("db.other.com", "example.co.id")).to.throw(
      "not inside example.co.id",
    );
    const d = await runUnderMocks(() => {
      const dns = new Dns("dns", {
        domain: "example.co.id",
        zoneName: "example.co.id",
        internalVpcId: "vpc-1",
      });
      dns.record(new Owner("db"), "db-internal", {
        name: "db.internal.example.co.id",
        type: "A",
        records: ["10.0.0.5"],
      });
      dns.record(new Owner("mx"), "mx-public", {
        name: "mx1.example.co.id",
        type: "A",
        records: ["198.51.100.7"],
      });
    });
    const zoneOf = (n: string): unknown =>
      d.deployment.resources.find((r) => r.name === n)!.inputs.zoneId;
    const privateZone = d.deployment.resources.find((r) => r.name === "dns-internal")!;
    expect(privateZone.inputs.vpcs).to.deep.equal([{ vpcId: "vpc-1" }]);
    expect(zoneOf("db-internal")).to.not.equal(zoneOf("mx-public"));
    let error = "";
    await runUnderMocks(() => {
      const dns = new Dns("dns", { domain: "example.co.id", zoneName: "example.co.id" });
      try {
        dns.record(new Owner("db"), "db-internal", {
          name: "db.internal.example.co.id",
          type: "A",
          records: ["10.0.0.5"],
        });
      } catch (e) {
        error = (e as Error).message;
      }
    });
    expect(error).to.contain("needs the private zone");
  });

  it("creates a protected, retained zone only when asked", async () => {
    const d = await runUnderMocks(() => {
      new Dns("dns", { domain: "example.co.id", create: true });
    });
    const zone = d.deployment.resources.find((r) => r.type === "aws:route53/zone:Zone")!;
    expect(zone.protect && zone.retainOnDelete).to.equal(true);
    const looked = await runUnderMocks(() => {
      new Dns("dns", { domain: "example.co.id", zoneId: "Z0123456789ABC" });
    });
    expect(looked.deployment.resources.some((r) => r.type === "aws:route53/zone:Zone")).to.equal(
      false,
    );
  });
});
