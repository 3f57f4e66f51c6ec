import { expect } from "chai";
import { execFile } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { promisify } from "util";
import {
  Deployment,
  diffDeployments,
  readStackConfig,
  readProject,
} from "../../lib/synth/offline-synth";
import {
  isSwitchResource,
  PROJECT_DIR,
  StackConfigDoc,
  synthProd,
  writeStackFile,
} from "../support/stack-files";

const run = promisify(execFile);
const SYNTH = path.join(PROJECT_DIR, "dist", "scripts", "synth.js");

/** Runs the synth CLI; resolves with exit code and output instead of throwing. */
async function synthCli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [SYNTH, ...args], { cwd: PROJECT_DIR });
    return { code: 0, stdout, stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
}

/** The prod stack as it is, synthesized once for every test that reads it unedited. */
let prodAsIs: Promise<Deployment> | undefined;
const synthProdAsIs = (): Promise<Deployment> => (prodAsIs ??= synthProd());

describe("offline synth", () => {
  it("is deterministic: the same input gives a byte-identical file (CLI, two processes)", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "hastack-synth-"));
    const a = path.join(dir, "a.json");
    const b = path.join(dir, "b.json");
    // Two processes at once: neither can see the other's output.
    const [ra, rb] = await Promise.all([
      synthCli(["--stack", "prod", "--out", a]),
      synthCli(["--stack", "prod", "--out", b]),
    ]);
    expect(ra.code, ra.stderr).to.equal(0);
    expect(rb.code, rb.stderr).to.equal(0);
    expect(fs.readFileSync(a, "utf8")).to.equal(fs.readFileSync(b, "utf8"));
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it("has the shape of `pulumi stack export`, outputs on the Stack resource", async () => {
    const d = await synthProdAsIs();
    expect(d.version).to.equal(3);
    const [stack, ...rest] = d.deployment.resources;
    expect(stack.type).to.equal("pulumi:pulumi:Stack");
    expect(stack.urn).to.equal("urn:pulumi:prod::hastack::pulumi:pulumi:Stack::hastack-prod");
    expect(stack.outputs).to.include.keys("region", "domain", "services");
    for (const r of rest) {
      expect(r).to.include.keys(
        "urn",
        "type",
        "parent",
        "custom",
        "protect",
        "retainOnDelete",
        "ignoreChanges",
        "inputs",
      );
      expect(r.urn.startsWith("urn:pulumi:prod::hastack::")).to.equal(true);
      expect(
        d.deployment.resources.some((p) => p.urn === r.parent),
        `parent of ${r.urn}`,
      ).to.equal(true);
    }
  });

  it("reads config as the CLI does: namespaced keys, project default namespace, secure values secret", () => {
    const file = writeStackFile((c) => {
      c.domain = c["hastack:domain"];
      delete c["hastack:domain"];
    });
    const { config, secretKeys } = readStackConfig(file, readProject(PROJECT_DIR));
    expect(config["hastack:domain"]).to.equal("kantor-contoh.co.id");
    expect(JSON.parse(config["hastack:mail"]).active).to.equal("primary");
    expect(config["hastack:sshPrivateKey"]).to.equal("[secret]");
    expect(secretKeys).to.deep.equal(["hastack:sshPrivateKey"]);
  });

  it("never prints a secret's ciphertext or value", async () => {
    const text = JSON.stringify(await synthProdAsIs());
    expect(text).not.to.contain("v1:Q2hh");
    expect(text).not.to.match(/mock-?[0-9a-f]{24}/); // RandomPassword results
  });

  for (const service of ["mail", "pbx", "mysql", "nas"]) {
    it(`flipping hastack:${service}.active changes only switch resources`, async function () {
      const before = await synthProdAsIs();
      const services = (before.deployment.resources[0].outputs as StackConfigDoc).services;
      expect(services, "index.ts declares every service").to.have.property(service);
      const after = await synthProd((c) => (c[`hastack:${service}`].active = "standby"));
      const changes = diffDeployments(before, after);
      expect(changes.length, "a flip must change something").to.be.greaterThan(0);
      const stray = changes.filter((c) => c.op !== "update" || !isSwitchResource(c.urn, c.type));
      expect(stray, JSON.stringify(stray, null, 1)).to.deep.equal([]);
    });
  }

  describe("one migration phase at a time (--previous)", () => {
    const phaseFile = (phase: number): string =>
      writeStackFile((c) => {
        c["hastack:mail"].migration.phase = phase;
        // Phase 0 is "no migration": refused with an old server (issue 18).
        if (phase === 0) {
          delete c["hastack:mail"].migration.oldServer;
        }
      });
    let dir: string;
    before(() => {
      dir = fs.mkdtempSync(path.join(os.tmpdir(), "hastack-phases-"));
    });
    after(() => fs.rmSync(dir, { recursive: true, force: true }));

    it("steps 0 → 1 → 2 are accepted; 2 → 5 is refused naming steps 3 and 4, nothing written", async function () {
      // Four synth processes in a row: at load 20 one takes a minute (a bound, not a speed check).
      this.timeout(600_000);
      let previous = path.join(dir, "p0.json");
      const first = await synthCli([
        "--stack",
        "prod",
        "--stack-file",
        phaseFile(0),
        "--out",
        previous,
      ]);
      expect(first.code, first.stderr).to.equal(0);
      for (const phase of [1, 2]) {
        const out = path.join(dir, `p${phase}.json`);
        const r = await synthCli([
          "--stack",
          "prod",
          "--stack-file",
          phaseFile(phase),
          "--previous",
          previous,
          "--out",
          out,
        ]);
        expect(r.code, r.stderr).to.equal(0);
        previous = out;
      }
      const refused = path.join(dir, "p5.json");
      const r = await synthCli([
        "--stack",
        "prod",
        "--stack-file",
        phaseFile(5),
        "--previous",
        previous,
        "--out",
        refused,
      ]);
      expect(r.code).to.equal(1);
      expect(r.stderr).to.contain(
        "hastack:mail.migration.phase cannot move from phase 2 to phase 5",
      );
      expect(r.stderr).to.contain("step 3 (mailboxes synced old → new)");
      expect(r.stderr).to.contain("step 4 (new server tested");
      expect(r.stderr).not.to.match(/\n\s+at /);
      expect(fs.existsSync(refused)).to.equal(false);
    });
  });

  describe("--out that cannot take the file: exit 2, one line naming --out and the path, nothing written", () => {
    let dir: string;
    before(() => {
      dir = fs.mkdtempSync(path.join(os.tmpdir(), "hastack-out-"));
      fs.writeFileSync(path.join(dir, "afile"), "keep\n");
    });
    after(() => fs.rmSync(dir, { recursive: true, force: true }));
    const cases: { what: string; out: () => string; reason: RegExp }[] = [
      { what: "under /sys", out: () => "/sys/hastack.json", reason: /sysfs file system/ },
      { what: "on /proc/version", out: () => "/proc/version", reason: /proc file system/ },
      { what: "a directory", out: () => dir, reason: /is a directory/ },
      {
        what: "under a file",
        out: () => path.join(dir, "afile", "x.json"),
        reason: /afile is not a directory/,
      },
    ];
    for (const c of cases) {
      it(c.what, async () => {
        const out = c.out();
        const started = Date.now();
        const r = await synthCli(["--stack", "prod", "--out", out]);
        expect(r.code, r.stderr).to.equal(2);
        const lines = r.stderr.trim().split("\n");
        expect(lines).to.have.length(1);
        expect(lines[0]).to.match(new RegExp(`^synth: --out ${out.replace(/[/.]/g, "\\$&")}: `));
        expect(lines[0]).to.match(c.reason);
        expect(r.stderr).not.to.match(/\n\s+at /);
        expect((Date.now() - started) / 1000, "checked before the synth").to.be.below(60);
      });
    }
    it("never writes over its own stack file (compared by real path, through a symlink)", async () => {
      const file = writeStackFile();
      const before = fs.readFileSync(file, "utf8");
      const link = path.join(dir, "link.yaml");
      fs.symlinkSync(file, link);
      const r = await synthCli(["--stack", "prod", "--stack-file", file, "--out", link]);
      expect(r.code).to.equal(2);
      expect(r.stderr).to.contain(`--out ${link}: is one of this tool's inputs (${file})`);
      expect(fs.readFileSync(file, "utf8")).to.equal(before);
    });
  });

  describe("--previous that cannot serve the one-phase check is blamed on the file", () => {
    let dir: string;
    before(() => {
      dir = fs.mkdtempSync(path.join(os.tmpdir(), "hastack-prevbad-"));
    });
    after(() => fs.rmSync(dir, { recursive: true, force: true }));
    const stackResource = (outputs: unknown): unknown => ({
      urn: "urn:pulumi:prod::hastack::pulumi:pulumi:Stack::hastack-prod",
      type: "pulumi:pulumi:Stack",
      outputs,
    });
    const cases: { what: string; doc: unknown; expected: string }[] = [
      {
        what: "no resources",
        doc: { version: 3, deployment: { resources: [] } },
        expected: "the deployment has no resources",
      },
      {
        what: "outputs that are a string",
        doc: { version: 3, deployment: { resources: [stackResource("services")] } },
        expected: `the stack resource's outputs must be an object, got "services"`,
      },
      {
        what: "no migration phase in the outputs",
        doc: { version: 3, deployment: { resources: [stackResource({ services: {} })] } },
        expected: "has no stack output services.mail.migrationPhase",
      },
      {
        what: "a bad migrationPhase",
        doc: {
          version: 3,
          deployment: {
            resources: [stackResource({ services: { mail: { migrationPhase: "five" } } })],
          },
        },
        expected: 'services.mail.migrationPhase must be a migration phase 0–9, got "five"',
      },
    ];
    // One process per case, all started at once; each case's test reads its own.
    const results = new Map<
      string,
      Promise<{ file: string; r: Awaited<ReturnType<typeof synthCli>> }>
    >();
    before(() => {
      for (const c of cases) {
        const file = path.join(dir, `${c.what.replace(/\W+/g, "-")}.json`);
        fs.writeFileSync(file, JSON.stringify(c.doc));
        results.set(
          c.what,
          synthCli(["--stack", "prod", "--previous", file]).then((r) => ({ file, r })),
        );
      }
    });
    for (const c of cases) {
      it(c.what, async () => {
        const { file, r } = await results.get(c.what)!;
        expect(r.code).to.equal(1);
        expect(r.stderr).to.contain(`--previous ${file}: ${c.expected}`);
        expect(r.stderr).not.to.contain("hastack:mail.migration.phase cannot move");
        expect(r.stdout).to.equal("");
      });
    }
    it("at phase ≥ 1 without --previous, says loudly that the check was skipped", async () => {
      const file = writeStackFile((c) => (c["hastack:mail"].migration.phase = 5));
      const out = path.join(dir, "p5.json");
      // No migration (phase 0, no old server): nothing was skipped, nothing to say.
      const noMigration = writeStackFile((c) => (c["hastack:mail"].migration = { phase: 0 }));
      const [r, quiet] = await Promise.all([
        synthCli(["--stack", "prod", "--stack-file", file, "--out", out]),
        synthCli([
          "--stack",
          "prod",
          "--stack-file",
          noMigration,
          "--out",
          path.join(dir, "p0.json"),
        ]),
      ]);
      expect(r.code, r.stderr).to.equal(0);
      expect(r.stderr).to.contain(
        "WARNING: the one-phase-at-a-time check of hastack:mail.migration.phase (5) was SKIPPED",
      );
      expect(quiet.code, quiet.stderr).to.equal(0);
      expect(quiet.stderr).not.to.contain("WARNING");
    });
  });

  describe("bad input", () => {
    it("a bad active value exits non-zero naming hastack:mail.active, with no stack trace", async () => {
      const file = writeStackFile((c) => (c["hastack:mail"].active = "sideways"));
      const r = await synthCli(["--stack", "prod", "--stack-file", file]);
      expect(r.code).to.equal(1);
      expect(r.stderr).to.contain(
        'hastack:mail.active must be "primary" or "standby", got "sideways"',
      );
      expect(r.stderr).not.to.match(/\n\s+at /);
      expect(r.stdout).to.equal("");
    });
    it("an unknown stack names the stacks that exist", async () => {
      const r = await synthCli(["--stack", "staging"]);
      expect(r.code).to.equal(1);
      expect(r.stderr).to.contain("no stack file");
      expect(r.stderr).to.contain("(stacks here: prod)");
    });
    it("a stack name with a path in it is refused", async () => {
      const r = await synthCli(["--stack", "../etc/passwd"]);
      expect(r.code).to.equal(1);
      expect(r.stderr).to.contain("--stack must be a stack name");
    });
    it("a bad flag exits 2 with usage", async () => {
      const r = await synthCli(["--stak", "prod"]);
      expect(r.code).to.equal(2);
      expect(r.stderr).to.contain("unknown option --stak");
      expect(r.stderr).to.contain("usage:");
    });
    it("a --previous file that is not a deployment is refused by path", async () => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), "hastack-prev-"));
      try {
        const bad = path.join(dir, "prev.json");
        fs.writeFileSync(bad, '{"hello": 1}');
        const r = await synthCli(["--stack", "prod", "--previous", bad]);
        expect(r.code).to.equal(1);
        expect(r.stderr).to.contain(`${bad}: expected a deployment`);
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    });
    it("an empty, binary or non-mapping stack file is 'not a Pulumi stack file', in one line", async () => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), "hastack-notstack-"));
      const files: Record<string, Buffer | string> = {
        "empty.yaml": "",
        "binary.yaml": Buffer.from([0x7f, 0x45, 0x4c, 0x46, 0x02, 0x01, 0x00, 0xff, 0xfe, 0x00]),
        "list.yaml": "- a\n- b\n",
        "noconfig.yaml": "encryptionsalt: v1:abc\n",
      };
      const runs = Object.entries(files).map(async ([name, content]) => {
        const file = path.join(dir, name);
        fs.writeFileSync(file, content);
        return { name, file, r: await synthCli(["--stack", "prod", "--stack-file", file]) };
      });
      for (const { name, file, r } of await Promise.all(runs)) {
        expect(r.code, name).to.equal(1);
        expect(r.stderr, name).to.contain(`${file}: this is not a Pulumi stack file`);
        expect(r.stderr, name).not.to.contain("is required");
        expect(r.stderr.trim().split("\n"), name).to.have.length(2); // "stack prod" + the refusal
      }
      fs.rmSync(dir, { recursive: true, force: true });
    });
    it("a 5 MB stack file of 65,000 unknown keys is refused fast", async () => {
      const file = writeStackFile();
      const lines = Array.from(
        { length: 65000 },
        (_, i) => `  hastack:unknownKey${i}: "a value that pads this line to about eighty bytes"`,
      );
      fs.appendFileSync(file, lines.join("\n") + "\n");
      const started = Date.now();
      const r = await synthCli(["--stack", "prod", "--stack-file", file]);
      const seconds = (Date.now() - started) / 1000;
      expect(r.code).to.equal(1);
      expect(r.stderr).to.match(/this is not a Pulumi stack file \(\d\.\d MiB; /);
      // Before the fix: never finished (killed after 300 s). Generous for a loaded machine.
      expect(seconds).to.be.below(60);
    });
    it("10,000 unknown keys (just under the size cap) parse in linear time and print 20 problems + a count", async () => {
      const file = writeStackFile();
      const lines = Array.from({ length: 10000 }, (_, i) => `  hastack:unknownKey${i}: "x${i}"`);
      fs.appendFileSync(file, lines.join("\n") + "\n");
      const started = Date.now();
      const r = await synthCli(["--stack", "prod", "--stack-file", file]);
      const seconds = (Date.now() - started) / 1000;
      expect(r.code).to.equal(1);
      expect(r.stderr).to.contain("hastack:unknownKey0 is not a known key");
      expect(r.stderr).to.contain("… and 9980 more problems");
      expect(r.stderr.split("\n").length).to.be.below(30);
      expect(seconds).to.be.below(90); // was 20 s for 8,000 keys, quadratic
    });
    it("a duplicate key is still refused (the linear check replaces the library's quadratic one)", async () => {
      const file = writeStackFile();
      fs.appendFileSync(file, "  hastack:domain: other.co.id\n");
      const r = await synthCli(["--stack", "prod", "--stack-file", file]);
      expect(r.code).to.equal(1);
      expect(r.stderr).to.contain('not valid YAML (the key "config.hastack:domain" appears twice)');
    });
    it("invalid YAML is reported with the file and line", async () => {
      const file = writeStackFile();
      fs.writeFileSync(file, "config:\n  hastack:mail: {active: primary\n");
      const r = await synthCli(["--stack", "prod", "--stack-file", file]);
      expect(r.code).to.equal(1);
      expect(r.stderr).to.contain(`${file}: not valid YAML`);
    });
  });
});
