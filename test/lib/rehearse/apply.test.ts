// `rehearse stack --apply BEFORE AFTER`, the plan (issue 12): on real synth pairs of the prod
// stack (a flip of `active` per service, migration phase steps), exactly the steps `pulumi up`
// would take that the rehearsal can make — in the engine's order — and a refusal, naming the
// URN, for any change that needs a real `pulumi up`.
import { expect } from "chai";
import { Deployment } from "../../../lib/synth/offline-synth";
import {
  ApplyPlan,
  ApplyStep,
  CommandStep,
  EipStep,
  RecordStep,
  describeStep,
  planApply,
} from "../../../lib/rehearse/stack/apply";
import { StackConfigDoc, synthProd } from "../../support/stack-files";

const REGION = "ap-southeast-3";

function plan(before: Deployment, after: Deployment): ApplyPlan {
  return planApply(before, after, { region: REGION });
}

function kinds(p: ApplyPlan): string[] {
  return p.steps.map((s) => `${s.kind}:${"op" in s ? s.op : "move"}`);
}

function commandsRun(p: ApplyPlan): string[] {
  return p.steps
    .filter((s): s is CommandStep => s.kind === "command" && s.command !== undefined)
    .map((s) => `${s.name}:${s.runs}`);
}

function records(p: ApplyPlan): RecordStep[] {
  return p.steps.filter((s): s is RecordStep => s.kind === "record");
}

const setActive =
  (service: string, side: "primary" | "standby") =>
  (c: StackConfigDoc): void => {
    c[`hastack:${service}`].active = side;
  };

