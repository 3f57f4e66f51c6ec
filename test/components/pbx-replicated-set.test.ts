// The PBX's replicated set (issue 16) is one table; the sync env, the activation env, the NAS's
// jobs, the MySQL pair's databases and README's PBX section are derived from it. These tests
// hold every consumer to the table, per flavour, by reading what each consumer actually gets
// (the env files as bash sources them, the jobs as the NAS runs them, README's rows).
import { expect } from "chai";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { backupJobs, PBX_COPIES_JOB } from "../../components/backup-jobs";
import {
  FREEPBX_DB_PRIVILEGES,
  renderPbxActivateEnv,
  renderPbxSyncEnv,
} from "../../components/pbx";
import { ofType, userDataOf } from "../support/deployment-queries";
import { Deployment, SynthResource, synthesizeEdited } from "../../lib/synth/offline-synth";
import {
  PBX_COPIES_DIR,
  PbxConfigDatabase,
  PbxFlavour,
  README_TABLE_HEADER,
  comparisonPoints,
  databasesOnMysqlPair,
  replicatedSet,
  replicatedSetTable,
  syncPlan,
} from "../../components/pbx-replicated-set";
import { PACKAGE_ROOT } from "../../lib/package-root";
import { ConfigError, formatProblem, parseStackConfig } from "../../lib/config/stack-config";
import { run } from "../../lib/rehearse/backup";
import { prodConfigRaw, StackConfigDoc } from "../support/stack-files";

const VARIANTS: [PbxFlavour, PbxConfigDatabase | undefined][] = [
  ["freepbx", undefined],
  ["freepbx", "local"],
  ["elastix", undefined],
  ["asterisk", undefined],
];

describe("the PBX replicated set per flavour", () => {
  const table: Record<string, string[]> = {
    "freepbx/": [
      "config rsync",
      "spool rsync",
      "lib rsync",
      "astdb sqlite-backup",
      "provisioning rsync",
      "webroot rsync",
      "freepbx-db mysql-pair",
    ],
    "freepbx/local": [
      "config rsync",
      "spool rsync",
      "lib rsync",
      "astdb sqlite-backup",
      "provisioning rsync",
      "webroot rsync",
      "freepbx-db mysqldump",
    ],
    "elastix/": [
      "config rsync",
      "spool rsync",
      "lib rsync",
      "astdb sqlite-backup",
      "provisioning rsync",
      "webroot rsync",
      "elastix-db sqlite-backup",
      "freepbx-db mysqldump",
    ],
    "asterisk/": [
      "config rsync",
      "spool rsync",
      "lib rsync",
      "astdb sqlite-backup",
      "provisioning rsync",
    ],
  };
  for (const [flavour, db] of VARIANTS) {
    it(`${flavour}${db ? ` (configDatabase ${db})` : ""}: ${table[`${flavour}/${db ?? ""}`].length} items`, () => {
      expect(replicatedSet(flavour, db).map((i) => `${i.key} ${i.method}`)).to.deep.equal(
        table[`${flavour}/${db ?? ""}`],
      );
    });
  }
  it("the live astdb is excluded from the rsync of /var/lib/asterisk and copied consistently instead", () => {
    const items = replicatedSet("asterisk");
    expect(items.find((i) => i.key === "lib")!.excludes).to.include("/astdb.sqlite3");
    expect(items.find((i) => i.key === "astdb")!.path).to.equal("/var/lib/asterisk/astdb.sqlite3");
  });
  it("the rehearsal's comparison points cover every item: trees, SQLite files, databases and where", () => {
    expect(
      comparisonPoints(replicatedSet("elastix")).map((c) =>
        c.kind === "database" ? `${c.key} database ${c.where}` : `${c.key} ${c.kind} ${c.path}`,
      ),
    ).to.deep.equal([
      "config tree /etc/asterisk",
      "spool tree /var/spool/asterisk",
      "lib tree /var/lib/asterisk",
      "astdb sqlite /var/lib/asterisk/astdb.sqlite3",
      "provisioning tree /tftpboot",
      "webroot tree /var/www/html",
      "elastix-db sqlite /var/www/db/*.db",
      "freepbx-db database local",
    ]);
    expect(comparisonPoints(replicatedSet("freepbx")).at(-1)).to.deep.equal({
      key: "freepbx-db",
      kind: "database",
      database: "asterisk",
      where: "mysql-pair",
    });
  });
  it("only FreePBX with its database on the pair puts a database on the MySQL pair", () => {
    expect(VARIANTS.map(([f, d]) => databasesOnMysqlPair(replicatedSet(f, d)))).to.deep.equal([
      ["asterisk"],
      [],
      [],
      [],
    ]);
  });
});

