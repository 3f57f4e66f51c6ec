// CIDRs parsed, not compared (issue 13): every CIDR key goes through one parser and a floor on
// the address space a list may open; every hostile value from the security review is refused as
// a config error naming its key, by the schema and by `npm run synth` (no stack trace).
import { expect } from "chai";
import { execFile } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { promisify } from "util";
import fc from "fast-check";
import { addressCount, parseCidr } from "../../../lib/config/cidr";
import { ConfigError, parseStackConfig } from "../../../lib/config/stack-config";
import { ingressRules } from "../../../components/server-pair";
import {
  PROJECT_DIR,
  prodConfigRaw,
  StackConfigDoc,
  synthProd,
  writeStackFile,
} from "../../support/stack-files";

const run = promisify(execFile);

function problemsOf(edit: (raw: StackConfigDoc) => void): string[] {
  const raw = prodConfigRaw();
  edit(raw);
  try {
    parseStackConfig(raw);
  } catch (e) {
    expect(e).to.be.instanceOf(ConfigError);
    return (e as ConfigError).problems.map((p) => `${p.key} ${p.message}`);
  }
  return [];
}

/** The three lists that open ports to the Internet, and how to set each on raw config. */
const LISTS: { key: string; set: (raw: StackConfigDoc, v: unknown) => void }[] = [
  { key: "hastack:adminCidrs", set: (r, v) => (r.adminCidrs = v) },
  { key: "hastack:officeCidrs", set: (r, v) => (r.officeCidrs = v) },
  { key: "hastack:pbx.sipTrunkCidrs", set: (r, v) => (r.pbx.sipTrunkCidrs = v) },
];

const EIGHT_SLASH_3 = [0, 32, 64, 96, 128, 160, 192, 224].map((o) => `${o}.0.0.0/3`);

/** Every hostile value of the review, with the entry (or list) the refusal must name. */
const HOSTILE: { what: string; value: string[]; names: string }[] = [
  {
    what: "two /1 halves",
    value: ["0.0.0.0/1", "128.0.0.0/1"],
    names: "[0] must be /16 or narrower",
  },
  { what: "a /0 spelled /00", value: ["0.0.0.0/00"], names: "[0] must be an IPv4 CIDR" },
  { what: "a /0 with leading zeros", value: ["000.0.0.0/0"], names: "[0] must be an IPv4 CIDR" },
  {
    what: "a host address with /0",
    value: ["203.0.113.10/0"],
    names: "[0] must be a network address",
  },
  { what: "eight /3 blocks", value: EIGHT_SLASH_3, names: "[7] must be /16 or narrower" },
  { what: "the world", value: ["0.0.0.0/0"], names: "[0] must be /16 or narrower" },
];

describe("CIDR parser (lib/config/cidr.ts)", () => {
  const accepted = [
    "203.0.113.10/32",
    "198.51.100.64/29",
    "10.0.0.0/8",
    "0.0.0.0/0",
    "255.255.255.255/32",
  ];
  for (const text of accepted) {
    it(`accepts ${text}`, () => {
      const r = parseCidr(text);
      expect(r.ok, JSON.stringify(r)).to.equal(true);
    });
  }
  const refused: [string, RegExp][] = [
    ["203.0.113.10", /prefix length is required/],
    ["0.0.0.0/00", /without leading zeros/],
    ["10.0.0.0/016", /without leading zeros/],
    ["000.0.0.0/0", /without leading zeros/],
    ["010.0.0.0/8", /without leading zeros/],
    ["0x0a.0.0.0/8", /four decimal octets/],
    ["10.0.0/8", /four decimal octets/],
    ["256.0.0.0/8", /four decimal octets/],
    ["10.0.0.0/33", /prefix length 0–32/],
    ["10.0.0.0/-1", /prefix length|octets/],
    ["203.0.113.10/0", /0\.0\.0\.0\/0 is the network of 203\.0\.113\.10\/0/],
    ["198.51.100.65/29", /198\.51\.100\.64\/29 is the network/],
    [" 10.0.0.0/8", /four decimal octets/],
    ["10.0.0.0/8 ", /without leading zeros|prefix/],
  ];
  for (const [text, reason] of refused) {
    it(`refuses ${JSON.stringify(text)}`, () => {
      const r = parseCidr(text);
      expect(r.ok).to.equal(false);
      expect(r.ok ? "" : r.reason).to.match(reason);
    });
  }

  it("counts overlapping entries once", () => {
    const cidrs = ["10.0.0.0/16", "10.0.1.0/24", "10.1.0.0/16"].map((t) => {
      const r = parseCidr(t);
      if (!r.ok) {
        throw new Error(t);
      }
      return r.cidr;
    });
    expect(addressCount(cidrs)).to.equal(2 * 65536);
  });
});

