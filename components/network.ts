// Where the servers live. A stack either names an existing VPC and two or more subnets in
// different AZs, or gives a CIDR and AZs and gets a small VPC with one public subnet per AZ
// (the servers hold EIPs and are reached from the internet: mail, SIP, health checkers).
import * as pulumi from "@pulumi/pulumi";
import * as aws from "@pulumi/aws";

export interface SubnetRef {
  id: pulumi.Input<string>;
  az: string;
}

export interface NetworkArgs {
  /** Use this VPC and these subnets. */
  existing?: { vpcId: string; subnets: { id: string; az: string }[] };
  /** Or create a VPC with this CIDR and one public /24 subnet per AZ. */
  create?: { vpcCidr: string; azs: string[] };
}

export class Network extends pulumi.ComponentResource {
  public readonly vpcId: pulumi.Output<string>;
  public readonly subnets: SubnetRef[];

  constructor(name: string, args: NetworkArgs, opts?: pulumi.ComponentResourceOptions) {
    super("hastack:network:Network", name, {}, opts);
    if (args.existing) {
      this.vpcId = pulumi.output(args.existing.vpcId);
      this.subnets = args.existing.subnets.map((s) => ({ id: s.id, az: s.az }));
    } else if (args.create) {
      const create = args.create;
      const vpc = new aws.ec2.Vpc(
        `${name}-vpc`,
        {
          cidrBlock: create.vpcCidr,
          enableDnsHostnames: true,
          enableDnsSupport: true,
          tags: { Name: `${name}-vpc`, "hastack:service": "network" },
        },
        { parent: this, protect: true },
      );
      const igw = new aws.ec2.InternetGateway(`${name}-igw`, { vpcId: vpc.id }, { parent: this });
      const routes = new aws.ec2.RouteTable(
        `${name}-public`,
        { vpcId: vpc.id, routes: [{ cidrBlock: "0.0.0.0/0", gatewayId: igw.id }] },
        { parent: this },
      );
      this.subnets = create.azs.map((az, i) => {
        const subnet = new aws.ec2.Subnet(
          `${name}-${az}`,
          {
            vpcId: vpc.id,
            availabilityZone: az,
            cidrBlock: subnetCidr(create.vpcCidr, i),
            mapPublicIpOnLaunch: false,
            tags: { Name: `${name}-${az}`, "hastack:service": "network" },
          },
          { parent: this },
        );
        new aws.ec2.RouteTableAssociation(
          `${name}-${az}-public`,
          { subnetId: subnet.id, routeTableId: routes.id },
          { parent: this },
        );
        return { id: subnet.id, az };
      });
      this.vpcId = vpc.id;
    } else {
      throw new Error(`Network ${name}: give existing or create`);
    }
    this.registerOutputs({ vpcId: this.vpcId });
  }

  /** The subnet in an AZ; index.ts has validated that it exists. */
  subnetIn(az: string): SubnetRef {
    const subnet = this.subnets.find((s) => s.az === az);
    if (!subnet) {
      throw new Error(`no subnet in availability zone ${az}`);
    }
    return subnet;
  }
}

/** The i-th /24 inside a VPC CIDR of /16–/23: 10.20.0.0/16 → 10.20.0.0/24, 10.20.1.0/24, … */
export function subnetCidr(vpcCidr: string, index: number): string {
  const [ip, bits] = vpcCidr.split("/");
  const prefix = Number(bits);
  if (prefix > 23) {
    throw new Error(`VPC CIDR ${vpcCidr} is too small for /24 subnets (needs /23 or larger)`);
  }
  const octets = ip.split(".").map(Number);
  const base = ((octets[0] << 24) | (octets[1] << 16) | (octets[2] << 8) | octets[3]) >>> 0;
  const masked = (base & (~0 << (32 - prefix))) >>> 0;
  const addr = (masked + index * 256) >>> 0;
  return `${addr >>> 24}.${(addr >>> 16) & 255}.${(addr >>> 8) & 255}.${addr & 255}/24`;
}