describe("the sync, the activation and the NAS agree with the table", function () {
  this.timeout(180_000);
  let tmp: string;
  before(() => (tmp = fs.mkdtempSync(path.join(os.tmpdir(), "hastack-set-"))));
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  /** The variables a script sees after sourcing the env file (real bash). */
  async function sourced(text: string, names: string[]): Promise<Record<string, string>> {
    const file = path.join(tmp, "x.env");
    fs.writeFileSync(file, text);
    const r = await run(
      "bash",
      ["-c", `. "$1"; ${names.map((n) => `printf '%s\\n' "$${n}"`).join("; ")}`, "bash", file],
      { deadline: Date.now() + 20_000 },
    );
    expect(r.code, r.stderr).to.equal(0);
    const lines = r.stdout.split("\n");
    return Object.fromEntries(names.map((n, i) => [n, lines[i]]));
  }
  const words = (s: string): string[] => (s === "" ? [] : s.split(" "));

  for (const [flavour, db] of VARIANTS) {
    const label = `${flavour}${db ? ` (configDatabase ${db})` : ""}`;
    const items = replicatedSet(flavour, db);
    const rel = (p: string): string => p.replace(/^\//, "");

    it(`${label}: the sync pushes every rsync directory, copies every database, nothing else`, async () => {
      const env = await sourced(
        renderPbxSyncEnv({
          serviceName: "pbx.example.test",
          peer: "pbx2.example.test",
          peerSide: "standby",
          plan: syncPlan(items),
        }),
        ["SYNC_PATHS", "EXCLUDES", "SQLITE_FILES", "DUMP_DATABASES", "COPIES_DIR"],
      );
      const of = (m: string) => items.filter((i) => i.method === m);
      expect(words(env.SYNC_PATHS)).to.have.members(of("rsync").map((i) => rel(i.path!)));
      expect(words(env.EXCLUDES)).to.have.members(
        of("rsync").flatMap((i) => (i.excludes ?? []).map((e) => i.path + e)),
      );
      expect(words(env.SQLITE_FILES)).to.have.members(of("sqlite-backup").map((i) => rel(i.path!)));
      expect(words(env.DUMP_DATABASES)).to.have.members(of("mysqldump").map((i) => i.database!));
      expect(env.COPIES_DIR).to.equal(rel(PBX_COPIES_DIR));
    });

    it(`${label}: the activation installs exactly the databases the sync copies`, async () => {
      const plan = syncPlan(items);
      const env = await sourced(renderPbxActivateEnv({ flavour, plan }), [
        "SQLITE_FILES",
        "DUMP_DATABASES",
        "FLAVOUR",
      ]);
      expect(words(env.SQLITE_FILES)).to.deep.equal(plan.sqlite);
      expect(words(env.DUMP_DATABASES)).to.deep.equal(plan.dumps);
      expect(env.FLAVOUR).to.equal(flavour);
    });

    it(`${label}: the NAS pulls every rsync directory and the copies; the dump job holds the pair's databases`, () => {
      const jobs = backupJobs({
        domain: "example.test",
        hostnames: { mail: "mail", mysql: "db", pbx: "pbx" },
        intervalHours: { mail: 24, mysql: 6, pbx: 24 },
        retentionDays: { mail: 14, mysql: 30, pbx: 30 },
        databases: ["asteriskcdrdb", ...databasesOnMysqlPair(items)],
        pbxSet: items,
      });
      const pbx = jobs.filter((j) => j.service === "pbx");
      const expected = items
        .filter((i) => i.method === "rsync")
        .map((i) => [`pbx-${i.key}`, i.path, (i.excludes ?? []).join(" ")]);
      if (items.some((i) => i.method === "sqlite-backup" || i.method === "mysqldump")) {
        expected.push([PBX_COPIES_JOB, `${PBX_COPIES_DIR}/local`, ""]);
      }
      expect(pbx.map((j) => [j.name, j.sourcePath, (j.excludes ?? []).join(" ")])).to.deep.equal(
        expected,
      );
      const dump = jobs.find((j) => j.kind === "mariadb-dump")!;
      for (const d of databasesOnMysqlPair(items)) {
        expect(dump.databases).to.include(d);
      }
    });
  }
});

describe("README's PBX section is the table", () => {
  it("lists exactly the table's rows (README: ### PBX: what is replicated…)", () => {
    const readme = fs.readFileSync(path.join(PACKAGE_ROOT, "README.md"), "utf8");
    const start = readme.indexOf("### PBX: what is replicated");
    expect(start, "README has the PBX section").to.be.greaterThan(-1);
    const lines = readme.slice(start).split("\n");
    const first = lines.findIndex((l) => l.startsWith("|"));
    const rows: string[][] = [];
    for (let i = first; i < lines.length && lines[i].startsWith("|"); i++) {
      rows.push(
        lines[i]
          .slice(1, -1)
          .split(/(?<!\\)\|/)
          .map((c) => c.trim()),
      );
    }
    const [header, , ...body] = rows;
    expect(header).to.deep.equal(README_TABLE_HEADER);
    expect(
      body,
      "regenerate: node -e 'console.log(require(\"./dist/components/pbx-replicated-set\").renderReplicatedSetMarkdown())'",
    ).to.deep.equal(replicatedSetTable());
  });
});

describe("hastack:pbx.flavour and configDatabase (config)", () => {
  function problemsOf(edit: (raw: StackConfigDoc) => void): string[] {
    const raw = prodConfigRaw();
    edit(raw);
    try {
      parseStackConfig(raw);
    } catch (e) {
      expect(e).to.be.instanceOf(ConfigError);
      return (e as ConfigError).problems.map(formatProblem);
    }
    return [];
  }
  it("defaults to freepbx (what the installer and AMI carry) with its database on the pair", () => {
    const cfg = parseStackConfig(prodConfigRaw());
    expect(cfg.pbx.flavour).to.equal("freepbx");
    expect(cfg.pbx.configDatabase).to.equal(undefined);
  });
  it("an unknown flavour names the key and the choices", () => {
    expect(problemsOf((r) => (r.pbx.flavour = "trixbox"))).to.deep.equal([
      'hastack:pbx.flavour must be one of "freepbx", "elastix", "asterisk", got "trixbox"',
    ]);
  });
  it("configDatabase with another flavour is refused, naming both", () => {
    expect(
      problemsOf((r) => {
        r.pbx.flavour = "elastix";
        r.pbx.configDatabase = "mysql-pair";
      }),
    ).to.deep.equal([
      'hastack:pbx.configDatabase applies only to flavour "freepbx" (Elastix keeps its database local, plain Asterisk has none): remove it, got "mysql-pair" with flavour "elastix"',
    ]);
  });
  it("a bad configDatabase names the choices", () => {
    expect(problemsOf((r) => (r.pbx.configDatabase = "nfs"))).to.deep.equal([
      'hastack:pbx.configDatabase must be "mysql-pair" or "local", got "nfs"',
    ]);
  });
});

// The whole program on the shipped stack file (offline synth under mocks): index.ts wires the
// table into the MySQL pair (database and FreePBX's account), the NAS (dump and jobs) and the
// PBX servers (FreePBX and ODBC at the internal DB name).
describe("the prod stack wires FreePBX's database and the set end to end (offline synth)", function () {
  this.timeout(300_000);
  const INTERNAL_DB = "db.internal.kantor-contoh.co.id";
  const synth = (edit: (c: StackConfigDoc) => void = () => undefined): Promise<Deployment> =>
    synthesizeEdited({ projectDir: PACKAGE_ROOT, stack: "prod", edit });
  const userData = (d: Deployment, service: string): string[] =>
    ofType(d, "aws:ec2/instance:Instance")
      .filter((r: SynthResource) => r.name.startsWith(`${service}-`))
      .map(userDataOf);
  let prod: Deployment;
  before(async () => {
    prod = await synth();
  });

  it("both PBX servers point FreePBX and the CDR DSN at the MySQL pair's internal name", () => {
    const pbx = userData(prod, "pbx");
    expect(pbx).to.have.length(2);
    for (const u of pbx) {
      expect(u).to.contain(`$amp_conf['AMPDBHOST'] = '${INTERNAL_DB}';`);
      expect(u).to.contain(`Server = ${INTERNAL_DB}`);
    }
  });

  it("the MySQL pair creates the asterisk database and FreePBX's account with exactly its grant", () => {
    const setup = ofType(prod, "command:remote:Command").find((c) =>
      c.urn.endsWith("::mysql-setup-primary"),
    )!;
    const stdin = String(setup.inputs.stdin);
    expect(stdin).to.contain('DATABASES="asteriskcdrdb app asterisk"');
    expect(stdin).to.contain(
      `GRANT ${FREEPBX_DB_PRIVILEGES} ON \\\`asterisk\\\`.* TO 'freepbxuser'@`,
    );
  });

  it("the MySQL pair grants FreePBX's CDR reports SELECT on the CDR database, nothing more", () => {
    const setup = ofType(prod, "command:remote:Command").find((c) =>
      c.urn.endsWith("::mysql-setup-primary"),
    )!;
    const grants = String(setup.inputs.stdin)
      .split("\n")
      .filter((l) => l.includes("'freepbxcdr'"));
    expect(grants.filter((l) => l.includes("GRANT"))).to.have.length(1);
    expect(grants.find((l) => l.includes("GRANT"))).to.contain(
      "GRANT SELECT ON \\`asteriskcdrdb\\`.* TO 'freepbxcdr'@",
    );
    for (const u of userData(prod, "pbx")) {
      expect(u).to.contain(`$amp_conf['CDRDBHOST'] = '${INTERNAL_DB}';`);
      expect(u).to.contain("$amp_conf['CDRDBUSER'] = 'freepbxcdr';");
    }
  });

  it("the NAS dumps the asterisk database and pulls the PBX's consistent copies", () => {
    const nas = userData(prod, "nas")[0];
    expect(nas).to.match(/DATABASES='?asteriskcdrdb app asterisk/);
    expect(nas).to.contain(`SOURCE_PATH=${PBX_COPIES_DIR}/local`);
  });

  it("plain Asterisk: no FreePBX account or database anywhere", async () => {
    const plain = await synth((c) => (c["hastack:pbx"].flavour = "asterisk"));
    expect(JSON.stringify(plain)).not.to.contain("freepbxuser");
    expect(userData(plain, "nas")[0]).not.to.match(/DATABASES='?asteriskcdrdb app asterisk/);
  });
});
