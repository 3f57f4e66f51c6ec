// In-stack alarms: a CloudWatch alarm on every Route 53 health check, sent to an SNS topic whose
// email subscribers come from config (hastack:alerts.emails). Route 53 publishes health-check
// metrics only in us-east-1, so the alarms — and the topic they publish to, which must be in the
// alarm's region — are created through a us-east-1 provider the caller passes in.
// The topic is encrypted with a customer-managed KMS key, not alias/aws/sns: CloudWatch alarms
// cannot publish to a topic under the AWS-managed key (its key policy does not let
// cloudwatch.amazonaws.com use it, and it cannot be edited), so alarms would fail silently.
import * as pulumi from "@pulumi/pulumi";
import * as aws from "@pulumi/aws";

export interface AlarmsArgs {
  /** Health checks to alarm on, by a stable label used in names (e.g. "mail-primary" → id). */
  healthChecks: Record<string, pulumi.Input<string>>;
  /** Email subscribers (hastack:alerts.emails); each must confirm the subscription mail. Defaults to none. */
  emails?: string[];
  /**
   * Provider for us-east-1, where Route 53 health-check metrics live. Defaults to the stack's
   * default provider, which is right only for a stack in us-east-1.
   */
  provider?: aws.Provider;
  /** Consecutive 60 s periods below healthy before the alarm fires, 1 or 2. Defaults to 1. */
  evaluationPeriods?: number;
  /** AWS account id for the key and topic policies. Defaults to the caller identity. */
  accountId?: pulumi.Input<string>;
}

export class Alarms extends pulumi.ComponentResource {
  public readonly topicArn: pulumi.Output<string>;
  public readonly keyArn: pulumi.Output<string>;
  /** Alarm per health-check label. */
  public readonly alarms: Record<string, aws.cloudwatch.MetricAlarm>;
  private readonly alarmName: string;
  private readonly childOpts: pulumi.CustomResourceOptions;
  private readonly evaluationPeriods: number;

  constructor(name: string, args: AlarmsArgs, opts?: pulumi.ComponentResourceOptions) {
    super("hastack:monitoring:Alarms", name, {}, opts);
    const emails = args.emails ?? [];
    const evaluationPeriods = args.evaluationPeriods ?? 1;
    const problems = checkAlarmsArgs({ ...args, emails, evaluationPeriods });
    if (problems.length > 0) {
      throw new Error(`Alarms ${name}: ${problems.join("; ")}`);
    }
    const childOpts = { parent: this, provider: args.provider };
    const accountId =
      args.accountId ??
      aws.getCallerIdentityOutput({}, { parent: this, provider: args.provider }).accountId;

    const key = new aws.kms.Key(
      `${name}-key`,
      {
        description: "hastack alerts: encrypts the alarm SNS topic; CloudWatch may use it",
        enableKeyRotation: true,
        deletionWindowInDays: 30,
        policy: pulumi.output(accountId).apply((acct) => JSON.stringify(alertsKeyPolicy(acct))),
      },
      // Policy pack (stateful-protected): a deleted key is never a stack mistake.
      { ...childOpts, protect: true, retainOnDelete: true },
    );
    new aws.kms.Alias(
      `${name}-key-alias`,
      { name: `alias/hastack-${name}`, targetKeyId: key.keyId },
      childOpts,
    );
    const topic = new aws.sns.Topic(
      `${name}-topic`,
      { displayName: "hastack alerts", kmsMasterKeyId: key.arn },
      childOpts,
    );
    new aws.sns.TopicPolicy(
      `${name}-topic-policy`,
      {
        arn: topic.arn,
        policy: pulumi
          .all([accountId, topic.arn])
          .apply(([acct, arn]) => JSON.stringify(alertsTopicPolicy(acct, arn))),
      },
      childOpts,
    );
    for (const email of emails) {
      new aws.sns.TopicSubscription(
        subscriptionName(name, email),
        { topic: topic.arn, protocol: "email", endpoint: email },
        childOpts,
      );
    }
    this.topicArn = topic.arn;
    this.keyArn = key.arn;
    this.alarms = {};
    this.alarmName = name;
    this.childOpts = childOpts;
    this.evaluationPeriods = evaluationPeriods;
    this.watch(args.healthChecks);
    this.registerOutputs({ topicArn: this.topicArn, keyArn: this.keyArn });
  }

  /**
   * Adds an alarm per health check (label → id). The topic exists first so that components
   * built later can notify it too; labels must be unique.
   */
  watch(healthChecks: Record<string, pulumi.Input<string>>): void {
    const problems = checkAlarmsArgs({
      healthChecks,
      emails: [],
      evaluationPeriods: this.evaluationPeriods,
    });
    for (const label of Object.keys(healthChecks)) {
      if (this.alarms[label]) {
        problems.push(`health check label ${JSON.stringify(label)} is watched already`);
      }
    }
    if (problems.length > 0) {
      throw new Error(`Alarms ${this.alarmName}: ${problems.join("; ")}`);
    }
    for (const [label, id] of Object.entries(healthChecks)) {
      this.alarms[label] = new aws.cloudwatch.MetricAlarm(
        `${this.alarmName}-${label}`,
        healthCheckAlarmArgs({
          label,
          healthCheckId: id,
          topicArn: this.topicArn,
          evaluationPeriods: this.evaluationPeriods,
        }),
        this.childOpts,
      );
    }
  }
}

