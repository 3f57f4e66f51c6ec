// Test support: where a component under test runs — the same domain, network and AMI in every
// component test (each test states its own admin CIDRs and service config).
import { Dns } from "../../components/dns";
import { PairPlacement } from "../../components/server-pair";

export const TEST_DOMAIN = "example.co.id";

/** A two-AZ network, the test domain and a pinned AMI, around an existing Dns. */
export function testPlacement(dns: Dns): Omit<PairPlacement, "adminCidrs" | "keyName"> {
  return {
    domain: TEST_DOMAIN,
    dns,
    network: {
      vpcId: "vpc-0123456789abcdef0",
      subnets: {
        primary: { id: "subnet-aaaaaaaa", az: "ap-southeast-3a" },
        standby: { id: "subnet-bbbbbbbb", az: "ap-southeast-3b" },
      },
    },
    ami: "ami-0123456789abcdef0",
  };
}
