// The impact CLI's flags and files (issue 15): refusals are one line with exit 2, outputs are
// written atomically and never over an input. Classification itself: test/lib/impact.
import { expect } from "chai";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { PACKAGE_ROOT } from "../../lib/package-root";

const CLI = path.join(PACKAGE_ROOT, "dist", "scripts", "impact.js");
const FIXTURES = path.join(PACKAGE_ROOT, "test", "fixtures", "impact");
const PBX = path.join(FIXTURES, "preview-pbx-failover.json");
const WINDOW = "2025-07-05T22:00+07:00/2025-07-06T01:00+07:00";
const URN = "urn:pulumi:prod::hastack::aws:ebs/volume:Volume::mail-pair-primary-data";

function run(args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: "utf8", timeout: 120_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe("impact CLI: flags and files", () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "hastack-impact-cli-"));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it("--help exits 0 with the usage on stdout", () => {
    const r = run(["--help"]);
    expect(r.code).to.equal(0);
    expect(r.stdout).to.include("usage: npm run impact");
    expect(r.stdout).to.include("--stack NAME --stack-file FILE");
  });
  it("--allow without --window: exit 2 (the usage says it needs one)", () => {
    const r = run([PBX, "--allow", URN]);
    expect(r.code).to.equal(2);
    expect(r.stderr).to.include("impact: --allow needs --window START/END");
  });
  it("30 February in --window: exit 2 naming the date", () => {
    const r = run([PBX, "--window", "2026-02-30T22:00+07:00/2026-03-01T01:00+07:00"]);
    expect(r.code).to.equal(2);
    expect(r.stderr.trim()).to.equal(
      "impact: --window: 2026-02-30 is not a date in the calendar (that month has 28 days)",
    );
  });
  it("29 February of a leap year is a date", () => {
    const r = run([PBX, "--window", "2028-02-29T22:00+07:00/2028-03-01T01:00+07:00"]);
    expect(r.code, r.stderr).to.equal(0);
  });
  it("--announce pointed at its own input is refused; the input is untouched", () => {
    const input = path.join(dir, "preview.json");
    fs.copyFileSync(PBX, input);
    const before = fs.readFileSync(input, "utf8");
    for (const flag of ["--announce", "--runbook"]) {
      const r = run([input, flag, input]);
      expect(r.code).to.equal(2);
      expect(r.stderr.trim()).to.equal(
        `impact: ${flag} ${input}: is one of this tool's inputs (${input}); refusing to write over it`,
      );
    }
    const r = run([
      input,
      "--stack-file",
      path.join(PACKAGE_ROOT, "Pulumi.prod.yaml"),
      "--announce",
      path.join(PACKAGE_ROOT, "Pulumi.prod.yaml"),
    ]);
    expect(r.code).to.equal(2);
    expect(fs.readFileSync(input, "utf8")).to.equal(before);
  });
  it("--announce and --runbook may not name the same file", () => {
    const out = path.join(dir, "same.md");
    const r = run([PBX, "--announce", out, "--runbook", out]);
    expect(r.code).to.equal(2);
    expect(r.stderr).to.include(`--runbook ${out}: is one of this tool's inputs`);
    expect(fs.existsSync(out)).to.equal(false);
  });
  for (const [what, out, re] of [
    ["under /proc", "/proc/hastack.md", /proc file system/],
    ["a directory", "DIR", /is a directory/],
  ] as const) {
    it(`--announce ${what}: exit 2, one line, nothing written`, () => {
      const target = out === "DIR" ? dir : out;
      const r = run([PBX, "--announce", target]);
      expect(r.code).to.equal(2);
      expect(r.stderr.trim().split("\n")).to.have.length(1);
      expect(r.stderr).to.match(re);
      expect(r.stdout).to.equal(""); // refused before the report
    });
  }
  it("writes the staff announcement and the operator runbook, in Indonesian", () => {
    const ann = path.join(dir, "pengumuman.md");
    const book = path.join(dir, "runbook.md");
    const r = run([PBX, "--window", WINDOW, "--lang", "id", "--announce", ann, "--runbook", book]);
    expect(r.code, r.stderr).to.equal(0);
    const a = fs.readFileSync(ann, "utf8");
    const b = fs.readFileSync(book, "utf8");
    expect(a).to.include("Yth. Bapak/Ibu rekan kerja,");
    expect(a).not.to.match(/pulumi|sudo|urn:|`/);
    expect(b).to.include("## Pengembalian (rollback)");
    expect(b).to.include("pulumi up --stack prod");
    expect(fs.readdirSync(dir).sort()).to.deep.equal(["pengumuman.md", "runbook.md"]); // no temp files
  });
});
