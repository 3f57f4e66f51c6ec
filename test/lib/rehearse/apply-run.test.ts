// `--apply` on the rehearsal's DNS (issue 12, lib/rehearse/stack/apply-run.ts): the record-set
// changes of a real plan (the prod mail pair's flip) made through the real stand-ins process
// (SIGHUP re-renders the zones) and a real bind9, both in a network namespace this test creates:
// each step gives a new SOA serial, bind9 answers the new records, and a plan applied to a
// rehearsal that is not at BEFORE fails at its first step and runs nothing after it.
import { expect } from "chai";
import * as crypto from "crypto";
import { execFileSync, spawnSync } from "child_process";
import { StandInWorld, startStandInWorld } from "../../support/standins-world";
import { Deployment } from "../../../lib/synth/offline-synth";
import { buildModel } from "../../../lib/rehearse/stack/model";
import { planApply } from "../../../lib/rehearse/stack/apply";
import {
  ApplyTarget,
  changeConfig,
  executePlan,
  servedSerial,
} from "../../../lib/rehearse/stack/apply-run";
import { StandInConfig } from "../../../lib/rehearse/stack/standins";
import { synthProd } from "../../support/stack-files";

const REGION = "ap-southeast-3";

describe("rehearse apply: record and parameter changes on the stand-ins' config", function () {
  this.timeout(300_000);
  let base: Deployment;
  let flipped: Deployment;
  before(async () => {
    base = await synthProd();
    flipped = await synthProd((c) => {
      c["hastack:mysql"].active = "standby";
    });
  });

  function config(d: Deployment): StandInConfig {
    const m = buildModel(d, [], REGION);
    return {
      dns: { zones: m.zones },
      parameters: { "/hastack/mysql/active-side": { type: "String", value: "primary" } },
    } as unknown as StandInConfig;
  }

  it("turns BEFORE's zones and parameters into AFTER's, step by step", () => {
    const cfg = config(base);
    const plan = planApply(base, flipped, { region: REGION });
    for (const s of plan.steps.filter((x) => x.kind === "record" || x.kind === "parameter")) {
      changeConfig(cfg, s);
    }
    expect(cfg.dns.zones).to.deep.equal(config(flipped).dns.zones);
    expect(cfg.parameters["/hastack/mysql/active-side"].value).to.equal("standby");
  });

  it("refuses a record change when the rehearsal is not at BEFORE", () => {
    const cfg = config(flipped);
    const step = planApply(base, flipped, { region: REGION }).steps.find(
      (s) => s.kind === "record",
    )!;
    expect(() => changeConfig(cfg, step)).to.throw(
      /not as in BEFORE \(the rehearsal is not at BEFORE\)/,
    );
  });
});

const root = process.getuid?.() === 0;
const haveTools = ["named", "rndc", "dig", "openssl"].every(
  (b) => spawnSync("sh", ["-c", `command -v ${b} || test -x /usr/sbin/${b}`]).status === 0,
);

(root && haveTools ? describe : describe.skip)(
  "rehearse apply: records through the real stand-ins and bind9",
  function () {
    this.timeout(300_000);
    const ns = `hsa-${crypto.randomBytes(3).toString("hex")}`;
    let base: Deployment;
    let flipped: Deployment;
    let world: StandInWorld;
    const domain = "kantor-contoh.co.id";

    const dig = (name: string): string[] =>
      execFileSync("ip", ["netns", "exec", ns, "dig", "+short", "@127.0.0.1", name, "A"], {
        encoding: "utf8",
      })
        .trim()
        .split("\n")
        .filter(Boolean)
        .sort();

    before(async () => {
      base = await synthProd();
      flipped = await synthProd((c) => {
        c["hastack:mail"].active = "standby";
      });
      world = await startStandInWorld({
        ns,
        region: REGION,
        model: buildModel(base, [], REGION),
        domain,
        ready: "ssm on",
      });
    });

    after(() => {
      world?.stop();
    });

    it("applies the mail flip: new answers, a new serial per step; again from BEFORE it fails first", async () => {
      const plan = planApply(base, flipped, { region: REGION });
      expect(plan.steps.every((s) => s.kind === "record")).to.equal(true);
      const target: ApplyTarget = {
        router: ns,
        model: buildModel(base, [], REGION),
        standInsConfig: world.cfgFile,
        standInsPid: world.standInsPid,
        commandContext: {},
        unmasked: new Map(),
      };
      const internal = `mail.internal.${domain}`;
      const before = dig(internal);
      const serial0 = servedSerial(ns, domain);
      const lines: string[] = [];
      const r = await executePlan(plan, target, (l) => lines.push(l));
      expect(r.ok, lines.join("\n")).to.equal(true);
      expect(r.steps.map((s) => s.outcome)).to.deep.equal(plan.steps.map(() => "applied"));
      // Both zones reload on each step: the public zone's serial moved once per step.
      expect(servedSerial(ns, domain)).to.be.at.least(serial0 + plan.steps.length);
      const want = buildModel(flipped, [], REGION)
        .zones.find((z) => z.name === `internal.${domain}`)!
        .records.find((x) => x.name === internal && x.failover === "PRIMARY")!.values;
      expect(dig(internal)).to.deep.equal(want);
      expect(dig(internal)).to.not.deep.equal(before);

      // The same plan again: the rehearsal is at AFTER now, so its first step fails and
      // nothing after it runs, as `pulumi up` stops.
      const again = await executePlan(plan, target, () => undefined);
      expect(again.ok).to.equal(false);
      expect(again.steps.map((s) => s.outcome)).to.deep.equal([
        "failed",
        ...plan.steps.slice(1).map(() => "not run"),
      ]);
      expect(again.steps[0].error).to.contain(plan.steps[0].urn);
    });
  },
);