describe("CIDR keys in the stack config", () => {
  it("prod's CIDRs are accepted", () => {
    expect(problemsOf(() => {})).to.deep.equal([]);
  });

  for (const list of LISTS) {
    for (const h of HOSTILE) {
      it(`refuses ${h.what} in ${list.key}, naming the key`, () => {
        const problems = problemsOf((r) => list.set(r, h.value));
        expect(
          problems.some((p) => p.startsWith(`${list.key}${h.names}`)),
          problems.join("\n"),
        ).to.equal(true);
      });
    }

    it(`${list.key}: sixteen /20s are fine alone but more than a /16's worth together`, () => {
      const value = Array.from({ length: 17 }, (_, i) => `10.${i}.0.0/20`);
      const problems = problemsOf((r) => list.set(r, value));
      expect(problems).to.have.length(1);
      expect(problems[0]).to.match(
        new RegExp(
          `^${list.key.replace(".", "\\.")} must open at most 65536 addresses \\(a /16's worth\\) in total, got 69632`,
        ),
      );
      expect(problemsOf((r) => list.set(r, value.slice(0, 16)))).to.deep.equal([]);
    });
  }

  it("allowWideCidrs lifts the floor for one list, with a reason, up to a /8", () => {
    const trunk = ["198.18.0.0/15"];
    expect(problemsOf((r) => (r.pbx.sipTrunkCidrs = trunk))).to.deep.equal([
      'hastack:pbx.sipTrunkCidrs[0] must be /16 or narrower, got "198.18.0.0/15" (131072 addresses (a /15\'s worth)); to allow wider, set hastack:allowWideCidrs.pbx.sipTrunkCidrs to the reason (at most /8)',
    ]);
    const reason = "carrier XYZ's media servers, ticket IT-482";
    expect(
      problemsOf((r) => {
        r.pbx.sipTrunkCidrs = trunk;
        r.allowWideCidrs = { "pbx.sipTrunkCidrs": reason };
      }),
    ).to.deep.equal([]);
    // Lifted for the trunk list only.
    expect(
      problemsOf((r) => {
        r.officeCidrs = trunk;
        r.allowWideCidrs = { "pbx.sipTrunkCidrs": reason };
      }),
    ).to.have.length(1);
    // Never the world, reason or not.
    const world = problemsOf((r) => {
      r.pbx.sipTrunkCidrs = ["0.0.0.0/1", "128.0.0.0/1"];
      r.allowWideCidrs = { "pbx.sipTrunkCidrs": reason };
    });
    expect(world[0]).to.match(
      /^hastack:pbx\.sipTrunkCidrs\[0\] must be \/8 or narrower.*even with hastack:allowWideCidrs/,
    );
  });

  it("allowWideCidrs refuses an unknown list and a missing reason", () => {
    const problems = problemsOf((r) => (r.allowWideCidrs = { mysql: "because", adminCidrs: "" }));
    expect(problems.join("\n")).to.contain('hastack:allowWideCidrs has unknown key(s) "mysql"');
    expect(problems.join("\n")).to.contain("hastack:allowWideCidrs.adminCidrs needs a reason");
  });

  it("vpcCidr: parsed, private, /16–/23", () => {
    const withVpc = (cidr: string) =>
      problemsOf(
        (r) => (r.network = { vpcCidr: cidr, azs: ["ap-southeast-3a", "ap-southeast-3b"] }),
      );
    expect(withVpc("10.20.0.0/16")).to.deep.equal([]);
    expect(withVpc("172.16.4.0/22")).to.deep.equal([]);
    expect(withVpc("010.20.0.0/16")[0]).to.match(/^hastack:network\.vpcCidr must be an IPv4 CIDR/);
    expect(withVpc("10.20.0.1/16")[0]).to.match(
      /^hastack:network\.vpcCidr must be a network address/,
    );
    for (const bad of ["10.0.0.0/8", "10.20.0.0/24", "203.0.113.0/24", "100.64.0.0/16"]) {
      expect(withVpc(bad), bad).to.include(
        `hastack:network.vpcCidr must be a private range (10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16) from /16 to /23 (one /24 subnet per AZ), got "${bad}"`,
      );
    }
  });
});

describe("npm run synth refuses hostile CIDRs as config errors", () => {
  it("names every hostile key at once, exit 1, no stack trace, nothing written", async function () {
    const file = writeStackFile((c) => {
      c["hastack:adminCidrs"] = ["0.0.0.0/0"];
      c["hastack:officeCidrs"] = ["0.0.0.0/1", "128.0.0.0/1"];
      c["hastack:pbx"].sipTrunkCidrs = ["000.0.0.0/0"];
    });
    const out = path.join(path.dirname(file), "out.json");
    const synth = path.join(PROJECT_DIR, "dist", "scripts", "synth.js");
    let code = 0;
    let stderr = "";
    try {
      await run(process.execPath, [synth, "--stack", "prod", "--stack-file", file, "--out", out]);
    } catch (e) {
      code = (e as { code: number }).code;
      stderr = (e as { stderr: string }).stderr;
    }
    expect(code).to.equal(1);
    expect(stderr).to.contain("hastack:adminCidrs[0] must be /16 or narrower");
    expect(stderr).to.contain("hastack:officeCidrs[0] must be /16 or narrower");
    expect(stderr).to.contain("hastack:officeCidrs[1] must be /16 or narrower");
    expect(stderr).to.contain("hastack:pbx.sipTrunkCidrs[0] must be an IPv4 CIDR");
    expect(stderr).not.to.match(/\n\s+at /);
    expect(stderr).not.to.contain("unexpected failure");
    expect(fs.existsSync(out)).to.equal(false);
  });
});

