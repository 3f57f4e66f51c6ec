// The pure parts of the whole-stack rehearsal (issue 11), against the prod synth and real
// checkers: security groups → nftables (loaded by `nft -c`), Route 53 → zone files
// (`named-checkzone`), failover answers, the SSM stand-in's policy evaluation, generated secrets.
import { expect } from "chai";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { execFileSync, spawnSync } from "child_process";
import { PACKAGE_ROOT } from "../../../lib/package-root";
import { Deployment, synthesize } from "../../../lib/synth/offline-synth";
import { StackModel, buildModel, inCidr } from "../../../lib/rehearse/stack/model";
import { renderRuleset, ruleToNft } from "../../../lib/rehearse/stack/nft";
import { answeredRecords, renderZoneFile } from "../../../lib/rehearse/stack/dns";
import { isAllowed, parameterArn } from "../../../lib/rehearse/stack/iam";
import { NEEDS_THE_INTERNET } from "../../../lib/rehearse/stack/checks";
import { generateParameters } from "../../../lib/rehearse/stack/secrets";
import { parseStackArgs } from "../../../lib/rehearse/stack";
import { DrillUsageError } from "../../../lib/rehearse/drill";

const ADMIN = ["203.0.113.10/32", "198.51.100.64/29"];
const ROUTER = { gateway: "10.20.0.1", resolver: "10.20.0.2", imds: "169.254.169.254" };

function which(bin: string): boolean {
  return spawnSync("sh", ["-c", `command -v ${bin} || test -x /usr/sbin/${bin}`]).status === 0;
}

