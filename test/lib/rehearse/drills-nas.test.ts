// The nas drill's pure parts (issue 12 item 4): it reads the NAS's job env files exactly as the
// scripts source them (what components/backup-jobs.ts renders), and finds every source's jobs.
import { expect } from "chai";
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { backupJobs, renderJobEnv } from "../../../components/backup-jobs";
import { envFile } from "../../../components/server-files";
import { replicatedSet } from "../../../components/pbx-replicated-set";
import { compareTrees, compareTreesSince, hashTree } from "../../../lib/rehearse/backup";
import { DRILLS } from "../../../lib/rehearse/stack/drills";
import { nasJobSources, parseEnvFile } from "../../../lib/rehearse/stack/drills/nas-parts";

const JOBS = backupJobs({
  domain: "example.test",
  hostnames: { mail: "mail", mysql: "db", pbx: "pbx" },
  intervalHours: { mail: 24, mysql: 6, pbx: 24 },
  retentionDays: { mail: 14, mysql: 30, pbx: 30 },
  databases: ["asteriskcdrdb", "app", "asterisk"],
  pbxSet: replicatedSet("freepbx"),
});
const RUNTIME = {
  backupRoot: "/srv/data/backups",
  nasServiceName: "nas.example.test",
  sourceHost: undefined,
  replicateEnvFile: "/etc/hastack/backup/replicate.env",
  replicateCommand: "/usr/local/sbin/hastack-nas-replicate",
};

describe("nas drill: the NAS's job env files", () => {
  it("is in the registry", () => {
    expect(DRILLS.nas).to.be.a("function");
  });

  it("reads every rendered job env as bash sources it", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "hastack-nas-env-"));
    try {
      for (const job of JOBS) {
        const text = renderJobEnv(job, RUNTIME);
        const file = path.join(dir, `${job.name}.env`);
        fs.writeFileSync(file, text);
        const parsed = parseEnvFile(text);
        const keys = Object.keys(parsed);
        // bash's own view of the same file: every key, the same value.
        const script = `set -a; . "$1"; ${keys.map((k) => `printf '%s\\0' "$${k}"`).join("; ")}`;
        const values = execFileSync("bash", ["-c", script, "bash", file], { encoding: "utf8" })
          .split("\0")
          .slice(0, -1);
        expect(Object.fromEntries(keys.map((k, i) => [k, values[i]]))).to.deep.equal(parsed);
        expect(parsed.JOB).to.equal(job.name);
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("a value with spaces and a quote round-trips", () => {
    expect(parseEnvFile(envFile({ A: "it's a b", B: "plain", C: "" }))).to.deep.equal({
      A: "it's a b",
      B: "plain",
      C: "",
    });
  });

  it("names the line it cannot read", () => {
    expect(() => parseEnvFile("JOB=x\nnot an assignment\n")).to.throw(
      /env line 2 is not KEY=value/,
    );
    expect(() => parseEnvFile("A='open\n")).to.throw(/env line 1: unbalanced quotes/);
  });

  it("finds jobs for mail, mysql and pbx (the sources the drill must restore)", () => {
    const by = nasJobSources(JOBS.map((j) => parseEnvFile(renderJobEnv(j, RUNTIME))));
    expect([...by.keys()].sort()).to.deep.equal(["mail", "mysql", "pbx"]);
    expect(by.get("pbx")!.map((j) => j.JOB)).to.include("pbx-copies");
    expect(nasJobSources([{ JOB: "x" }]).get("unknown")).to.have.length(1);
  });
});

describe("nas drill: a restore compared with a live source (compareTreesSince)", () => {
  // The suite's --drills all run (2026-12-01 02:10) failed the NAS drill on two Dovecot index
  // logs that the mail pair's sync timer appended to after the backup had taken them.
  let dir: string;
  const since = Date.parse("2026-12-01T02:00:00Z");
  const at = (iso: string): Date => new Date(Date.parse(iso));
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "hastack-nas-since-"));
    fs.mkdirSync(path.join(dir, "Maildir/cur"), { recursive: true });
    fs.mkdirSync(path.join(dir, "old"), { recursive: true });
    for (const [f, t] of [
      ["Maildir/dovecot.index.log", "2026-12-01T02:03:00Z"], // appended after the backup began
      ["Maildir/cur/1.drill:2,S", "2026-12-01T01:00:00Z"], // untouched since
    ]) {
      fs.writeFileSync(path.join(dir, f), "now\n");
      fs.utimesSync(path.join(dir, f), at(t), at(t));
    }
    fs.utimesSync(
      path.join(dir, "Maildir/cur"),
      at("2026-12-01T02:04:00Z"),
      at("2026-12-01T02:04:00Z"),
    );
    fs.utimesSync(path.join(dir, "old"), at("2026-12-01T01:00:00Z"), at("2026-12-01T01:00:00Z"));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it("a file the source changed after the backup began is changedSince, not a mismatch", () => {
    const want = hashTree(dir, []);
    const got = new Map(want);
    got.set("Maildir/dovecot.index.log", "the log as the backup took it");
    expect(compareTrees(want, got)).to.deep.equal(["Maildir/dovecot.index.log differs"]);
    expect(compareTreesSince(want, got, dir, since)).to.deep.equal({
      mismatches: [],
      changedSince: ["Maildir/dovecot.index.log differs"],
    });
  });

  it("a file unchanged since the backup began that differs, or is missing, is a mismatch", () => {
    const want = hashTree(dir, []);
    const got = new Map(want);
    got.set("Maildir/cur/1.drill:2,S", "corrupt");
    const gone = new Map(got);
    gone.delete("Maildir/cur/1.drill:2,S");
    expect(compareTreesSince(want, got, dir, since).mismatches).to.deep.equal([
      "Maildir/cur/1.drill:2,S differs",
    ]);
    expect(compareTreesSince(want, gone, dir, since).mismatches).to.deep.equal([
      "Maildir/cur/1.drill:2,S missing",
    ]);
  });

  it("a restored file gone from the source is changedSince only where its directory changed since", () => {
    const want = hashTree(dir, []);
    const got = new Map(want);
    got.set("Maildir/cur/2.expunged:2,S", "x"); // expunged after the backup: cur changed at 02:04
    got.set("old/never-there", "x"); // old/ unchanged since 01:00: the restore invented it
    const r = compareTreesSince(want, got, dir, since);
    expect(r.changedSince).to.deep.equal(["Maildir/cur/2.expunged:2,S not in the source"]);
    expect(r.mismatches).to.deep.equal(["old/never-there not in the source"]);
  });
});
