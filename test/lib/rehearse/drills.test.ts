// `rehearse stack --drills` and `--apply` flags (issue 12): bad input is a usage error naming the
// flag and the expectation; drills run in value order whatever order they are given in.
import { expect } from "chai";
import { DrillUsageError } from "../../../lib/rehearse/drill";
import { DRILL_ORDER, parseDrillsArgs } from "../../../lib/rehearse/stack/drills";
import { parseApplyArgs } from "../../../lib/rehearse/stack/apply-run";

describe("rehearse stack --drills and --apply flags", () => {
  const ok: { args: string[]; drills: string[] }[] = [
    { args: ["--drills", "all"], drills: [...DRILL_ORDER] },
    { args: ["--drills", "pbx,mysql"], drills: ["mysql", "pbx"] },
    { args: ["--drills", "mail", "--stack", "prod", "--keep"], drills: ["mail"] },
  ];
  for (const row of ok) {
    it(`--drills ${row.args.join(" ")}`, () => {
      expect(parseDrillsArgs(row.args).drills).to.deep.equal(row.drills);
    });
  }
  const bad: { args: string[]; message: RegExp }[] = [
    {
      args: ["--drills", "sideways"],
      message:
        /--drills must be all or a comma-separated list of mysql, mail, pbx, nas, migration, got "sideways"/,
    },
    { args: ["--drills", ""], message: /--drills must be/ },
    { args: ["--drills", "mysql", "--stack", "a b"], message: /--stack must be a stack name/ },
    { args: ["--drills", "mysql", "--fast"], message: /unknown flag --fast/ },
  ];
  for (const row of bad) {
    it(`refuses ${JSON.stringify(row.args.join(" "))}`, () => {
      expect(() => parseDrillsArgs(row.args)).to.throw(DrillUsageError, row.message);
    });
  }

  it("--apply takes two files and a stack", () => {
    expect(parseApplyArgs(["--apply", "b.json", "a.json", "--stack", "prod"])).to.include({
      before: "b.json",
      after: "a.json",
      stack: "prod",
    });
  });
  for (const args of [["--apply"], ["--apply", "b.json"], ["--apply", "b.json", "--keep"]]) {
    it(`--apply refuses ${JSON.stringify(args.join(" "))}`, () => {
      expect(() => parseApplyArgs(args)).to.throw(
        DrillUsageError,
        /--apply needs two files: BEFORE.json AFTER.json/,
      );
    });
  }
});
