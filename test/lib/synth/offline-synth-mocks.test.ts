// The offline synth's mock addresses (issue 11): what a network interface gets under mocks must be
// a valid, distinct IPv4 host address, since the rehearsal and the DNS records use it as is. The
// prod stack's mail standby once got 10.20.207.256 as its secondary address.
import { expect } from "chai";
import { mockEniAddresses, runUnderMocks, stackOutputsOf } from "../../../lib/synth/offline-synth";
import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";

function hostAddress(a: string): boolean {
  const o = a.split(".").map(Number);
  return (
    o.length === 4 &&
    o[0] === 10 &&
    o[1] === 20 &&
    o.every((x) => x >= 0 && x <= 255) &&
    o[3] >= 10 &&
    o[3] <= 254
  );
}

describe("offline synth mocks: network interface addresses", () => {
  it("gives the prod mail standby's interface a valid secondary address (was .256)", () => {
    const [primary, secondary] = mockEniAddresses("mail-pair-standby-eni");
    expect(primary).to.equal("10.20.207.128");
    expect(secondary).to.equal("10.20.207.11");
  });

  it("keeps the addresses that were valid (a fix must not move every server)", () => {
    expect(mockEniAddresses("mail-pair-primary-eni")).to.deep.equal([
      "10.20.80.71",
      "10.20.80.199",
    ]);
  });

  it("gives every name two distinct host addresses of one /24", () => {
    for (let i = 0; i < 5000; i++) {
      const [p, s] = mockEniAddresses(`eni-${i}`);
      expect(hostAddress(p) && hostAddress(s), `eni-${i}: ${p} ${s}`).to.equal(true);
      expect(p, `eni-${i}`).to.not.equal(s);
      expect(p.split(".").slice(0, 3)).to.deep.equal(s.split(".").slice(0, 3));
    }
  });

  it("is what a NetworkInterface resolves to under the mocks", async () => {
    const d = await runUnderMocks(() => {
      const eni = new aws.ec2.NetworkInterface("mail-pair-standby-eni", { subnetId: "subnet-1" });
      return { ips: pulumi.all([eni.privateIp, eni.privateIps]) };
    });
    expect(stackOutputsOf(d).ips).to.deep.equal([
      "10.20.207.128",
      ["10.20.207.128", "10.20.207.11"],
    ]);
  });
});
