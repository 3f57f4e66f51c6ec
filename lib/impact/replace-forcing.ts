// The replace-forcing table: which input changes make a provider replace a resource rather than
// update it in place, for the types this stack uses. Only synth pairs need it (a preview asks
// the providers); it is an estimate and docs/operations-impact.md says so.
import { isRecord, unique } from "./model";

// Synth pairs: the diff and the replacement table

/**
 * Properties whose change makes the AWS (or random/command) provider replace the resource, for
 * the types this stack uses (ForceNew in the provider schemas). "*" means every input. A path
 * `a.b` compares that nested value only. This is an ESTIMATE: `pulumi preview --json` asks the
 * provider and is authoritative. Types not listed are assumed to update in place.
 */
export const REPLACE_FORCING: Record<string, string[]> = {
  "aws:ec2/instance:Instance": [
    "ami",
    "availabilityZone",
    "subnetId",
    "privateIp",
    "keyName",
    "tenancy",
    "placementGroup",
    "hostId",
    "ebsBlockDevices",
    "ephemeralBlockDevices",
    "networkInterfaces",
    "primaryNetworkInterface",
    "associatePublicIpAddress",
    "launchTemplate",
    "rootBlockDevice.encrypted",
    "rootBlockDevice.kmsKeyId",
    // userData only when userDataReplaceOnChange is set (see replaceReasonsFor); else stop/start.
  ],
  "aws:ebs/volume:Volume": [
    "availabilityZone",
    "encrypted",
    "snapshotId",
    "kmsKeyId",
    "outpostArn",
  ],
  "aws:ec2/volumeAttachment:VolumeAttachment": ["deviceName", "instanceId", "volumeId"],
  // The server's primary interface (ServerPair): a new subnet means a new interface, and with
  // it a new server (primaryNetworkInterface above).
  "aws:ec2/networkInterface:NetworkInterface": [
    "subnetId",
    "interfaceType",
    "privateIpListEnabled",
  ],
  "aws:ec2/eipDomainName:EipDomainName": ["allocationId"],
  "aws:ec2/eip:Eip": [
    "domain",
    "address",
    "publicIpv4Pool",
    "networkBorderGroup",
    "customerOwnedIpv4Pool",
  ],
  "aws:ec2/eipAssociation:EipAssociation": [
    "allocationId",
    "instanceId",
    "networkInterfaceId",
    "privateIpAddress",
    "publicIp",
    "allowReassociation",
  ],
  "aws:ec2/securityGroup:SecurityGroup": ["name", "namePrefix", "vpcId", "description"],
  "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule": ["securityGroupId"],
  "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule": ["securityGroupId"],
  "aws:route53/record:Record": ["name", "type", "setIdentifier", "zoneId"],
  "aws:route53/healthCheck:HealthCheck": [
    "type",
    "requestInterval",
    "measureLatency",
    "referenceName",
    "routingControlArn",
  ],
  "aws:route53/zone:Zone": ["name", "delegationSetId"],
  "aws:iam/role:Role": ["name", "namePrefix", "path"],
  "aws:iam/instanceProfile:InstanceProfile": ["name", "namePrefix", "path"],
  "aws:iam/rolePolicy:RolePolicy": ["name", "namePrefix", "role"],
  "aws:iam/rolePolicyAttachment:RolePolicyAttachment": ["role", "policyArn"],
  "aws:ssm/parameter:Parameter": ["name"],
  "aws:backup/vault:Vault": ["name", "kmsKeyArn"],
  "aws:backup/plan:Plan": ["name"],
  "aws:backup/selection:Selection": [
    "name",
    "planId",
    "iamRoleArn",
    "resources",
    "notResources",
    "selectionTags",
    "conditions",
  ],
  "aws:sns/topic:Topic": ["name", "namePrefix", "fifoTopic"],
  "aws:sns/topicSubscription:TopicSubscription": ["topic", "protocol", "endpoint"],
  "aws:cloudwatch/metricAlarm:MetricAlarm": ["name"],
  "aws:kms/key:Key": ["customerMasterKeySpec", "keySpec", "multiRegion"],
  "aws:kms/alias:Alias": ["name", "namePrefix"],
  "aws:ec2/vpc:Vpc": ["cidrBlock"],
  "aws:ec2/subnet:Subnet": ["vpcId", "cidrBlock", "availabilityZone", "availabilityZoneId"],
  "aws:ec2/routeTable:RouteTable": ["vpcId"],
  "aws:ec2/route:Route": ["routeTableId", "destinationCidrBlock"],
  "aws:ec2/routeTableAssociation:RouteTableAssociation": ["subnetId", "gatewayId"],
  "aws:ec2/keyPair:KeyPair": ["keyName", "keyNamePrefix", "publicKey"],
  "random:index/randomPassword:RandomPassword": ["*"],
  "random:index/randomString:RandomString": ["*"],
  "command:remote:Command": ["triggers"],
  "command:local:Command": ["triggers"],
};