describe("rehearse apply: what `pulumi up` does between two synths", function () {
  this.timeout(300_000);
  let base: Deployment;
  const after: Record<string, Deployment> = {};
  const phases: Deployment[] = [];
  before(async () => {
    base = await synthProd();
    for (const service of ["mail", "mysql", "pbx"]) {
      after[service] = await synthProd(setActive(service, "standby"));
    }
    after.instanceType = await synthProd((c) => {
      c["hastack:mail"].instanceType = "t3.large";
    });
    after.adminCidrs = await synthProd((c) => {
      c["hastack:adminCidrs"] = ["203.0.113.10/32"];
    });
    // The migration one phase at a time, each synth checked against the previous one.
    phases[1] = base;
    for (let p = 2; p <= 9; p++) {
      phases[p] = await synthProd(
        (c) => {
          c["hastack:mail"].migration.phase = p;
        },
        phases[p - 1],
      );
    }
  });

  describe("a flip of `active` applies the switch and nothing else", () => {
    const table: {
      service: string;
      kinds: string[];
      commands: string[];
      check: (p: ApplyPlan) => void;
    }[] = [
      {
        service: "mail",
        kinds: ["record:update", "record:update", "record:update"],
        commands: [],
        check: (p) => {
          expect(records(p).map((r) => r.after!.name)).to.deep.equal([
            "mail.kantor-contoh.co.id",
            "mail.internal.kantor-contoh.co.id",
            "mail.internal.kantor-contoh.co.id",
          ]);
        },
      },
      {
        service: "mysql",
        kinds: [
          "parameter:update",
          "command:replace",
          "command:replace",
          "command:replace",
          "record:update",
          "record:update",
          "record:update",
          "record:update",
          "command:delete-replaced",
          "command:delete-replaced",
          "command:delete-replaced",
        ],
        // Only the promotion runs, on the standby; nothing dials the (possibly dead) primary.
        commands: ["mysql-failover:create"],
        check: (p) => {
          const param = p.steps[0];
          expect(param).to.include({ kind: "parameter", name: "/hastack/mysql/active-side" });
          expect(param).to.have.property("value", "standby");
          const failover = p.steps.find((s) => s.kind === "command" && s.name === "mysql-failover");
          expect(String((failover as CommandStep).resource.inputs.stdin)).to.contain(
            "hastack-mysql-failover",
          );
          // The records follow the promotion (declareSwitch's dependsOn): db. never names a
          // server that is not writable yet.
          const firstRecord = p.steps.findIndex((s) => s.kind === "record");
          expect(firstRecord).to.be.greaterThan(p.steps.indexOf(failover!));
          const primarySet = records(p).find(
            (r) => r.after!.name === "db.kantor-contoh.co.id" && r.after!.failover === "PRIMARY",
          )!;
          expect(primarySet.after!.values).to.deep.equal(
            records(p).find(
              (r) =>
                r.before!.name === "db.kantor-contoh.co.id" && r.before!.failover === "SECONDARY",
            )!.before!.values,
          );
        },
      },
      {
        service: "pbx",
        // The standby's activation first: the EIP association waits for it (components/pbx.ts).
        kinds: [
          "command:replace",
          "command:replace",
          "eip:move",
          "record:update",
          "command:delete-replaced",
          "command:delete-replaced",
        ],
        commands: ["pbx-activate-standby:create"],
        check: (p) => {
          const eip = p.steps.find((s): s is EipStep => s.kind === "eip")!;
          expect(eip.from.server).to.equal("pbx-primary");
          expect(eip.to.server).to.equal("pbx-standby");
          expect(eip.from.publicIp).to.equal(eip.publicIp);
          expect(eip.to.privateIp).to.not.equal(eip.from.privateIp);
          expect(records(p)[0].after!.values).to.deep.equal([eip.to.privateIp]);
        },
      },
    ];
    for (const row of table) {
      it(`${row.service}: active primary → standby`, () => {
        const p = plan(base, after[row.service]);
        expect(p.refused).to.deep.equal([]);
        expect(kinds(p)).to.deep.equal(row.kinds);
        expect(commandsRun(p)).to.deep.equal(row.commands);
        row.check(p);
        expect(p.impact.text).to.contain(row.service);
      });
    }

    it("mysql: standby → primary runs the fallback, then the rejoin it depends on", () => {
      const p = plan(after.mysql, base);
      expect(p.refused).to.deep.equal([]);
      expect(commandsRun(p)).to.deep.equal(["mysql-fallback:create", "mysql-rejoin:create"]);
      expect(p.steps[0]).to.have.property("value", "primary");
    });

    it("pbx: standby → primary activates the primary and moves the EIP back", () => {
      const p = plan(after.pbx, base);
      expect(commandsRun(p)).to.deep.equal(["pbx-activate-primary:create"]);
      const eip = p.steps.find((s): s is EipStep => s.kind === "eip")!;
      expect([eip.from.server, eip.to.server]).to.deep.equal(["pbx-standby", "pbx-primary"]);
    });

    it("no change plans nothing", () => {
      const p = plan(base, base);
      expect(p.steps).to.deep.equal([]);
      expect(p.refused).to.deep.equal([]);
    });
  });

  describe("a migration phase applies its commands and records in the engine's order", () => {
    const table: { from: number; to: number; steps: string[] }[] = [
      { from: 1, to: 2, steps: ["command mail-import-users: create, runs `create`"] },
      { from: 2, to: 3, steps: ["command mail-initial-sync: create, runs `create`"] },
      { from: 3, to: 4, steps: [] },
      {
        // The old server's MX preference raised (10) before anything new is published.
        from: 4,
        to: 5,
        steps: [
          "record kantor-contoh.co.id MX: 0 mx-old.kantor-contoh.co.id → 10 mx-old.kantor-contoh.co.id (TTL 30)",
        ],
      },
      {
        from: 5,
        to: 6,
        steps: [
          "record mail.kantor-contoh.co.id A [mail-primary]: 203.0.113.25 → 198.51.100.145 (TTL 30)",
          "record kantor-contoh.co.id MX: 10 mx-old.kantor-contoh.co.id → 0 mx1.kantor-contoh.co.id 5 mx2.kantor-contoh.co.id 10 mx-old.kantor-contoh.co.id (TTL 30)",
        ],
      },
      { from: 6, to: 7, steps: ["command mail-final-sync: create, runs `create`"] },
      {
        from: 7,
        to: 8,
        steps: [
          "record kantor-contoh.co.id MX: 0 mx1.kantor-contoh.co.id 5 mx2.kantor-contoh.co.id 10 mx-old.kantor-contoh.co.id → 10 mx1.kantor-contoh.co.id 20 mx2.kantor-contoh.co.id (TTL 30)",
        ],
      },
      {
        // Creates and updates first, deletes last: the old MX address goes after nothing names it.
        from: 8,
        to: 9,
        steps: [
          "command mail-retire-old: create, runs `create`",
          "record kantor-contoh.co.id TXT: v=spf1 ip4:198.51.100.145 ip4:198.51.100.150 ip4:203.0.113.25 ~all → v=spf1 ip4:198.51.100.145 ip4:198.51.100.150 ~all (TTL 300)",
          "record mx-old.kantor-contoh.co.id A: delete 203.0.113.25",
        ],
      },
    ];
    for (const row of table) {
      it(`phase ${row.from} → ${row.to}`, () => {
        const p = plan(phases[row.from], phases[row.to]);
        expect(p.refused).to.deep.equal([]);
        expect(p.steps.map(describeStep)).to.deep.equal(row.steps);
      });
    }

    it("commands that depend on others run after them (1 → 9 at once)", () => {
      const p = plan(phases[1], phases[9]);
      expect(p.refused).to.deep.equal([]);
      const at = (urn: string): number => p.steps.findIndex((s) => s.urn === urn);
      for (const s of p.steps) {
        if (s.kind !== "command") {
          continue;
        }
        for (const dep of s.resource.dependsOn ?? []) {
          if (at(dep) >= 0) {
            expect(at(dep), `${s.name} after ${dep}`).to.be.lessThan(at(s.urn));
          }
        }
      }
      expect(commandsRun(p)).to.deep.equal([
        "mail-import-users:create",
        "mail-initial-sync:create",
        "mail-final-sync:create",
        "mail-retire-old:create",
      ]);
      expect(p.steps[p.steps.length - 1].kind).to.equal("record");
      expect((p.steps[p.steps.length - 1] as RecordStep).op).to.equal("delete");
    });

    it("follows dependsOn even when the registration order does not", () => {
      const reversed: Deployment = {
        ...phases[9],
        deployment: {
          ...phases[9].deployment,
          resources: [...phases[9].deployment.resources].reverse(),
        },
      };
      const names = plan(phases[1], reversed)
        .steps.filter((s) => s.kind === "command")
        .map((s: ApplyStep) => (s as CommandStep).name);
      expect(names).to.deep.equal([
        "mail-import-users",
        "mail-initial-sync",
        "mail-final-sync",
        "mail-retire-old",
      ]);
    });
  });

  describe("changes the rehearsal cannot make are refused with their URN", () => {
    it("a new instance type (the mail servers)", () => {
      const p = plan(base, after.instanceType);
      const urns = p.refused.map((r) => r.urn);
      expect(urns).to.include.members([
        "urn:pulumi:prod::hastack::hastack:server:ServerPair$aws:ec2/instance:Instance::mail-pair-primary",
        "urn:pulumi:prod::hastack::hastack:server:ServerPair$aws:ec2/instance:Instance::mail-pair-standby",
      ]);
      for (const r of p.refused) {
        expect(r.message).to.contain(r.urn).and.contain("needs a real `pulumi up`");
        expect(r.urn).to.match(/aws:ec2\/instance:Instance/);
      }
      expect(p.refused[0].message).to.contain("instanceType");
    });

    it("security group rules (the admin CIDRs)", () => {
      const p = plan(base, after.adminCidrs);
      expect(p.refused.length).to.be.greaterThan(0);
      expect(p.refused.every((r) => /securityGroup|SecurityGroup/.test(r.urn))).to.equal(
        true,
        p.refused.map((r) => r.urn).join("\n"),
      );
      expect(p.steps).to.deep.equal([]);
    });
  });
});
