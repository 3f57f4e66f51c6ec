// Impact plans on synth pairs of the real program: temp copies of Pulumi.prod.yaml with one
// change each (flip `active`, step the mail migration, move a server), synthesized under mocks
// and diffed with the documented replace-forcing table.
import { expect } from "chai";
import {
  ImpactPlan,
  buildImpactPlan,
  decideExit,
  deploymentOutputs,
  planInputFromSynth,
  parseWindow,
} from "../../../lib/impact/impact-plan";
import { renderRunbook } from "../../../lib/announce/runbook";
import { Deployment } from "../../../lib/synth/offline-synth";
import { isSwitchResource, StackConfigDoc, synthProd } from "../../support/stack-files";

function plan(before: Deployment, after: Deployment): ImpactPlan {
  return buildImpactPlan(planInputFromSynth(before, after));
}

function impactful(p: ImpactPlan) {
  return p.steps.filter((s) => s.class !== "none");
}

describe("impact on synth pairs of Pulumi.prod.yaml", function () {
  this.timeout(180_000);
  let base: Deployment;
  let services: string[];
  before(async () => {
    base = await synthProd();
    services = Object.keys(deploymentOutputs(base)?.services ?? {});
  });

  it("the prod stack declares services to fail over", () => {
    expect(services).to.include("mail");
  });

  it("synth against itself: no steps, exit 0", () => {
    const p = plan(base, base);
    expect(p.steps).to.deep.equal([]);
    expect(decideExit(p).code).to.equal(0);
  });

  describe("every failover and fallback is at most a brief interruption of that service alone", () => {
    for (const svc of ["mail", "pbx", "mysql", "nas"]) {
      it(`${svc}: primary → standby → primary`, async function () {
        expect(services, "index.ts declares every service").to.include(svc);
        const flipped = await synthProd((c: StackConfigDoc) => {
          c[`hastack:${svc}`].active = "standby";
        });
        for (const [from, to, label] of [
          [base, flipped, "failover"],
          [flipped, base, "fallback"],
        ] as const) {
          const p = plan(from, to);
          const hits = impactful(p);
          expect(hits.length, `${label}: the switch must show`).to.be.greaterThan(0);
          expect(
            p.worst,
            `${label}: ${hits.map((h) => `${h.class} ${h.name}`).join(", ")}`,
          ).to.equal("brief");
          expect(new Set(p.steps.map((s) => s.service)), label).to.deep.equal(new Set([svc]));
          expect(decideExit(p).code, label).to.equal(0);
          // Only switch resources move (records, the EIP association, role commands, the
          // active-side parameter).
          for (const s of p.steps) {
            expect(isSwitchResource(s.urn, s.type), `${s.urn} is not a switch resource`).to.equal(
              true,
            );
          }
        }
        const after = deploymentOutputs(flipped)?.services?.[svc];
        expect(after?.activeSide).to.equal("standby");
      });
    }
  });

  it("the failover runbook names the command that goes back", async () => {
    const flipped = await synthProd((c: StackConfigDoc) => {
      c["hastack:mail"].active = "standby";
    });
    const md = renderRunbook(plan(base, flipped), {
      lang: "en",
      window: parseWindow("2025-07-05T22:00+07:00/2025-07-05T23:00+07:00"),
    });
    expect(md).to.include("pulumi config set --path 'hastack:mail.active' primary");
    expect(md).to.include("sudo hastack-mail-fallback"); // sync back and unfence first
    expect(md).to.include("Budi Santoso"); // contacts from the stack outputs
  });

  describe("every mail migration phase is a reviewed step without outage or data risk", () => {
    const phases = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9];
    // Each phase is synthesized when a test first needs it (at most two per test), not all ten in
    // one hook: ten prod synths in a row overran the 180 s hook limit beside the parallel suite's
    // other files (02:2x, load 20), though each step's own work is far from its limit.
    const synths = new Map<number, Promise<Deployment>>();
    const synthOf = (phase: number): Promise<Deployment> => {
      if (!synths.has(phase)) {
        synths.set(
          phase,
          synthProd((c: StackConfigDoc) => {
            c["hastack:mail"].migration.phase = phase;
            // Phase 0 is "no migration": refused with an old server (issue 18).
            if (phase === 0) {
              delete c["hastack:mail"].migration.oldServer;
            }
          }),
        );
      }
      return synths.get(phase)!;
    };
    for (const phase of phases.slice(1)) {
      for (const [from, to] of [
        [phase - 1, phase],
        [phase, phase - 1],
      ]) {
        it(`phase ${from} → ${to}`, async function () {
          const [before, after] = [await synthOf(from), await synthOf(to)];
          const outputs = deploymentOutputs(after)?.services?.mail;
          expect(outputs?.migrationPhase).to.equal(to);
          const p = plan(before, after);
          // Step 4 (test the new server) changes no resource: only the exported checklist.
          if (Math.max(from, to) !== 4) {
            expect(p.steps.length, "a phase step changes something").to.be.greaterThan(0);
          }
          expect(p.steps.filter((s) => s.service !== "mail")).to.deep.equal([]);
          const v = decideExit(p);
          expect(v.code, v.blocking.join("\n")).to.equal(0);
        });
      }
    }
    it("9 → 0 declares the same records (the finished migration equals no migration)", async function () {
      const [nine, zero] = [await synthOf(9), await synthOf(0)];
      expect(deploymentOutputs(nine)?.services?.mail?.migrationPhase).to.equal(9);
      const p = plan(nine, zero);
      expect(impactful(p)).to.deep.equal([]);
    });
  });

  describe("changes that are not switches", () => {
    it("a bigger mail instance type: the serving server stops and starts (brief, stop + boot 240 s)", async () => {
      const after = await synthProd((c: StackConfigDoc) => {
        c["hastack:mail"].instanceType = "t3.large";
      });
      const p = plan(base, after);
      const byName = Object.fromEntries(
        p.steps.map((s) => [s.name, [s.op, s.class, s.downtimeSeconds]]),
      );
      expect(byName).to.deep.include({
        "mail-pair-primary": ["update", "brief", 60 + 240],
        "mail-pair-standby": ["update", "none", 0],
      });
      expect(decideExit(p).code).to.equal(0);
    });

    it("a bigger data volume is resized in place: no impact", async () => {
      const after = await synthProd((c: StackConfigDoc) => {
        c["hastack:mail"].dataVolumeGb = 400;
      });
      const p = plan(base, after);
      expect(p.steps.map((s) => [s.name, s.op, s.class])).to.deep.equal([
        ["mail-pair-primary-data", "update", "none"],
        ["mail-pair-standby-data", "update", "none"],
      ]);
    });

    it("swapping mail's availability zones replaces servers and data volumes: data risk, exit 3", async () => {
      const after = await synthProd((c: StackConfigDoc) => {
        c["hastack:mail"].azs = { primary: "ap-southeast-3b", standby: "ap-southeast-3a" };
      });
      const p = plan(base, after);
      const vol = p.steps.find((s) => s.name === "mail-pair-primary-data")!;
      expect(vol.op).to.equal("replace");
      expect(vol.replaceReasons).to.deep.equal(["availabilityZone"]);
      expect(vol.class).to.equal("data-risk");
      const server = p.steps.find((s) => s.name === "mail-pair-primary")!;
      expect([server.op, server.class]).to.deep.equal(["replace", "outage"]);
      expect(p.estimate).to.equal(true);
      expect(decideExit(p).code).to.equal(3);
      // Even inside a window the data risk blocks until both volumes are named.
      const w = parseWindow("2025-07-05T22:00+07:00/2025-07-06T02:00+07:00");
      expect(decideExit(p, { window: w }).code).to.equal(3);
      const volumes = p.steps.filter((s) => s.class === "data-risk").map((s) => s.urn);
      expect(decideExit(p, { window: w, allow: volumes }).code).to.equal(0);
    });
  });
});