describe("stack rehearsal: the synth as a rehearsal model", function () {
  this.timeout(120_000);
  let deployment: Deployment;
  let model: StackModel;
  before(async () => {
    deployment = await synthesize({ projectDir: PACKAGE_ROOT, stack: "prod" });
    model = buildModel(deployment, ADMIN, "ap-southeast-3");
  });

  it("boots every instance of the synth, each with its exact user-data", () => {
    const instances = deployment.deployment.resources.filter(
      (r) => r.type === "aws:ec2/instance:Instance",
    );
    expect(model.servers.map((s) => s.logical).sort()).to.deep.equal(
      instances.map((i) => i.name).sort(),
    );
    for (const s of model.servers) {
      const text = s.userData.toString("utf8");
      expect(text.startsWith("#cloud-config"), s.name).to.equal(true);
      expect(inCidr(s.privateIp, model.vpcCidr), s.name).to.equal(true);
      expect(s.publicIp, `${s.name} EIP`).to.match(/^198\.51\.100\.\d+$/);
      expect(s.policy.length, `${s.name} instance profile policy`).to.be.greaterThan(0);
    }
    // Every health check targets an EIP the model maps to a server's private address.
    for (const hc of model.healthChecks) {
      expect(
        model.nat.some((n) => n.publicIp === hc.ipAddress),
        hc.id,
      ).to.equal(true);
    }
  });

  it("rehearses the synth's own addresses: all valid and distinct, none remapped", () => {
    const all = model.servers.flatMap((s) => [s.privateIp, ...s.secondaryIps]);
    expect(all.every((a) => a.split(".").every((o) => Number(o) <= 255))).to.equal(true);
    expect(new Set(all).size).to.equal(all.length);
    // The mock once gave the mail standby 10.20.207.256 and the model had to remap it.
    expect(model.remapped).to.deep.equal([]);
    expect(model.servers.find((s) => s.name === "mail-standby")?.secondaryIps).to.deep.equal([
      "10.20.207.11",
    ]);
  });

  describe("security groups → nftables", () => {
    it("renders a CIDR rule, a security-group reference and all-traffic", () => {
      expect(
        ruleToNft({
          direction: "ingress",
          protocol: "tcp",
          fromPort: 22,
          toPort: 22,
          cidr: "203.0.113.10/32",
          description: "",
        }),
      ).to.equal("ip saddr 203.0.113.10/32 meta l4proto tcp th dport 22 accept");
      expect(
        ruleToNft({
          direction: "ingress",
          protocol: "udp",
          fromPort: 10000,
          toPort: 20000,
          group: "sg-1a",
          description: "",
        }),
      ).to.equal("ip saddr @sg_sg_1a meta l4proto udp th dport 10000-20000 accept");
      expect(
        ruleToNft({ direction: "egress", protocol: "-1", cidr: "0.0.0.0/0", description: "" }),
      ).to.equal("accept");
      expect(() =>
        ruleToNft({ direction: "ingress", protocol: "gre", cidr: "10.0.0.0/8", description: "x" }),
      ).to.throw(/protocol gre is not rehearsed/);
    });

    it("never opens the MySQL port to the mail servers: the rule set has no mail-group rule on 3306", () => {
      const rules = renderRuleset(model, ROUTER);
      const mysqlIdx = model.servers.findIndex(
        (s) => s.service === "mysql" && s.role === "primary",
      );
      const chain = rules.split(`chain ingress_${mysqlIdx} {`)[1].split("}")[0];
      const mailSg = model.servers.find((s) => s.service === "mail")!.securityGroups[0];
      expect(chain).to.include("th dport 3306 accept");
      expect(chain).not.to.include(`@sg_${mailSg.replace(/-/g, "_")}`);
      expect(chain.trim().split("\n").pop()).to.match(/counter drop/);
    });

    it("loads into nftables (nft -c, in a namespace the test creates)", function () {
      if (process.getuid?.() !== 0 || !which("nft")) {
        this.skip(); // needs root and nft (test/install-deps.sh installs nftables)
      }
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), "hastack-nft-"));
      const ns = `hstest-${process.pid}`;
      try {
        fs.writeFileSync(path.join(dir, "r.nft"), renderRuleset(model, ROUTER));
        execFileSync("ip", ["netns", "add", ns]);
        const r = spawnSync(
          "ip",
          ["netns", "exec", ns, "nft", "-c", "-f", path.join(dir, "r.nft")],
          { encoding: "utf8" },
        );
        expect(r.stderr).to.equal("");
        expect(r.status).to.equal(0);
      } finally {
        spawnSync("ip", ["netns", "delete", ns]);
        fs.rmSync(dir, { recursive: true, force: true });
      }
    });
  });

  describe("Route 53 → bind9 zones", () => {
    it("renders every zone so that named-checkzone loads it", function () {
      if (!which("named-checkzone")) {
        this.skip(); // bind9-utils: test/install-deps.sh
      }
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), "hastack-zone-"));
      try {
        expect(model.zones.map((z) => [z.name, z.private])).to.deep.include.members([
          ["kantor-contoh.co.id", false],
          ["internal.kantor-contoh.co.id", true],
        ]);
        for (const z of model.zones) {
          const file = path.join(dir, `${z.name}.zone`);
          fs.writeFileSync(file, renderZoneFile(z, {}, 7));
          const r = spawnSync("named-checkzone", ["-i", "full", z.name, file], {
            encoding: "utf8",
          });
          expect(r.stdout + r.stderr, z.name).to.match(/loaded serial 7[\s\S]*OK/);
          expect(r.status, r.stdout).to.equal(0);
        }
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    });

    it("answers a failover name with the primary while healthy, the secondary when not, the primary when both fail", () => {
      const internal = model.zones.find((z) => z.private)!;
      const primary = internal.records.find(
        (r) => r.failover === "PRIMARY" && r.name.startsWith("db."),
      )!;
      const secondary = internal.records.find(
        (r) => r.failover === "SECONDARY" && r.name === primary.name,
      )!;
      const answer = (h: Record<string, boolean>): string[] =>
        answeredRecords(internal, h)
          .filter((r) => r.name === primary.name)
          .flatMap((r) => r.values);
      expect(answer({})).to.deep.equal(primary.values);
      expect(answer({ [primary.healthCheckId!]: false })).to.deep.equal(secondary.values);
      expect(
        answer({ [primary.healthCheckId!]: false, [secondary.healthCheckId!]: false }),
      ).to.deep.equal(primary.values);
    });
  });

  describe("SSM stand-in: the instance profile's policy decides", () => {
    it("lets the mail server read /hastack/mail/* and refuses /hastack/mysql/*", () => {
      const mail = model.servers.find((s) => s.service === "mail")!;
      const arn = (n: string): string => parameterArn("ap-southeast-3", "123456789012", n);
      expect(
        isAllowed(mail.policy, "ssm:GetParameter", arn("/hastack/mail/doveadm-password")),
      ).to.equal(true);
      expect(
        isAllowed(mail.policy, "ssm:GetParameter", arn("/hastack/mysql/replication-password")),
      ).to.equal(false);
      expect(
        isAllowed(mail.policy, "ssm:PutParameter", arn("/hastack/mail/doveadm-password")),
      ).to.equal(false);
    });

    it("decrypts only under the role's own PARAMETER_ARN encryption context, via SSM", () => {
      const mail = model.servers.find((s) => s.service === "mail")!;
      const key = model.parameters.find((p) => p.name.endsWith("/mail/users"))?.keyId;
      if (!key) {
        return; // a stack whose SecureStrings use aws/ssm: nothing to decrypt by policy
      }
      const ctx = (
        n: string,
        via = "ssm.ap-southeast-3.amazonaws.com",
      ): Record<string, string> => ({
        "kms:EncryptionContext:PARAMETER_ARN": parameterArn("ap-southeast-3", "123456789012", n),
        "kms:ViaService": via,
      });
      expect(isAllowed(mail.policy, "kms:Decrypt", key, ctx("/hastack/mail/users"))).to.equal(true);
      expect(
        isAllowed(mail.policy, "kms:Decrypt", key, ctx("/hastack/mysql/replication-password")),
      ).to.equal(false);
      expect(
        isAllowed(mail.policy, "kms:Decrypt", key, ctx("/hastack/mail/users", "s3.amazonaws.com")),
      ).to.equal(false);
      expect(isAllowed(mail.policy, "kms:Decrypt", key, {}), "no context, no decrypt").to.equal(
        false,
      );
    });

    it("an explicit Deny wins over an Allow", () => {
      const policy = [
        {
          effect: "Allow" as const,
          actions: ["ssm:Get*"],
          resources: ["arn:aws:ssm:*:*:parameter/hastack/*"],
        },
        {
          effect: "Deny" as const,
          actions: ["ssm:GetParameter"],
          resources: ["arn:aws:ssm:*:*:parameter/hastack/mysql/*"],
        },
      ];
      expect(
        isAllowed(policy, "ssm:GetParameters", "arn:aws:ssm:r:1:parameter/hastack/mysql/x"),
      ).to.equal(true);
      expect(
        isAllowed(policy, "ssm:GetParameter", "arn:aws:ssm:r:1:parameter/hastack/mysql/x"),
      ).to.equal(false);
    });
    it("ForAllValues: every value of the request's key must match; a missing key holds (AWS)", () => {
      const policy = [
        {
          effect: "Allow" as const,
          actions: ["route53:ChangeResourceRecordSets"],
          resources: ["arn:aws:route53:::hostedzone/Z1"],
          conditions: {
            "ForAllValues:StringEquals": {
              "route53:ChangeResourceRecordSetsNormalizedRecordNames": [
                "_acme-challenge.mail.example.com",
                "_acme-challenge.mx1.example.com",
              ],
            },
          },
        },
      ];
      const change = (names?: string | string[]): boolean =>
        isAllowed(
          policy,
          "route53:ChangeResourceRecordSets",
          "arn:aws:route53:::hostedzone/Z1",
          names === undefined
            ? {}
            : { "route53:ChangeResourceRecordSetsNormalizedRecordNames": names },
        );
      expect(
        change(["_acme-challenge.mail.example.com", "_acme-challenge.mx1.example.com"]),
      ).to.equal(true);
      expect(change("_acme-challenge.mail.example.com")).to.equal(true);
      expect(change(["_acme-challenge.mail.example.com", "mail.example.com"])).to.equal(false);
      expect(change(), "a missing key is an empty set: ForAllValues holds").to.equal(true);
    });
  });

  describe("generated parameter values", () => {
    it("keeps equal what the components make equal, and key halves match", function () {
      if (!which("ssh-keygen")) {
        this.skip(); // openssh-client: test/install-deps.sh
      }
      const g = generateParameters(model, "kantor-contoh.co.id").values;
      expect(g["/hastack/nas/mysql-backup-password"].value).to.equal(
        g["/hastack/mysql/backup-user-password"].value,
      );
      expect(g["/hastack/pbx/cdr-db-password"].value).to.equal(
        g["/hastack/mysql/cdr-user-password"].value,
      );
      expect(g["/hastack/mail/nas-backup-ssh-public-key"].value).to.equal(
        g["/hastack/nas/ssh-public-key"].value,
      );
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), "hastack-key-test-"));
      try {
        fs.writeFileSync(path.join(dir, "k"), g["/hastack/nas/ssh-private-key"].value, {
          mode: 0o600,
        });
        const derived = execFileSync("ssh-keygen", ["-y", "-f", path.join(dir, "k")], {
          encoding: "utf8",
        }).trim();
        expect(g["/hastack/nas/ssh-public-key"].value.split(" ").slice(0, 2)).to.deep.equal(
          derived.split(" ").slice(0, 2),
        );
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
      // known_hosts lines pin the generated host keys, not the synth's mock ones.
      const hostPub = (svc: string, side: string): string => {
        fs.writeFileSync(path.join(dir, "h"), g[`/hastack/${svc}/ssh-host-key/${side}`].value, {
          mode: 0o600,
        });
        return execFileSync("ssh-keygen", ["-y", "-f", path.join(dir, "h")], { encoding: "utf8" })
          .trim()
          .split(" ")[1];
      };
      fs.mkdirSync(dir, { recursive: true });
      try {
        expect(g["/hastack/mail/ssh-known-hosts/primary"].value).to.contain(
          hostPub("mail", "standby"),
        );
        const sources = g["/hastack/nas/ssh-known-hosts-sources"].value;
        for (const [svc, side] of [
          ["mail", "primary"],
          ["mail", "standby"],
          ["pbx", "primary"],
          ["pbx", "standby"],
        ]) {
          expect(sources, `${svc} ${side}`).to.contain(hostPub(svc, side));
        }
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
      const mailPrimary = model.servers.find((s) => s.service === "mail" && s.role === "primary")!;
      expect(g["/hastack/mail/private-ip/primary"].value).to.equal(mailPrimary.privateIp);
      expect(g["/hastack/mail/users"].value).to.match(
        /^rehearsal@kantor-contoh\.co\.id:\{SHA512-CRYPT\}\$6\$/,
      );
    });
  });
});

