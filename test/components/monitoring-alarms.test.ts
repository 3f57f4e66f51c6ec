// hastack:monitoring:Alarms under the SDK mock runtime: one CloudWatch alarm per health check,
// an encrypted SNS topic CloudWatch may publish to, one email subscription per address, all
// through the us-east-1 provider when one is given.
import { expect } from "chai";
import { ofType } from "../support/deployment-queries";
import * as pulumi from "@pulumi/pulumi";
import * as aws from "@pulumi/aws";
import { Deployment, runUnderMocks } from "../../lib/synth/offline-synth";
import {
  Alarms,
  alertsKeyPolicy,
  alertsTopicPolicy,
  checkAlarmsArgs,
  subscriptionName,
} from "../../components/monitoring";

const HEALTH_CHECKS = {
  "mail-primary": "hc-mail-primary",
  "mail-standby": "hc-mail-standby",
  "pbx-primary": "hc-pbx-primary",
};

describe("Alarms (hastack:monitoring:Alarms)", () => {
  let d: Deployment;
  before(async function () {
    this.timeout(180_000);
    d = await runUnderMocks(async () => {
      new Alarms("alerts", {
        healthChecks: HEALTH_CHECKS,
        emails: ["it-oncall@kantor-contoh.co.id", "budi.santoso@kantor-contoh.co.id"],
      });
    });
  });

  it("declares exactly: component, key, alias, topic, topic policy, 2 subscriptions, 3 alarms", () => {
    const counts: Record<string, number> = {};
    for (const r of d.deployment.resources) {
      counts[r.type] = (counts[r.type] ?? 0) + 1;
    }
    expect(counts).to.deep.equal({
      "pulumi:pulumi:Stack": 1,
      "hastack:monitoring:Alarms": 1,
      "aws:kms/key:Key": 1,
      "aws:kms/alias:Alias": 1,
      "aws:sns/topic:Topic": 1,
      "aws:sns/topicPolicy:TopicPolicy": 1,
      "aws:sns/topicSubscription:TopicSubscription": 2,
      "aws:cloudwatch/metricAlarm:MetricAlarm": 3,
    });
  });

  it("every child is parented to the component and named after it", () => {
    const component = ofType(d, "hastack:monitoring:Alarms")[0];
    for (const r of d.deployment.resources.filter((x) => x.custom)) {
      expect(r.parent, r.name).to.equal(component.urn);
      expect(r.name.startsWith("alerts-"), r.name).to.equal(true);
    }
  });

  it("one alarm per health check: AWS/Route53 HealthCheckStatus < 1 over 60 s, missing data breaching", () => {
    const alarms = ofType(d, "aws:cloudwatch/metricAlarm:MetricAlarm");
    const topic = ofType(d, "aws:sns/topic:Topic")[0];
    expect(alarms.map((a) => a.name).sort()).to.deep.equal([
      "alerts-mail-primary",
      "alerts-mail-standby",
      "alerts-pbx-primary",
    ]);
    for (const a of alarms) {
      const label = a.name.replace(/^alerts-/, "");
      expect(a.inputs).to.include({
        namespace: "AWS/Route53",
        metricName: "HealthCheckStatus",
        statistic: "Minimum",
        period: 60,
        evaluationPeriods: 1,
        datapointsToAlarm: 1,
        threshold: 1,
        comparisonOperator: "LessThanThreshold",
        treatMissingData: "breaching",
      });
      expect(a.inputs.dimensions).to.deep.equal({
        HealthCheckId: HEALTH_CHECKS[label as keyof typeof HEALTH_CHECKS],
      });
      const arn = `arn:aws:sns:region:123456789012:${topic.name}`;
      expect(a.inputs.alarmActions).to.deep.equal([arn]);
      expect(a.inputs.okActions).to.deep.equal([arn]);
    }
  });

  it("the topic is encrypted with the customer-managed key, not alias/aws/sns", () => {
    const topic = ofType(d, "aws:sns/topic:Topic")[0];
    const key = ofType(d, "aws:kms/key:Key")[0];
    expect(topic.inputs.kmsMasterKeyId).to.be.a("string").and.to.include(key.id!);
    expect(topic.inputs.kmsMasterKeyId).not.to.equal("alias/aws/sns");
    expect(key.inputs.enableKeyRotation).to.equal(true);
  });

  it("CloudWatch may use the key and publish to the topic (and only for this account)", () => {
    const key = ofType(d, "aws:kms/key:Key")[0];
    const policy = JSON.parse(key.inputs.policy as string);
    const cw = policy.Statement.find((s: { Sid: string }) => s.Sid === "CloudWatchAlarmsPublish");
    expect(cw.Principal).to.deep.equal({ Service: "cloudwatch.amazonaws.com" });
    expect(cw.Action).to.deep.equal(["kms:Decrypt", "kms:GenerateDataKey*"]);
    expect(cw.Condition.StringEquals["aws:SourceAccount"]).to.equal("123456789012");
    const tp = JSON.parse(ofType(d, "aws:sns/topicPolicy:TopicPolicy")[0].inputs.policy as string);
    const pub = tp.Statement.find((s: { Sid: string }) => s.Sid === "CloudWatchAlarmsPublish");
    expect(pub.Action).to.equal("SNS:Publish");
    expect(pub.Condition.ArnLike["aws:SourceArn"]).to.equal(
      "arn:aws:cloudwatch:*:123456789012:alarm:*",
    );
  });

  it("one email subscription per address, named after the address", () => {
    const subs = ofType(d, "aws:sns/topicSubscription:TopicSubscription");
    expect(subs.map((s) => [s.name, s.inputs.protocol, s.inputs.endpoint]).sort()).to.deep.equal([
      [
        "alerts-email-budi-santoso-kantor-contoh-co-id",
        "email",
        "budi.santoso@kantor-contoh.co.id",
      ],
      ["alerts-email-it-oncall-kantor-contoh-co-id", "email", "it-oncall@kantor-contoh.co.id"],
    ]);
  });

  it("no emails: the topic and alarms still exist, no subscription", async function () {
    this.timeout(180_000);
    const d2 = await runUnderMocks(async () => {
      new Alarms("alerts", { healthChecks: { "mysql-primary": "hc-1" } });
    });
    expect(ofType(d2, "aws:sns/topicSubscription:TopicSubscription")).to.have.length(0);
    expect(ofType(d2, "aws:cloudwatch/metricAlarm:MetricAlarm")).to.have.length(1);
  });
});

