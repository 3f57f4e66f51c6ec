// The migration phases as data: every phase's MX record set, `mail.<domain>` target and SPF,
// with and without an old server (table-driven, all ten phases); the MX invariants of issue 18
// as policies (a compliant and a non-compliant case each); and the one-step-at-a-time law as
// properties over random phase pairs (fast-check).
import { expect } from "chai";
import fc from "fast-check";
import {
  checkPhaseTransition,
  LAST_PHASE,
  MIGRATION_STEPS,
  migrationPlan,
  MigrationPhaseError,
  MigrationPlanInput,
  mxPolicyViolations,
  phaseTitle,
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
const PHASES = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9];
const MOVE = PHASES.slice(1);

describe("mail migration phases", () => {
  // mail: where mail.<domain> points; spfOld: SPF names the old server; steps: import-users,
  // initial-sync, final-sync, retire-old.
  const table: {
    phase: number;
    mx: string[];
    mail: "old" | "pair";
    oldRecord: boolean;
    spfOld: boolean;
    steps: [boolean, boolean, boolean, boolean];
  }[] = [
    {
      phase: 1,
      mx: [`0 ${OLD}`],
      mail: "old",
      oldRecord: true,
      spfOld: true,
      steps: [false, false, false, false],
    },
    {
      phase: 2,
      mx: [`0 ${OLD}`],
      mail: "old",
      oldRecord: true,
      spfOld: true,
      steps: [true, false, false, false],
    },
    {
      phase: 3,
      mx: [`0 ${OLD}`],
      mail: "old",
      oldRecord: true,
      spfOld: true,
      steps: [true, true, false, false],
    },
    {
      phase: 4,
      mx: [`0 ${OLD}`],
      mail: "old",
      oldRecord: true,
      spfOld: true,
      steps: [true, true, false, false],
    },
    {
      phase: 5,
      mx: [`10 ${OLD}`],
      mail: "old",
      oldRecord: true,
      spfOld: true,
      steps: [true, true, false, false],
    },
    {
      phase: 6,
      mx: [`0 ${MX1}`, `5 ${MX2}`, `10 ${OLD}`],
      mail: "pair",
      oldRecord: true,
      spfOld: true,
      steps: [true, true, false, false],
    },
    {
      phase: 7,
      mx: [`0 ${MX1}`, `5 ${MX2}`, `10 ${OLD}`],
      mail: "pair",
      oldRecord: true,
      spfOld: true,
      steps: [true, true, true, false],
    },
    // The old MX leaves first; its A record and SPF entry stay while cached MX sets expire.
    {
      phase: 8,
      mx: [`10 ${MX1}`, `20 ${MX2}`],
      mail: "pair",
      oldRecord: true,
      spfOld: true,
      steps: [true, true, true, false],
    },
    {
      phase: 9,
      mx: [`10 ${MX1}`, `20 ${MX2}`],
      mail: "pair",
      oldRecord: false,
      spfOld: false,
      steps: [true, true, true, true],
    },
  ];

  describe("with an old server", () => {
    for (const row of table) {
      it(`phase ${row.phase}: MX ${row.mx.join(", ")}; mail.<domain> → ${row.mail}; SPF ${row.spfOld ? "names" : "omits"} the old server`, () => {
        const plan = migrationPlan({ ...base, phase: row.phase });
        expect(plan.mx).to.deep.equal(row.mx);
        expect(plan.clientsOnOldServer ? "old" : "pair").to.equal(row.mail);
        expect(plan.oldServerRecord).to.deep.equal(
          row.oldRecord ? { name: OLD, ip: "203.0.113.25" } : undefined,
        );
        expect(plan.spfAuthorisesOldServer).to.equal(row.spfOld);
        const s = plan.steps;
        expect([s.importUsers, s.initialSync, s.finalSync, s.retireOld]).to.deep.equal(row.steps);
      });
    }

    it("covers every phase of the move exactly once", () => {
      expect(table.map((r) => r.phase)).to.deep.equal(MOVE);
      expect(MIGRATION_STEPS.map((s) => s.phase)).to.deep.equal(MOVE);
    });

    it("phase 0 is refused, telling to start at phase 1 (issue 18)", () => {
      expect(() => migrationPlan({ ...base, phase: 0 })).to.throw(
        MigrationPhaseError,
        "hastack:mail.migration.phase is 0 (no migration: the new servers would be the domain's only MX) " +
          "but hastack:mail.migration.oldServer is set. To start moving mail from the old server set " +
          "hastack:mail.migration.phase to 1",
      );
    });
  });

  describe("without an old server", () => {
    it("phase 0: the pair alone at 10 and 20, mail.<domain> → the pair, SPF without an old server", () => {
      const plan = migrationPlan({ ...base, oldServer: undefined, phase: 0 });
      expect(plan.mx).to.deep.equal([`10 ${MX1}`, `20 ${MX2}`]);
      expect(plan.clientsOnOldServer).to.equal(false);
      expect(plan.spfAuthorisesOldServer).to.equal(false);
      expect(plan.oldServerRecord).to.equal(undefined);
      expect(Object.values(plan.steps)).to.deep.equal([false, false, false, false]);
    });
    for (const phase of MOVE) {
      it(`phase ${phase} is refused: it needs the old server`, () => {
        expect(() => migrationPlan({ ...base, oldServer: undefined, phase })).to.throw(
          MigrationPhaseError,
          `hastack:mail.migration.oldServer is required when hastack:mail.migration.phase is ${phase}`,
        );
      });
    }
  });

  it("phase 9 declares the MX set of a stack without migration, so 9 → 0 changes no MX", () => {
    expect(migrationPlan({ ...base, phase: 9 }).mx).to.deep.equal(
      migrationPlan({ ...base, oldServer: undefined, phase: 0 }).mx,
    );
  });

  it("the active server is the preferred one after a failover", () => {
    const plan = migrationPlan({ ...base, phase: 6, activeServer: MX2, standbyServer: MX1 });
    expect(plan.mx).to.deep.equal([`0 ${MX2}`, `5 ${MX1}`, `10 ${OLD}`]);
  });

  it("uses the configured label and preferences", () => {
    const plan = migrationPlan({
      ...base,
      phase: 6,
      oldServer: { ...old, mxPreference: 5, raisedPreference: 50, mxLabel: "lama" },
    });
    expect(plan.mx).to.deep.equal([`5 ${MX1}`, `27 ${MX2}`, "50 lama.kantor-contoh.co.id"]);
  });

  describe("refuses settings it cannot plan", () => {
    it("a raised preference that leaves no room for both new servers below it", () => {
      expect(() =>
        migrationPlan({
          ...base,
          phase: 5,
          oldServer: { ...old, mxPreference: 10, raisedPreference: 11 },
        }),
      ).to.throw(
        MigrationPhaseError,
        "hastack:mail.migration.oldServer.raisedPreference must be at least mxPreference + 2 (12)",
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

// Every MX invariant is a policy over (phase, MX set): one describe each, a compliant and a
// non-compliant case, then every phase of every valid configuration must comply.
describe("MX policies (issue 18)", () => {
  const hosts = (oldAcceptsMail = true) => ({ old: OLD, pair: [MX1, MX2], oldAcceptsMail });

  describe("no phase before 6 has a new server as the most preferred MX", () => {
    it("compliant: phase 5, the old server alone", () => {
      expect(mxPolicyViolations(5, [`10 ${OLD}`], hosts())).to.deep.equal([]);
    });
    it("non-compliant: phase 0 as shipped before issue 18 (the pair alone, old server set)", () => {
      expect(mxPolicyViolations(0, [`0 ${MX1}`, `10 ${MX2}`], hosts())).to.deep.equal([
        `phase 0: new server ${MX1} is the most preferred MX before step 6 (its users and mail are not moved yet)`,
      ]);
    });
    it("non-compliant: a tie with the old server counts as preferred", () => {
      expect(mxPolicyViolations(4, [`0 ${OLD}`, `0 ${MX1}`], hosts())).to.have.length(1);
    });
  });

  describe("from step 6 on the old server is never preferred over a new one", () => {
    it("compliant: 0 mx1, 5 mx2, 10 old", () => {
      expect(mxPolicyViolations(6, [`0 ${MX1}`, `5 ${MX2}`, `10 ${OLD}`], hosts())).to.deep.equal(
        [],
      );
    });
    it("non-compliant: the pre-issue-18 phase 6–8 set (0 mx1, 10 old, 20 mx2)", () => {
      expect(mxPolicyViolations(7, [`0 ${MX1}`, `10 ${OLD}`, `20 ${MX2}`], hosts())).to.deep.equal([
        `phase 7: the old server (10) is not behind new server ${MX2} (20): it would take mail while a new server is up`,
      ]);
    });
  });

  describe("no MX names a host that no longer accepts mail", () => {
    it("compliant: phase 9, the pair alone", () => {
      expect(mxPolicyViolations(9, [`0 ${MX1}`, `10 ${MX2}`], hosts(false))).to.deep.equal([]);
    });
    it("non-compliant: the old server named after it stopped accepting mail", () => {
      expect(
        mxPolicyViolations(9, [`0 ${MX1}`, `10 ${MX2}`, `20 ${OLD}`], hosts(false)),
      ).to.deep.equal([`phase 9: the MX set names ${OLD}, which no longer accepts mail`]);
    });
  });

  it("every phase of every valid configuration complies (random preferences, labels, sides)", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 65000 }),
        fc.integer({ min: 2, max: 500 }),
        fc.constantFrom(...MOVE),
        fc.boolean(),
        fc.constantFrom("mx-old", "lama", "srv01"),
        (p, gap, phase, flipped, label) => {
          const oldServer = { ...old, mxPreference: p, raisedPreference: p + gap, mxLabel: label };
          const [activeServer, standbyServer] = flipped ? [MX2, MX1] : [MX1, MX2];
          const plan = migrationPlan({ ...base, oldServer, activeServer, standbyServer, phase });
          const oldHost = `${label}.kantor-contoh.co.id`;
          const found = mxPolicyViolations(phase, plan.mx, {
            old: oldHost,
            pair: [MX1, MX2],
            oldAcceptsMail: plan.oldServerAcceptsMail,
          });
          expect(found, `phase ${phase}: ${plan.mx.join(", ")}`).to.deep.equal([]);
          // The active server is always the most preferred new server.
          const prefOf = (h: string) =>
            Number(plan.mx.find((v) => v.endsWith(` ${h}`))?.split(" ")[0]);
          if (phase >= 6) {
            expect(prefOf(activeServer)).to.be.lessThan(prefOf(standbyServer));
          }
        },
      ),
    );
  });
});

describe("mail migration: one phase at a time", () => {
  const phase = fc.integer({ min: 0, max: LAST_PHASE });
  const allowed = (previous: number, next: number): boolean =>
    (Math.abs(next - previous) <= 1 && !(previous === 1 && next === 0)) ||
    (previous === LAST_PHASE && next === 0);

  it("law: a move is allowed exactly when it is a repeat, ±1 (not 1 → 0) or 9 → 0", () => {
    fc.assert(
      fc.property(phase, phase, (previous, next) => {
        let refused: unknown;
        try {
          checkPhaseTransition(previous, next);
        } catch (e) {
          refused = e;
        }
        expect(refused === undefined, `${previous} → ${next}`).to.equal(allowed(previous, next));
        if (refused !== undefined) {
          expect(refused).to.be.instanceOf(MigrationPhaseError);
        }
      }),
      { numRuns: 300 },
    );
  });

  it("law: a refused jump forward names every skipped step — and no other — by number and title", () => {
    fc.assert(
      fc.property(phase, phase, (previous, next) => {
        fc.pre(next > previous + 1);
        const msg = errorOf(() => checkPhaseTransition(previous, next));
        for (let p = 1; p <= LAST_PHASE; p++) {
          const named = msg.includes(`step ${p} (${phaseTitle(p)})`);
          expect(named, `${previous} → ${next}, step ${p}`).to.equal(p > previous && p < next);
        }
        expect(msg).to.contain(`the next is phase ${previous + 1} (${phaseTitle(previous + 1)})`);
      }),
    );
  });

  it("law: a refused jump back names every step it would undo and the one step back", () => {
    fc.assert(
      fc.property(phase, phase, (previous, next) => {
        fc.pre(next < previous - 1 && !(previous === LAST_PHASE && next === 0));
        const msg = errorOf(() => checkPhaseTransition(previous, next));
        for (let p = 1; p <= LAST_PHASE; p++) {
          const named = msg.includes(`step ${p} (${phaseTitle(p)})`);
          expect(named, `${previous} → ${next}, step ${p}`).to.equal(p > next && p <= previous);
        }
        expect(msg).to.contain(`the next is phase ${previous - 1}`);
      }),
    );
  });

  it("law: no walk of ±1 moves from phase 1 ever reaches phase 0", () => {
    fc.assert(
      fc.property(fc.array(fc.constantFrom(-1, 0, 1), { maxLength: 40 }), (moves) => {
        let at = 1;
        for (const m of moves) {
          const next = Math.min(LAST_PHASE, Math.max(0, at + m));
          if (!allowed(at, next)) {
            expect(() => checkPhaseTransition(at, next)).to.throw(MigrationPhaseError);
            continue;
          }
          checkPhaseTransition(at, next);
          at = next;
          expect(at, "reached phase 0 mid-move").to.not.equal(0);
        }
      }),
    );
  });

  it("a jump forward names every skipped step by number and title", () => {
    expect(() => checkPhaseTransition(2, 5)).to.throw(
      MigrationPhaseError,
      "hastack:mail.migration.phase cannot move from phase 2 to phase 5: that skips " +
        "step 3 (mailboxes synced old → new) and step 4 (new server tested (SMTP banner, IMAP login, a delivery)). " +
        "Apply one phase at a time — the next is phase 3 (mailboxes synced old → new).",
    );
  });

  it("1 → 0 is refused: phase 0 would hand the mail to the new servers before the users", () => {
    expect(() => checkPhaseTransition(1, 0)).to.throw(
      MigrationPhaseError,
      "cannot move back from phase 1 to phase 0: phase 0 publishes the new servers as the domain's MX",
    );
  });

  it("an unknown previous phase (new stack, no state) is not checked", () => {
    expect(() => checkPhaseTransition(undefined, 6)).not.to.throw();
  });

  it("refuses a phase outside 0–9 even without a previous phase", () => {
    expect(() => checkPhaseTransition(undefined, 12)).to.throw(MigrationPhaseError, "0–9, got 12");
  });
});

function errorOf(f: () => void): string {
  try {
    f();
  } catch (e) {
    return (e as Error).message;
  }
  throw new Error("expected a refusal");
}