/** Instance properties whose in-place change makes the provider stop and start the server. */
export const STOP_START_PROPERTIES = ["instanceType", "userData", "userDataBase64", "ebsOptimized"];

/** Reads `a.b[0].c` from a value. */
export function getPath(v: unknown, path: string): unknown {
  let cur: unknown = v;
  for (const part of path.replace(/\[(\d+)\]/g, ".$1").split(".")) {
    if (!isRecord(cur) && !Array.isArray(cur)) {
      return undefined;
    }
    cur = (cur as Record<string, unknown>)[part];
  }
  return cur;
}

function setPath(target: Record<string, unknown>, path: string, value: unknown): void {
  const parts = path.replace(/\[(\d+)\]/g, ".$1").split(".");
  let cur: Record<string, unknown> = target;
  for (const part of parts.slice(0, -1)) {
    if (!isRecord(cur[part]) && !Array.isArray(cur[part])) {
      cur[part] = {};
    }
    cur = cur[part] as Record<string, unknown>;
  }
  const last = parts[parts.length - 1];
  if (value === undefined) {
    delete cur[last];
  } else {
    cur[last] = value;
  }
}

/** Deep equality for JSON values, ignoring key order. */
export function jsonEqual(a: unknown, b: unknown): boolean {
  if (a === b) {
    return true;
  }
  if (Array.isArray(a) && Array.isArray(b)) {
    return a.length === b.length && a.every((x, i) => jsonEqual(x, b[i]));
  }
  if (isRecord(a) && isRecord(b)) {
    const ka = Object.keys(a).filter((k) => a[k] !== undefined);
    const kb = Object.keys(b).filter((k) => b[k] !== undefined);
    return ka.length === kb.length && ka.every((k) => jsonEqual(a[k], b[k]));
  }
  return false;
}

/**
 * New inputs with every ignoreChanges path reset to its old value, which is what the engine does
 * before diffing: an ignored property never causes an update or a replacement.
 */
export function applyIgnoreChanges(
  oldInputs: Record<string, unknown>,
  newInputs: Record<string, unknown>,
  ignoreChanges: string[],
): Record<string, unknown> {
  const out = JSON.parse(JSON.stringify(newInputs)) as Record<string, unknown>;
  for (const path of ignoreChanges) {
    setPath(out, path, getPath(oldInputs, path));
  }
  return out;
}

/** Top-level input keys that differ. */
export function changedKeys(a: Record<string, unknown>, b: Record<string, unknown>): string[] {
  const keys = unique([...Object.keys(a), ...Object.keys(b)]).sort();
  return keys.filter((k) => !jsonEqual(a[k], b[k]));
}

/** Which of the changed properties force a replacement, per REPLACE_FORCING. */
export function replaceReasonsFor(
  type: string,
  oldInputs: Record<string, unknown>,
  newInputs: Record<string, unknown>,
): string[] {
  const forcing = [...(REPLACE_FORCING[type] ?? [])];
  if (type === "aws:ec2/instance:Instance" && newInputs.userDataReplaceOnChange === true) {
    forcing.push("userData", "userDataBase64");
  }
  if (forcing.includes("*")) {
    return changedKeys(oldInputs, newInputs);
  }
  return forcing.filter((p) => !jsonEqual(getPath(oldInputs, p), getPath(newInputs, p)));
}

/** Stack outputs of a synth deployment: the root stack resource's outputs. */