describe("stack rehearsal flags", () => {
  it("defaults to prod, no drills; refuses drills until issue 12 and bad combinations", () => {
    expect(parseStackArgs([])).to.include({
      stack: "prod",
      drills: "none",
      keep: false,
      down: false,
      lockWait: 0,
    });
    expect(parseStackArgs(["--lock-wait", "600"]).lockWait).to.equal(600);
    expect(() => parseStackArgs(["--lock-wait", "-1"])).to.throw(DrillUsageError, /--lock-wait/);
    expect(() => parseStackArgs(["--drills", "all"])).to.throw(DrillUsageError, /issue 12/);
    expect(() => parseStackArgs(["--keep", "--down"])).to.throw(DrillUsageError, /exclude/);
    expect(() => parseStackArgs(["--stack", "../x"])).to.throw(DrillUsageError, /stack name/);
    expect(() => parseStackArgs(["--boot-timeout", "5"])).to.throw(DrillUsageError, /at least 60/);
    expect(() => parseStackArgs(["--bogus"])).to.throw(DrillUsageError, /unknown flag --bogus/);
  });
});

describe("stack rehearsal: units that fail only for want of a route out", () => {
  const cert = NEEDS_THE_INTERNET.find((n) => n.unit === "hastack-mail-cert.service")!;
  it("the ACME unit unable to reach Let's Encrypt is not rehearsed, not a failure", () => {
    // The journal of the prod rehearsal of 2026-11-30, as the report gave it.
    const journal =
      "hastack-mail-cert: no ACME certificate yet: obtaining one | An unexpected error occurred: | requests.exceptions.ConnectionError: HTTPSConnectionPool(host='acme-v02.api.letsencrypt.org', port=443): Max retries exceeded with url: /directory (Caused by NewConnectionError('<urllib3.connection.HTTPSConnection object at 0x7f>: Failed to establish a new connection: [Errno -3] Temporary failure in name resolution')) | hastack-mail-cert.service: Failed with result 'exit-code'.";
    expect(cert.because.test(journal)).to.equal(true);
  });
  it("the same unit failing for any other reason stays a failure", () => {
    for (const journal of [
      "hastack-mail-cert: certbot: command not found | hastack-mail-cert.service: Failed with result 'exit-code'.",
      "An unexpected error occurred: acme-v02.api.letsencrypt.org: Error creating new order :: too many certificates already issued",
    ]) {
      expect(cert.because.test(journal), journal).to.equal(false);
    }
  });
});
