// The customer-managed KMS key of the stack's EBS volumes (issue 13). Snapshots encrypted with
// the account's `aws/ebs` key cannot be shared with another account, and a copy to another
// region or account needs a key whose policy the stack controls: AWS Backup's copies
// (hastack:nas.awsBackup.copyToRegion) and any restore elsewhere start here. The key serves EBS
// only: cryptographic use is refused unless it comes through EC2 or AWS Backup in the stack's
// region, and grants only for AWS resources (the volumes and snapshots those services attach).
//
// A live volume cannot change its key in place (kmsKeyId forces a replacement: a new, empty
// volume). ServerPair therefore ignores changes of kmsKeyId: new volumes are created under this
// key, existing ones keep theirs until the snapshot → copy → new-volume runbook (README
// Security: "Upgrading an existing stack") moves them one side at a time.
import * as pulumi from "@pulumi/pulumi";
import * as aws from "@pulumi/aws";
import { accountAdministers, stackKey } from "./secrets-key";

export interface VolumeKeyArgs {
  /** Alias, without "alias/". Defaults to hastack-<stack>-volumes (two stacks, one account). */
  aliasName?: string;
  /**
   * Regions snapshots are copied to (hastack:nas.awsBackup.copyToRegion): the copy is made by
   * EC2 there, which reads the source snapshot under this key. Defaults to none.
   */
  copyRegions?: string[];
}

export class VolumeKey extends pulumi.ComponentResource {
  /** The key's ARN: the volumes' and root disks' `kmsKeyId`. */
  public readonly arn: pulumi.Output<string>;
  /** `alias/<name>`: for operators (`aws ec2 copy-snapshot --kms-key-id alias/…`). */
  public readonly alias: string;

  constructor(name: string, args: VolumeKeyArgs = {}, opts?: pulumi.ComponentResourceOptions) {
    super("hastack:security:VolumeKey", name, {}, opts);
    const account = aws.getCallerIdentityOutput({}, { parent: this }).accountId;
    const region = aws.getRegionOutput({}, { parent: this }).region;
    const key = stackKey(this, name, {
      aliasName: args.aliasName ?? `hastack-${pulumi.getStack()}-volumes`,
      description: "hastack: encrypts the stack's EBS volumes and their snapshots",
      policy: pulumi
        .all([account, region])
        .apply(([id, r]) => JSON.stringify(volumeKeyPolicy(id, [r, ...(args.copyRegions ?? [])]))),
      service: "volumes",
    });
    this.alias = key.alias;
    this.arn = key.arn;
    this.registerOutputs({ arn: this.arn });
  }
}

/** What a volume key is used for: encrypting data keys for EBS, and grants to attach. */
export const VOLUME_KEY_USE = [
  "kms:Encrypt",
  "kms:Decrypt",
  "kms:ReEncrypt*",
  "kms:GenerateDataKey*",
  "kms:CreateGrant",
];

/**
 * The key policy: the account administers the key and delegates use to IAM; every use must come
 * through EC2 (volumes, snapshots, copies) or AWS Backup in the given regions (the stack's first,
 * then its copy regions), and a grant only for an AWS resource — so nobody can decrypt or
 * re-encrypt with it directly.
 */
export function volumeKeyPolicy(accountId: string, regions: string[]): Record<string, unknown> {
  return {
    Version: "2012-10-17",
    Statement: [
      accountAdministers(accountId),
      {
        Sid: "UseOnlyThroughEc2AndBackup",
        Effect: "Deny",
        Principal: { AWS: "*" },
        Action: VOLUME_KEY_USE,
        Resource: "*",
        Condition: {
          StringNotEquals: {
            "kms:ViaService": regions.flatMap((r) => [
              `ec2.${r}.amazonaws.com`,
              `backup.${r}.amazonaws.com`,
            ]),
          },
        },
      },
      {
        Sid: "GrantsOnlyForAwsResources",
        Effect: "Deny",
        Principal: { AWS: "*" },
        Action: "kms:CreateGrant",
        Resource: "*",
        Condition: { Bool: { "kms:GrantIsForAWSResource": "false" } },
      },
    ],
  };
}
