// The customer-managed KMS key every SSM SecureString of the stack is encrypted with (issue 13).
// With the account's `aws/ssm` key any principal allowed to read a parameter may decrypt it, so
// isolation between services rested on IAM paths alone. Under this key a server's role may
// decrypt only through SSM and only parameters under its own prefix: each role's policy (see
// ServerPair) names the key with a `kms:EncryptionContext:PARAMETER_ARN` condition — SSM puts
// the parameter's ARN in the encryption context of every SecureString it encrypts — and the key
// policy refuses every decrypt that does not carry such a context, so the key serves SSM only.
import * as pulumi from "@pulumi/pulumi";
import * as aws from "@pulumi/aws";

export interface SecretsKeyArgs {
  /** Alias, without "alias/". Defaults to hastack-<stack>-secrets (two stacks, one account). */
  aliasName?: string;
}

export class SecretsKey extends pulumi.ComponentResource {
  /** The key's ARN: what `keyId` of a SecureString and the roles' KMS statements name. */
  public readonly arn: pulumi.Output<string>;
  /** `alias/<name>`: for operators (`aws ssm put-parameter --key-id alias/…`). */
  public readonly alias: string;

  constructor(name: string, args: SecretsKeyArgs = {}, opts?: pulumi.ComponentResourceOptions) {
    super("hastack:security:SecretsKey", name, {}, opts);
    const account = aws.getCallerIdentityOutput({}, { parent: this }).accountId;
    const key = stackKey(this, name, {
      aliasName: args.aliasName ?? `hastack-${pulumi.getStack()}-secrets`,
      description: "hastack: encrypts the stack's SSM SecureString parameters",
      policy: account.apply((id) => JSON.stringify(secretsKeyPolicy(id))),
      service: "secrets",
    });
    this.alias = key.alias;
    this.arn = key.arn;
    this.registerOutputs({ arn: this.arn });
  }
}

/**
 * A customer-managed key of the stack and its alias, as SecretsKey and VolumeKey declare them:
 * rotated yearly, 30 days to cancel a deletion, protected and retained — deleting it makes
 * everything encrypted with it unreadable, so never by accident.
 */
export function stackKey(
  parent: pulumi.Resource,
  name: string,
  o: { aliasName: string; description: string; policy: pulumi.Input<string>; service: string },
): { arn: pulumi.Output<string>; alias: string } {
  const key = new aws.kms.Key(
    `${name}-key`,
    {
      description: o.description,
      enableKeyRotation: true,
      deletionWindowInDays: 30,
      policy: o.policy,
      tags: { "hastack:service": o.service },
    },
    { parent, protect: true, retainOnDelete: true },
  );
  const alias = `alias/${o.aliasName}`;
  new aws.kms.Alias(`${name}-alias`, { name: alias, targetKeyId: key.keyId }, { parent });
  return { arn: key.arn, alias };
}

/**
 * The first statement of every stack key's policy: the account administers the key and
 * delegates its use to IAM (the statements after it narrow that use).
 */
export function accountAdministers(accountId: string): Record<string, unknown> {
  return {
    Sid: "AccountAdministersAndDelegatesToIam",
    Effect: "Allow",
    Principal: { AWS: `arn:aws:iam::${accountId}:root` },
    Action: "kms:*",
    Resource: "*",
  };
}

/**
 * The key policy: the account administers the key and delegates use to IAM (each role's own
 * policy decides which parameters it may decrypt); nobody decrypts outside SSM parameters.
 */
export function secretsKeyPolicy(accountId: string): Record<string, unknown> {
  return {
    Version: "2012-10-17",
    Statement: [
      accountAdministers(accountId),
      {
        Sid: "DecryptOnlySsmParameters",
        Effect: "Deny",
        Principal: { AWS: "*" },
        Action: "kms:Decrypt",
        Resource: "*",
        Condition: { Null: { "kms:EncryptionContext:PARAMETER_ARN": "true" } },
      },
    ],
  };
}