/** Problems with the arguments, as sentences; empty when they are fine. */
export function checkAlarmsArgs(args: {
  healthChecks: Record<string, unknown>;
  emails: string[];
  evaluationPeriods: number;
}): string[] {
  const problems: string[] = [];
  const email = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;
  for (const e of args.emails) {
    if (!email.test(e)) {
      problems.push(`hastack:alerts.emails: ${JSON.stringify(e)} is not an email address`);
    }
  }
  const seen = new Set<string>();
  for (const e of args.emails.map((x) => x.toLowerCase())) {
    if (seen.has(e)) {
      problems.push(`hastack:alerts.emails: ${e} is listed twice`);
    }
    seen.add(e);
  }
  for (const label of Object.keys(args.healthChecks)) {
    if (!/^[a-z0-9][a-z0-9-]*$/.test(label)) {
      problems.push(
        `health check label ${JSON.stringify(label)} must be lowercase letters, digits and dashes`,
      );
    }
  }
  if (![1, 2].includes(args.evaluationPeriods)) {
    problems.push(
      `evaluationPeriods must be 1 or 2 (minutes below healthy), got ${args.evaluationPeriods}`,
    );
  }
  return problems;
}

/** `alerts-email-it-oncall-kantor-contoh-co-id`: derived from the address, not its position. */
export function subscriptionName(name: string, email: string): string {
  return `${name}-email-${email
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, "-")
    .replace(/^-|-$/g, "")}`;
}

/**
 * HealthCheckStatus is 1 while Route 53 sees the endpoint healthy, 0 when not. Minimum over
 * 60 s below 1 means at least one unhealthy verdict in the minute. Missing data is breaching:
 * a deleted or broken health check must not look healthy.
 */
export function healthCheckAlarmArgs(o: {
  label: string;
  healthCheckId: pulumi.Input<string>;
  topicArn: pulumi.Input<string>;
  evaluationPeriods: number;
}): aws.cloudwatch.MetricAlarmArgs {
  return {
    alarmDescription: `hastack: Route 53 health check ${o.label} is unhealthy (see docs/operations-impact.md)`,
    namespace: "AWS/Route53",
    metricName: "HealthCheckStatus",
    dimensions: { HealthCheckId: o.healthCheckId },
    statistic: "Minimum",
    period: 60,
    evaluationPeriods: o.evaluationPeriods,
    datapointsToAlarm: o.evaluationPeriods,
    threshold: 1,
    comparisonOperator: "LessThanThreshold",
    treatMissingData: "breaching",
    alarmActions: [o.topicArn],
    okActions: [o.topicArn],
    tags: { "hastack:healthCheck": o.label },
  };
}

/** Key policy: the account administers the key; CloudWatch may encrypt alarm messages with it. */
export function alertsKeyPolicy(accountId: string): Record<string, unknown> {
  return {
    Version: "2012-10-17",
    Statement: [
      {
        Sid: "AccountAdministers",
        Effect: "Allow",
        Principal: { AWS: `arn:aws:iam::${accountId}:root` },
        Action: "kms:*",
        Resource: "*",
      },
      {
        Sid: "CloudWatchAlarmsPublish",
        Effect: "Allow",
        Principal: { Service: "cloudwatch.amazonaws.com" },
        Action: ["kms:Decrypt", "kms:GenerateDataKey*"],
        Resource: "*",
        Condition: { StringEquals: { "aws:SourceAccount": accountId } },
      },
    ],
  };
}

/** Topic policy: the account owns the topic; CloudWatch alarms of this account may publish. */
export function alertsTopicPolicy(accountId: string, topicArn: string): Record<string, unknown> {
  return {
    Version: "2012-10-17",
    Statement: [
      {
        Sid: "AccountOwns",
        Effect: "Allow",
        Principal: { AWS: `arn:aws:iam::${accountId}:root` },
        Action: [
          "SNS:GetTopicAttributes",
          "SNS:SetTopicAttributes",
          "SNS:AddPermission",
          "SNS:RemovePermission",
          "SNS:DeleteTopic",
          "SNS:Subscribe",
          "SNS:ListSubscriptionsByTopic",
          "SNS:Publish",
        ],
        Resource: topicArn,
      },
      {
        Sid: "CloudWatchAlarmsPublish",
        Effect: "Allow",
        Principal: { Service: "cloudwatch.amazonaws.com" },
        Action: "SNS:Publish",
        Resource: topicArn,
        Condition: {
          StringEquals: { "aws:SourceAccount": accountId },
          ArnLike: { "aws:SourceArn": `arn:aws:cloudwatch:*:${accountId}:alarm:*` },
        },
      },
    ],
  };
}
