// The migration phases as data: every phase's MX record set and records (table-driven, all ten
// phases), and the one-step-at-a-time rule for every pair of phases.
import { expect } from "chai";
import {
  checkPhaseTransition,
  LAST_PHASE,
  MIGRATION_STEPS,
  migrationPlan,
  MigrationPhaseError,
  MigrationPlanInput,
} from "../../components/mail-migration";

const old = {
  hostname: "mail.kantor-contoh.co.id",
  ip: "203.0.113.25",
  mxPreference: 0,
  raisedPreference: 10,
};
const base: Omit<MigrationPlanInput, "phase"> = {
  oldServer: old,
  domain: "kantor-contoh.co.id",
  activeServer: "mx1.kantor-contoh.co.id",
  standbyServer: "mx2.kantor-contoh.co.id",
};
const OLD = "mx-old.kantor-contoh.co.id";
const MX1 = "mx1.kantor-contoh.co.id";
const MX2 = "mx2.kantor-contoh.co.id";

describe("mail migration phases", () => {
  const table: {
    phase: number;
    mx: string[];
    oldRecord: boolean;
    spfOld: boolean;
    steps: [boolean, boolean, boolean];
  }[] = [
    {
      phase: 0,
      mx: [`0 ${MX1}`, `10 ${MX2}`],
      oldRecord: false,
      spfOld: false,
      steps: [false, false, false],
    },
    { phase: 1, mx: [`0 ${OLD}`], oldRecord: true, spfOld: true, steps: [false, false, false] },
    { phase: 2, mx: [`0 ${OLD}`], oldRecord: true, spfOld: true, steps: [true, false, false] },
    { phase: 3, mx: [`0 ${OLD}`], oldRecord: true, spfOld: true, steps: [true, true, false] },
    { phase: 4, mx: [`0 ${OLD}`], oldRecord: true, spfOld: true, steps: [true, true, false] },
    { phase: 5, mx: [`10 ${OLD}`], oldRecord: true, spfOld: true, steps: [true, true, false] },
    {
      phase: 6,
      mx: [`0 ${MX1}`, `10 ${OLD}`, `20 ${MX2}`],
      oldRecord: true,
      spfOld: true,
      steps: [true, true, false],
    },
    {
      phase: 7,
      mx: [`0 ${MX1}`, `10 ${OLD}`, `20 ${MX2}`],
      oldRecord: true,
      spfOld: true,
      steps: [true, true, true],
    },
    {
      phase: 8,
      mx: [`0 ${MX1}`, `10 ${OLD}`, `20 ${MX2}`],
      oldRecord: true,
      spfOld: false,
      steps: [true, true, true],
    },
    {
      phase: 9,
      mx: [`0 ${MX1}`, `10 ${MX2}`],
      oldRecord: false,
      spfOld: false,
      steps: [true, true, true],
    },
  ];
  for (const row of table) {
    it(`phase ${row.phase}: MX ${row.mx.join(", ")}`, () => {
      const plan = migrationPlan({ ...base, phase: row.phase });
      expect(plan.mx).to.deep.equal(row.mx);
      expect(plan.oldServerRecord).to.deep.equal(
        row.oldRecord ? { name: OLD, ip: "203.0.113.25" } : undefined,
      );
      expect(plan.spfAuthorisesOldServer).to.equal(row.spfOld);
      expect([plan.steps.importUsers, plan.steps.initialSync, plan.steps.finalSync]).to.deep.equal(
        row.steps,
      );
    });
  }

  it("clients stay on the old server until new mail lands on the new one (step 6)", () => {
    const onOld = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9].filter(
      (phase) => migrationPlan({ ...base, phase }).clientsOnOldServer,
    );
    expect(onOld).to.deep.equal([1, 2, 3, 4, 5]);
  });

  it("covers every phase 0–9 exactly once", () => {
    expect(table.map((r) => r.phase)).to.deep.equal([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(MIGRATION_STEPS.map((s) => s.phase)).to.deep.equal([1, 2, 3, 4, 5, 6, 7, 8, 9]);
  });

  it("in phases 6–8 the new active server is preferred over the raised old MX", () => {
    for (const phase of [6, 7, 8]) {
      const prefs = migrationPlan({ ...base, phase }).mx.map((v) => Number(v.split(" ")[0]));
      const [newPref, oldPref] = prefs;
      expect(newPref).to.be.lessThan(oldPref);
      expect(prefs).to.deep.equal([...prefs].sort((a, b) => a - b));
    }
  });

  it("phase 9 declares the same MX set as phase 0, so 9 → 0 changes no record", () => {
    expect(migrationPlan({ ...base, phase: 9 }).mx).to.deep.equal(
      migrationPlan({ ...base, phase: 0 }).mx,
    );
  });

  it("the active server is the preferred one after a failover", () => {
    const plan = migrationPlan({ ...base, phase: 6, activeServer: MX2, standbyServer: MX1 });
    expect(plan.mx).to.deep.equal([`0 ${MX2}`, `10 ${OLD}`, `20 ${MX1}`]);
  });

  it("without any migration configured the pair uses preferences 10 and 20", () => {
    const plan = migrationPlan({ ...base, oldServer: undefined, phase: 0 });
    expect(plan.mx).to.deep.equal([`10 ${MX1}`, `20 ${MX2}`]);
  });

  it("uses the configured label and preferences", () => {
    const plan = migrationPlan({
      ...base,
      phase: 6,
      oldServer: { ...old, mxPreference: 5, raisedPreference: 50, mxLabel: "lama" },
    });
    expect(plan.mx).to.deep.equal([`5 ${MX1}`, "50 lama.kantor-contoh.co.id", `60 ${MX2}`]);
  });

  describe("refuses settings it cannot plan", () => {
    it("a phase > 0 without an old server", () => {
      expect(() => migrationPlan({ ...base, oldServer: undefined, phase: 3 })).to.throw(
        MigrationPhaseError,
        "hastack:mail.migration.oldServer is required when hastack:mail.migration.phase is 3",
      );
    });
    it("a raised preference that is not higher", () => {
      expect(() =>
        migrationPlan({
          ...base,
          phase: 5,
          oldServer: { ...old, mxPreference: 10, raisedPreference: 10 },
        }),
      ).to.throw(
        MigrationPhaseError,
        "raisedPreference must be greater than mxPreference (10), got 10",
      );
    });
    it("an old-server label that collides with a new server's name", () => {
      expect(() =>
        migrationPlan({ ...base, phase: 1, oldServer: { ...old, mxLabel: "mx1" } }),
      ).to.throw(MigrationPhaseError, "mxLabel names mx1.kantor-contoh.co.id");
    });
    it("a phase outside 0–9", () => {
      expect(() => migrationPlan({ ...base, phase: 10 })).to.throw(
        MigrationPhaseError,
        "0–9, got 10",
      );
    });
  });
});

describe("mail migration: one phase at a time", () => {
  // The full 10 × 10 matrix: every allowed move is one step, a repeat, or 9 → 0.
  for (let previous = 0; previous <= LAST_PHASE; previous++) {
    for (let next = 0; next <= LAST_PHASE; next++) {
      const allowed = Math.abs(next - previous) <= 1 || (previous === LAST_PHASE && next === 0);
      it(`${previous} → ${next} is ${allowed ? "allowed" : "refused"}`, () => {
        if (allowed) {
          expect(() => checkPhaseTransition(previous, next)).not.to.throw();
        } else {
          expect(() => checkPhaseTransition(previous, next)).to.throw(MigrationPhaseError);
        }
      });
    }
  }

  it("a jump forward names every skipped step by number and title", () => {
    expect(() => checkPhaseTransition(2, 5)).to.throw(
      MigrationPhaseError,
      "hastack:mail.migration.phase cannot move from phase 2 to phase 5: that skips " +
        "step 3 (mailboxes synced old → new) and step 4 (new server tested (SMTP banner, IMAP login, a delivery)). " +
        "Apply one phase at a time — the next is phase 3 (mailboxes synced old → new).",
    );
  });

  it("a jump of two names the one skipped step", () => {
    expect(() => checkPhaseTransition(5, 7)).to.throw(
      /skips step 6 \(new MX added with a lower number than the old one \(new mail lands there\)\)\. /,
    );
  });

  it("0 → 9 names all eight skipped steps", () => {
    try {
      checkPhaseTransition(0, 9);
      expect.fail("0 → 9 must be refused");
    } catch (e) {
      const msg = (e as Error).message;
      for (let p = 1; p <= 8; p++) {
        expect(msg).to.contain(`step ${p} (`);
      }
      expect(msg).not.to.contain("step 9 (");
    }
  });

  it("a rollback of more than one step names the steps it would undo", () => {
    expect(() => checkPhaseTransition(7, 5)).to.throw(
      MigrationPhaseError,
      "cannot move back from phase 7 to phase 5: that undoes step 7 (mailboxes synced again old → new (mail that arrived meanwhile)) " +
        "and step 6 (new MX added with a lower number than the old one (new mail lands there)) at once. " +
        "Roll back one phase at a time — the next is phase 6",
    );
  });

  it("an unknown previous phase (new stack, no state) is not checked", () => {
    expect(() => checkPhaseTransition(undefined, 6)).not.to.throw();
  });

  it("refuses a phase outside 0–9 even without a previous phase", () => {
    expect(() => checkPhaseTransition(undefined, 12)).to.throw(MigrationPhaseError, "0–9, got 12");
  });
});