// No security-group rule ever opens an admin port beyond the admin CIDRs, for any config the
// schema accepts (issue 10's law, issue 13's guard).
const ADMIN_PORTS = [22, 80, 443, 3306, 5038, 9100];

/** Any canonical CIDR, from a /0 to a /32, biased towards the narrow ones real configs hold. */
const anyCidr = fc
  .tuple(
    fc.integer({ min: 0, max: 2 ** 32 - 1 }),
    fc.oneof(fc.integer({ min: 0, max: 32 }), fc.integer({ min: 14, max: 32 })),
  )
  .map(([addr, prefix]) => {
    const size = 2 ** (32 - prefix);
    const net = addr - (addr % size);
    return `${net >>> 24}.${(net >>> 16) & 255}.${(net >>> 8) & 255}.${net & 255}/${prefix}`;
  });
const cidrList = (min: number) => fc.array(anyCidr, { minLength: min, maxLength: 4 });

function parsedAll(texts: string[]) {
  return texts.map((t) => {
    const r = parseCidr(t);
    if (!r.ok) {
      throw new Error(t);
    }
    return r.cidr;
  });
}

/** Whether every address of `cidr` is in one of `allowed` (union, so split lists count). */
function within(cidr: string, allowed: string[]): boolean {
  const [c] = parsedAll([cidr]);
  const union = parsedAll(allowed);
  return addressCount([...union, c]) === addressCount(union);
}

describe("property: no SG rule opens an admin port beyond the admin CIDRs", () => {
  it("for ingressRules of any accepted admin/office/trunk lists (pure, 500 runs)", () => {
    fc.assert(
      fc.property(cidrList(1), cidrList(0), cidrList(0), (admin, office, trunk) => {
        const accepted = problemsOf((r) => {
          r.adminCidrs = admin;
          r.officeCidrs = office;
          r.pbx.sipTrunkCidrs = trunk;
        });
        if (accepted.length > 0) {
          return true; // refused as a config error (problemsOf asserts the type)
        }
        const voice = [...trunk, ...office].map((cidr) => ({ cidr }));
        const rules = ingressRules(
          [
            {
              protocol: "tcp",
              fromPort: 5060,
              description: "sip",
              cidrs: voice.map((v) => v.cidr),
            },
            { protocol: "tcp", fromPort: 25, description: "smtp" },
          ],
          [22, 9100, 443],
          admin,
          [22],
        );
        for (const rule of rules) {
          const opensAdmin = ADMIN_PORTS.some((p) => rule.fromPort <= p && p <= rule.toPort);
          if (opensAdmin && rule.cidr !== undefined && !within(rule.cidr, admin)) {
            return false;
          }
        }
        return true;
      }),
      { numRuns: 500 },
    );
  });

  it("on the synthesized prod stack with any accepted CIDR lists (whole synth, 4 runs)", async function () {
    this.timeout(600_000);
    await fc.assert(
      fc.asyncProperty(cidrList(1), cidrList(0), cidrList(0), async (admin, office, trunk) => {
        const refused = problemsOf((r) => {
          r.adminCidrs = admin;
          r.officeCidrs = office;
          r.pbx.sipTrunkCidrs = trunk;
        });
        fc.pre(refused.length === 0);
        const d = await synthProd((c) => {
          c["hastack:adminCidrs"] = admin;
          c["hastack:officeCidrs"] = office;
          c["hastack:pbx"].sipTrunkCidrs = trunk;
        });
        for (const r of d.deployment.resources) {
          if (r.type !== "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule") {
            continue;
          }
          const i = r.inputs as { fromPort: number; toPort: number; cidrIpv4?: string };
          const opensAdmin = ADMIN_PORTS.some((p) => i.fromPort <= p && p <= i.toPort);
          if (opensAdmin && i.cidrIpv4 !== undefined && !within(i.cidrIpv4, admin)) {
            throw new Error(
              `${r.urn} opens ${i.fromPort} to ${i.cidrIpv4}, admin is ${admin.join(", ")}`,
            );
          }
        }
      }),
      // Narrow lists are accepted often enough that 6 whole synths run well within the timeout.
      { numRuns: 4, maxSkipsPerRun: 1000, endOnFailure: true },
    );
  });
});
