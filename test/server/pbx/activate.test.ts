// hastack-pbx-activate (issue 16), the script the switch runs on the PBX becoming active: the
// shipped SQLite copies (real sqlite3) and dumps are installed only while Asterisk is stopped,
// only after they check out, only once; FreePBX's reload follows, and a missing fwconsole fails.
// Asterisk, fwconsole and the database client are stubs that log what they see.
import { expect } from "chai";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import {
  PBX_ACTIVATE_SOURCE,
  WEB_CONTROL,
  renderPbxActivateEnv,
  renderPbxActivateRemoteScript,
} from "../../../components/pbx";
import {
  PBX_COPIES_DIR,
  PbxFlavour,
  replicatedSet,
  syncPlan,
} from "../../../components/pbx-replicated-set";
import { SERVER_DIR } from "../../../components/server-files";
import { requireTools, run } from "../../../lib/rehearse/backup";

const SCRIPT = path.join(SERVER_DIR, PBX_ACTIVATE_SOURCE);
const ASTDB = "var/lib/asterisk/astdb.sqlite3";
const ELASTIX_DB = "var/www/db/acl.db";

describe("hastack-pbx-activate (real sqlite3, stub Asterisk control)", function () {
  this.timeout(120_000);
  let tmp: string;
  let root: string;
  let peer: string;
  let events: string;

  before(() => requireTools({ sqlite3: "sqlite3" }));
  beforeEach(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), "hastack-activate-"));
    root = path.join(tmp, "root");
    peer = path.join(root, PBX_COPIES_DIR.slice(1), "peer");
    events = path.join(tmp, "events.log");
    // Stops/starts record the live astdb's content at that moment; the reload and the dump
    // loader record that they ran (and what the loader read).
    const stub = (name: string, body: string): void =>
      fs.writeFileSync(path.join(tmp, name), `#!/bin/bash\nset -eu\n${body}\n`, { mode: 0o755 });
    stub(
      "asterisk-ctl",
      // immutable=1: read past the stale journal the test leaves beside the old database.
      `v=$(sqlite3 "file:${path.join(root, ASTDB)}?immutable=1" "SELECT value FROM astdb WHERE key = '/DND/1001'" 2>&1 || true)\n` +
        `echo "$1 $v" >>"${events}"`,
    );
    stub("fwconsole", `echo "fwconsole $*" >>"${events}"`);
    stub("web-ctl", `echo "web $1" >>"${events}"`);
    stub("db-client", `echo "load $(grep -c 'INSERT' || true)" >>"${events}"`);
    await makeDb(path.join(root, ASTDB), "old");
    fs.writeFileSync(path.join(root, `${ASTDB}-journal`), "stale journal");
    await makeDb(path.join(peer, ASTDB), "new");
  });
  afterEach(() => fs.rmSync(tmp, { recursive: true, force: true }));

  async function makeDb(file: string, value: string): Promise<void> {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    const r = await run(
      "sqlite3",
      [
        file,
        `CREATE TABLE astdb (key TEXT PRIMARY KEY, value TEXT); INSERT INTO astdb VALUES ('/DND/1001', '${value}');`,
      ],
      { deadline: Date.now() + 30_000 },
    );
    expect(r.code, r.stderr).to.equal(0);
  }

  function writeEnv(flavour: PbxFlavour, o: { fwconsole?: string; webStop?: string } = {}): string {
    const file = path.join(tmp, "activate.env");
    fs.writeFileSync(
      file,
      renderPbxActivateEnv({
        flavour,
        plan: syncPlan(replicatedSet(flavour)),
        root,
        asteriskStop: `${path.join(tmp, "asterisk-ctl")} stop`,
        asteriskStart: `${path.join(tmp, "asterisk-ctl")} start`,
        // The flavour's own web UI control (WEB_CONTROL), stubbed where it has one.
        ...(WEB_CONTROL[flavour]
          ? {
              webStop: o.webStop ?? `${path.join(tmp, "web-ctl")} stop`,
              webStart: `${path.join(tmp, "web-ctl")} start`,
            }
          : {}),
        fwconsole: o.fwconsole ?? path.join(tmp, "fwconsole"),
        dbClient: path.join(tmp, "db-client"),
      }),
    );
    return file;
  }

  const activate = (env: string) => run("bash", [SCRIPT, env], { deadline: Date.now() + 60_000 });
  const log = (): string[] =>
    fs.existsSync(events) ? fs.readFileSync(events, "utf8").trim().split("\n") : [];
  const liveValue = async (): Promise<string> =>
    (
      await run(
        "sqlite3",
        [`file:${path.join(root, ASTDB)}?immutable=1`, "SELECT value FROM astdb"],
        {
          deadline: Date.now() + 30_000,
        },
      )
    ).stdout.trim();

  it("freepbx: stop (old astdb) → install → start (new astdb) → fwconsole reload; once only", async () => {
    const env = writeEnv("freepbx");
    const r = await activate(env);
    expect(r.code, r.stderr).to.equal(0);
    expect(log()).to.deep.equal(["stop old", "start new", "fwconsole reload"]);
    expect(await liveValue()).to.equal("new");
    expect(fs.existsSync(path.join(root, `${ASTDB}-journal`)), "stale journal removed").to.equal(
      false,
    );
    // The same copies again (the command re-runs on a replaced server): no restart, only reload.
    fs.rmSync(events);
    const again = await activate(env);
    expect(again.code, again.stderr).to.equal(0);
    expect(log()).to.deep.equal(["fwconsole reload"]);
    expect(again.stderr).to.contain("installed already");
  });

  it("a copy failing integrity_check installs nothing and never stops Asterisk", async () => {
    fs.writeFileSync(path.join(peer, ASTDB), "torn copy, not a database");
    const r = await activate(writeEnv("freepbx"));
    expect(r.code).to.equal(1);
    expect(r.stderr).to.contain("fails integrity_check");
    expect(log()).to.deep.equal([]);
    expect(await liveValue()).to.equal("old");
  });

  it("flavour freepbx without fwconsole is a clear failure, not a silent skip", async () => {
    const r = await activate(writeEnv("freepbx", { fwconsole: path.join(tmp, "no-fwconsole") }));
    expect(r.code).to.equal(1);
    expect(r.stderr).to.contain("is not installed: cannot regenerate /etc/asterisk");
  });

  it("plain asterisk never calls fwconsole; nothing shipped means nothing stopped", async () => {
    fs.rmSync(path.join(root, PBX_COPIES_DIR.slice(1)), { recursive: true });
    const r = await activate(writeEnv("asterisk"));
    expect(r.code, r.stderr).to.equal(0);
    expect(log()).to.deep.equal([]);
    expect(r.stderr).to.contain("nothing to install");
  });

  it("elastix: its SQLite databases and the dump of its local database are installed while Asterisk is stopped", async () => {
    await makeDb(path.join(peer, ELASTIX_DB), "acl");
    fs.mkdirSync(path.join(peer, "mysql"), { recursive: true });
    const dump = path.join(peer, "mysql", "asterisk.sql.gz");
    const gz = await run(
      "sh",
      [
        "-c",
        `printf 'INSERT INTO users VALUES (1);\\n-- Dump completed on 2026-11-30\\n' | gzip >"$1"`,
        "sh",
        dump,
      ],
      { deadline: Date.now() + 10_000 },
    );
    expect(gz.code).to.equal(0);
    const r = await activate(writeEnv("elastix"));
    expect(r.code, r.stderr).to.equal(0);
    // httpd writes /var/www/db/*.db: stopped before, started after, around Asterisk.
    expect(log()).to.deep.equal(["web stop", "stop old", "load 1", "start new", "web start"]);
    expect(fs.existsSync(path.join(root, ELASTIX_DB))).to.equal(true);
  });

  it("elastix: its web UI is httpd, stopped and started by the activation", () => {
    const env = renderPbxActivateEnv({
      flavour: "elastix",
      plan: syncPlan(replicatedSet("elastix")),
    });
    expect(env).to.contain("WEB_STOP='service httpd stop'");
    expect(env).to.contain("WEB_START='service httpd start'");
    const freepbx = renderPbxActivateEnv({
      flavour: "freepbx",
      plan: syncPlan(replicatedSet("freepbx")),
    });
    expect(freepbx).to.contain("WEB_STOP=''");
  });

  it("elastix with nothing shipped: httpd is started on the server taking over, Asterisk untouched", async () => {
    fs.rmSync(path.join(root, PBX_COPIES_DIR.slice(1)), { recursive: true });
    const r = await activate(writeEnv("elastix"));
    expect(r.code, r.stderr).to.equal(0);
    expect(log()).to.deep.equal(["web start"]);
  });

  it("elastix: httpd that will not stop installs nothing and never stops Asterisk", async () => {
    await makeDb(path.join(peer, ELASTIX_DB), "acl");
    const r = await activate(writeEnv("elastix", { webStop: "false" }));
    expect(r.code).to.equal(1);
    expect(r.stderr).to.contain("could not stop the web UI");
    expect(log()).to.deep.equal([]);
    expect(await liveValue()).to.equal("old");
    expect(fs.existsSync(path.join(root, ELASTIX_DB))).to.equal(false);
  });

  it("an incomplete dump installs nothing", async () => {
    fs.mkdirSync(path.join(peer, "mysql"), { recursive: true });
    const dump = path.join(peer, "mysql", "asterisk.sql.gz");
    await run("sh", ["-c", `printf 'INSERT INTO users VALUES (1);\\n' | gzip >"$1"`, "sh", dump], {
      deadline: Date.now() + 10_000,
    });
    const r = await activate(writeEnv("elastix"));
    expect(r.code).to.equal(1);
    expect(r.stderr).to.contain("dump of database asterisk is incomplete");
    expect(log()).to.deep.equal([]);
    expect(await liveValue()).to.equal("old");
  });

  it("as the switch sends it (bash -s ENV, script and env on stdin): writes the env, then activates", async () => {
    const envText = fs.readFileSync(writeEnv("freepbx"), "utf8");
    const envPath = path.join(tmp, "etc", "hastack", "pbx-activate.env");
    const r = await run("bash", ["-s", envPath], {
      input: renderPbxActivateRemoteScript({ envPath, env: envText }),
      deadline: Date.now() + 60_000,
    });
    expect(r.code, r.stderr).to.equal(0);
    expect(fs.readFileSync(envPath, "utf8")).to.equal(envText);
    expect(log()).to.deep.equal(["stop old", "start new", "fwconsole reload"]);
  });
});
