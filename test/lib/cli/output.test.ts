import { expect } from "chai";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { CliError } from "../../../lib/cli/flags";
import { checkFileTarget, writeDirectoryAtomic, writeFileAtomic } from "../../../lib/cli/output";

function refusal(f: () => void): string {
  try {
    f();
  } catch (e) {
    expect(e).to.be.instanceOf(CliError);
    expect((e as CliError).exitCode).to.equal(2);
    return (e as Error).message;
  }
  throw new Error("expected a refusal");
}

describe("lib/cli output: atomic, never over an input, never into the kernel", () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "hastack-output-"));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  describe("a file", () => {
    it("is written, with missing parent directories created", () => {
      const file = path.join(dir, "a", "b", "out.json");
      writeFileAtomic({ flag: "--out", path: file }, "new\n");
      expect(fs.readFileSync(file, "utf8")).to.equal("new\n");
      expect(fs.readdirSync(path.dirname(file))).to.deep.equal(["out.json"]); // no temp left
    });
    it("a write that fails leaves the old file exactly as it was, and no temporary file", () => {
      // The temporary file's name is longer than NAME_MAX (255): its creation fails.
      const file = path.join(dir, "x".repeat(240));
      fs.writeFileSync(file, "old\n");
      const msg = refusal(() => writeFileAtomic({ flag: "--out", path: file }, "new\n"));
      expect(msg).to.match(/^--out .*: cannot write \(ENAMETOOLONG/);
      expect(fs.readFileSync(file, "utf8")).to.equal("old\n");
      expect(fs.readdirSync(dir)).to.deep.equal([path.basename(file)]);
    });
    const odd: [string, () => string, RegExp][] = [
      [
        "/proc/version",
        () => "/proc/version",
        /\/proc\/version is on the kernel's proc file system/,
      ],
      ["under /sys", () => "/sys/x.json", /\/sys is on the kernel's sysfs file system/],
      ["a directory", () => dir, /is a directory/],
      [
        "under a file",
        () => (fs.writeFileSync(path.join(dir, "f"), ""), path.join(dir, "f", "x")),
        /f is not a directory/,
      ],
      ["a device", () => "/dev/null", /not a regular file/],
    ];
    for (const [what, target, re] of odd) {
      it(`is refused ${what}, naming the flag and path`, () => {
        const p = target();
        const msg = refusal(() => checkFileTarget({ flag: "--announce", path: p }));
        expect(msg.startsWith(`--announce ${p}: `), msg).to.equal(true);
        expect(msg).to.match(re);
      });
    }
    it("is refused when it is one of the inputs, also through a symlink or another spelling", () => {
      const input = path.join(dir, "preview.json");
      fs.writeFileSync(input, "{}");
      fs.symlinkSync(input, path.join(dir, "link.json"));
      for (const out of [
        input,
        path.join(dir, "link.json"),
        path.join(dir, ".", "sub", "..", "preview.json"),
      ]) {
        const msg = refusal(() =>
          writeFileAtomic({ flag: "--announce", path: out, inputs: [input] }, "x"),
        );
        expect(msg).to.contain("is one of this tool's inputs");
      }
      expect(fs.readFileSync(input, "utf8")).to.equal("{}");
    });
  });

  describe("a directory", () => {
    const owned = (rel: string): boolean => rel.endsWith(".yml") || rel.startsWith("targets/");
    it("is replaced as a whole: new files in, files no longer written gone, reported", () => {
      const out = path.join(dir, "mon");
      writeDirectoryAtomic(
        { flag: "--out", path: out },
        { "a.yml": "1", "targets/x.json": "[]" },
        owned,
      );
      const removed = writeDirectoryAtomic({ flag: "--out", path: out }, { "a.yml": "2" }, owned);
      expect(removed).to.deep.equal(["targets/x.json"]);
      expect(fs.readFileSync(path.join(out, "a.yml"), "utf8")).to.equal("2");
      expect(fs.existsSync(path.join(out, "targets", "x.json"))).to.equal(false);
      expect(fs.readdirSync(dir)).to.deep.equal(["mon"]); // no temp or old tree left
    });
    it("a write that fails part-way leaves the old tree exactly as it was", () => {
      const out = path.join(dir, "mon");
      writeDirectoryAtomic(
        { flag: "--out", path: out },
        { "a.yml": "old", "targets/x.json": "[]" },
        owned,
      );
      const msg = refusal(() =>
        writeDirectoryAtomic(
          { flag: "--out", path: out },
          { "a.yml": "new", [`targets/${"y".repeat(300)}.json`]: "[]" },
          owned,
        ),
      );
      expect(msg).to.match(/cannot write \(ENAMETOOLONG/);
      expect(fs.readFileSync(path.join(out, "a.yml"), "utf8")).to.equal("old");
      expect(fs.readdirSync(path.join(out, "targets"))).to.deep.equal(["x.json"]);
      expect(fs.readdirSync(dir)).to.deep.equal(["mon"]);
    });
    it("holding files the tool did not write is refused, nothing deleted", () => {
      const out = path.join(dir, "mon");
      fs.mkdirSync(out);
      fs.writeFileSync(path.join(out, "notes.txt"), "mine");
      const msg = refusal(() =>
        writeDirectoryAtomic({ flag: "--out", path: out }, { "a.yml": "1" }, owned),
      );
      expect(msg).to.contain("holds files this tool did not write (notes.txt)");
      expect(fs.readFileSync(path.join(out, "notes.txt"), "utf8")).to.equal("mine");
    });
    it("holding the tool's input is refused", () => {
      const out = path.join(dir, "mon");
      writeDirectoryAtomic({ flag: "--out", path: out }, { "a.yml": "1" }, owned);
      const input = path.join(out, "a.yml");
      const msg = refusal(() =>
        writeDirectoryAtomic(
          { flag: "--out", path: out, inputs: [input] },
          { "a.yml": "2" },
          owned,
        ),
      );
      expect(msg).to.contain("holds one of this tool's inputs");
      expect(fs.readFileSync(input, "utf8")).to.equal("1");
    });
    it("under /proc is refused at once (it used to hang)", () => {
      const started = Date.now();
      const msg = refusal(() =>
        writeDirectoryAtomic({ flag: "--out", path: "/proc/hastack" }, { "a.yml": "1" }, owned),
      );
      expect(msg).to.contain("--out /proc/hastack: /proc is on the kernel's proc file system");
      expect(Date.now() - started).to.be.below(5000);
    });
  });
});
