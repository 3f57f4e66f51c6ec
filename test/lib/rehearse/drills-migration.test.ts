// The migration drill's counts (drills/migration.ts), pure: which receivers each phase's MX names
// (README's table) and how a message that landed is judged — on a receiver this phase's MX or the
// previous phase's (caches expiring) names, or on the wrong server.
import { expect } from "chai";
import { countPhases, mxOfPhase } from "../../../lib/rehearse/stack/drills/migration";
import { synthProd } from "../../support/stack-files";
import { buildModel } from "../../../lib/rehearse/stack/model";

describe("rehearse drills: the migration drill's counts", function () {
  this.timeout(300_000);

  it("names the receivers of README's table per phase, the same as the synth's MX records", async () => {
    const eips: Record<string, string> = {};
    for (const phase of [1, 5, 6, 7, 8, 9]) {
      const d = await synthProd((c) => {
        (c["hastack:mail"] as { migration: { phase: number } }).migration.phase = phase;
      });
      const m = buildModel(d, [], "ap-southeast-3");
      for (const s of m.servers) {
        if (s.publicIp) {
          eips[s.publicIp] = s.name;
        }
      }
      const records = m.zones.flatMap((z) => z.records);
      const a = new Map(records.filter((r) => r.type === "A").map((r) => [r.name, r.values]));
      const mx = records.find((r) => r.type === "MX" && !r.name.startsWith("mail."))!;
      const receivers = mx.values
        .map((v) => v.split(/\s+/))
        .sort((x, y) => Number(x[0]) - Number(y[0]))
        .map(([, host]) => {
          const ip = (a.get(host.replace(/\.$/, "")) ?? [])[0];
          return eips[ip] === "mail-primary" ? "mx1" : eips[ip] === "mail-standby" ? "mx2" : "old";
        });
      expect(receivers, `phase ${phase}: ${mx.values.join(", ")}`).to.deep.equal(mxOfPhase(phase));
    }
  });

  it("counts where each phase's mail landed and flags a server neither MX set names", () => {
    const sentIn = new Map([
      ["a", 2],
      ["b", 6],
      ["c", 6],
      ["d", 8],
      ["e", 9],
      ["f", 9],
    ]);
    const landedOn = new Map<string, "old" | "mx1" | "mx2" | "elsewhere">([
      ["a", "old"],
      ["b", "old"], // phase 5's MX was old alone: caches may still send there
      ["c", "mx2"],
      ["d", "old"], // phase 7 still named the old server
      ["e", "old"], // phases 8 and 9 do not: wrong
      ["f", "mx1"],
    ]);
    const { perPhase, wrongServer } = countPhases(sentIn, landedOn, [1, 2, 6, 8, 9]);
    expect(perPhase.get(6)).to.deep.equal({ sent: 2, old: 1, mx1: 0, mx2: 1, elsewhere: 0 });
    expect(perPhase.get(9)).to.deep.equal({ sent: 2, old: 1, mx1: 1, mx2: 0, elsewhere: 0 });
    expect(wrongServer).to.deep.equal(["e (sent in phase 9) landed on old"]);
    // Mail to the new pair before phase 6 is on the wrong server too.
    const early = countPhases(new Map([["x", 4]]), new Map([["x", "mx1" as const]]), [4]);
    expect(early.wrongServer).to.have.length(1);
  });
});