describe("Alarms: every AWS resource goes through the us-east-1 provider", () => {
  it("passes the provider to each child and to the caller-identity lookup", async function () {
    this.timeout(180_000);
    const byName: Record<string, string | undefined> = {};
    const callProviders: (string | undefined)[] = [];
    await pulumi.runtime.setMocks(
      {
        newResource(args) {
          byName[args.name] = args.provider;
          return {
            id: `${args.name}-id`,
            state: { ...args.inputs, arn: `arn:aws:mock:::${args.name}` },
          };
        },
        call(args) {
          callProviders.push(args.provider);
          return { accountId: "123456789012" };
        },
      },
      "hastack",
      "test",
      false,
    );
    const done = new Promise<void>((resolve) => {
      const useast1 = new aws.Provider("us-east-1", { region: "us-east-1" });
      const alarms = new Alarms("alerts", {
        healthChecks: { "mail-primary": "hc-1" },
        emails: ["a@kantor-contoh.co.id"],
        provider: useast1,
      });
      alarms.topicArn.apply(() => resolve());
    });
    await done;
    // Registrations still in flight when the topic resolved must land before we look (≤ 5 s).
    for (
      let i = 0;
      i < 100 && Object.keys(byName).filter((n) => n.startsWith("alerts-")).length < 6;
      i++
    ) {
      await new Promise((r) => setTimeout(r, 50));
    }
    const children = Object.keys(byName).filter((n) => n.startsWith("alerts-"));
    expect(children.sort()).to.deep.equal([
      "alerts-email-a-kantor-contoh-co-id",
      "alerts-key",
      "alerts-key-alias",
      "alerts-mail-primary",
      "alerts-topic",
      "alerts-topic-policy",
    ]);
    for (const n of children) {
      expect(byName[n], n).to.match(/pulumi:providers:aws::us-east-1::/);
    }
    expect(callProviders.length).to.be.greaterThan(0);
    expect(
      callProviders.every((p) => p !== undefined && /pulumi:providers:aws::us-east-1::/.test(p)),
    ).to.equal(true);
  });
});

describe("Alarms: argument checks", () => {
  const cases: [string, Parameters<typeof checkAlarmsArgs>[0], RegExp | null][] = [
    [
      "valid",
      { healthChecks: { "mail-primary": 1 }, emails: ["a@b.co.id"], evaluationPeriods: 2 },
      null,
    ],
    [
      "a bad email",
      { healthChecks: {}, emails: ["not-an-email"], evaluationPeriods: 1 },
      /"not-an-email" is not an email address/,
    ],
    [
      "a duplicate email",
      { healthChecks: {}, emails: ["a@b.co.id", "A@b.co.id"], evaluationPeriods: 1 },
      /a@b\.co\.id is listed twice/,
    ],
    [
      "a bad label",
      { healthChecks: { "Mail Primary": 1 }, emails: [], evaluationPeriods: 1 },
      /label "Mail Primary"/,
    ],
    [
      "3 evaluation periods",
      { healthChecks: {}, emails: [], evaluationPeriods: 3 },
      /evaluationPeriods must be 1 or 2/,
    ],
  ];
  for (const [what, args, re] of cases) {
    it(what, () => {
      const problems = checkAlarmsArgs(args);
      if (re === null) {
        expect(problems).to.deep.equal([]);
      } else {
        expect(problems.join("\n")).to.match(re);
      }
    });
  }
  it("the component refuses bad arguments, listing every problem at once", async () => {
    let err: Error | undefined;
    await runUnderMocks(async () => {
      try {
        new Alarms("alerts", { healthChecks: {}, emails: ["x", "y"], evaluationPeriods: 5 });
      } catch (e) {
        err = e as Error;
      }
    });
    expect(err?.message).to.match(
      /"x" is not an email address; .*"y" is not an email address; evaluationPeriods must be 1 or 2/,
    );
  });
  it("subscription names derive from the address", () => {
    expect(subscriptionName("alerts", "IT.OnCall@Kantor-Contoh.co.id")).to.equal(
      "alerts-email-it-oncall-kantor-contoh-co-id",
    );
  });
  it("policies name the account", () => {
    expect(JSON.stringify(alertsKeyPolicy("111122223333"))).to.include(
      "arn:aws:iam::111122223333:root",
    );
    expect(JSON.stringify(alertsTopicPolicy("111122223333", "arn:t"))).to.include(
      '"Resource":"arn:t"',
    );
  });
});
