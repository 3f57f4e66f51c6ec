// FreePBX's CDR reports' account on the MySQL pair (issue 16), on a real MariaDB: the pair's
// setup script creates it with FREEPBX_CDR_DB_PRIVILEGES; the settings FreePBX reads from the
// rendered /etc/freepbx.conf (real PHP: CDRDBHOST, CDRDBUSER, the password from its file) connect
// and read the call records Asterisk wrote with its own account, and every write is refused.
import { expect } from "chai";
import * as fs from "fs";
import * as path from "path";
import {
  CDR_DB_USER,
  FREEPBX_CDR_DB_PRIVILEGES,
  FREEPBX_CDR_DB_USER,
  FREEPBX_CDR_PASSWORD_FILE,
  FREEPBX_PASSWORD_FILE,
  renderCdrTableSql,
  renderFreepbxConf,
} from "../../../components/pbx";
import { requireTools, run } from "../../../lib/rehearse/backup";
import { LoopbackPair, defaultMysqlSettings } from "../../../lib/rehearse/mysql";

const CDR_DB = "asteriskcdrdb";
const BOOTSTRAP = "/var/www/html/admin/bootstrap.php";

describe("FreePBX's CDR report account on the MySQL pair (real MariaDB and PHP, issue 16)", function () {
  this.timeout(300_000);
  let pair: LoopbackPair;
  const settings = defaultMysqlSettings({
    databases: [CDR_DB, "app"],
    accounts: [
      { user: CDR_DB_USER, database: CDR_DB, privileges: "SELECT, INSERT" },
      { user: FREEPBX_CDR_DB_USER, database: CDR_DB, privileges: FREEPBX_CDR_DB_PRIVILEGES },
    ],
  });
  /** The client options FreePBX's own config yields (filled in `before`). */
  let reportArgs: string[] = [];

  before(async () => {
    requireTools({ php: "php-cli" });
    pair = await LoopbackPair.create({ settings });
    await Promise.all([pair.start("primary", "primary"), pair.start("standby", "primary")]);
    await pair.runScriptChecked("setup", "primary");
    await pair.sql("primary", renderCdrTableSql(CDR_DB));
    // Asterisk writes a call record with its own account, as cdr_adaptive_odbc does.
    const w = await run("mariadb", [...pair.appClientArgs("primary", 0), CDR_DB], {
      input:
        "INSERT INTO cdr (calldate, src, dst, disposition, duration, billsec, uniqueid) " +
        "VALUES (NOW(), '1001', '1002', 'ANSWERED', 42, 40, '1700000000.1');",
      deadline: Date.now() + 30_000,
    });
    expect(w.code, w.stderr).to.equal(0);

    // FreePBX's view: the rendered freepbx.conf, included by real PHP, its password file in place.
    const dir = path.join(pair.dir, "freepbx");
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, "password"), "unused\n");
    fs.writeFileSync(path.join(dir, "cdr-password"), `${pair.accountPasswords[1]}\n`);
    fs.writeFileSync(path.join(dir, "bootstrap.php"), "<?php\n");
    const conf = path.join(dir, "freepbx.conf");
    fs.writeFileSync(
      conf,
      renderFreepbxConf({ host: "127.0.0.1", port: pair.servers.primary.port, cdrDatabase: CDR_DB })
        .replace(FREEPBX_CDR_PASSWORD_FILE, path.join(dir, "cdr-password"))
        .replace(FREEPBX_PASSWORD_FILE, path.join(dir, "password"))
        .replace(BOOTSTRAP, path.join(dir, "bootstrap.php")),
    );
    const php = await run(
      "php",
      [
        "-r",
        `include '${conf}'; foreach (['CDRDBUSER','CDRDBPASS','CDRDBHOST','CDRDBPORT','CDRDBNAME'] as $k) echo $amp_conf[$k], "\\n";`,
      ],
      { deadline: Date.now() + 30_000 },
    );
    expect(php.code, php.stderr).to.equal(0);
    const [user, password, host, port, database] = php.stdout.split("\n");
    expect([user, host, database]).to.deep.equal([FREEPBX_CDR_DB_USER, "127.0.0.1", CDR_DB]);
    const cnf = path.join(dir, "report-client.cnf");
    fs.writeFileSync(
      cnf,
      `[client]\nuser=${user}\npassword=${password}\nhost=${host}\nport=${port}\n`,
      { mode: 0o600 },
    );
    reportArgs = [`--defaults-extra-file=${cnf}`, "--protocol=tcp", "-N", "-B", database];
  });
  after(async () => {
    await pair?.destroy();
  });

  /** SQL as the CDR reports connect; [stdout, ""] on success, ["", error] otherwise. */
  async function asReports(sql: string): Promise<[string, string]> {
    const r = await run("mariadb", reportArgs, { input: sql, deadline: Date.now() + 30_000 });
    return r.code === 0 ? [r.stdout.trim(), ""] : ["", r.stderr.trim() || `exit ${r.code}`];
  }

  it("reads the call records Asterisk wrote, with the settings freepbx.conf gives FreePBX", async () => {
    expect(await asReports("SELECT src, dst, disposition FROM cdr")).to.deep.equal([
      "1001\t1002\tANSWERED",
      "",
    ]);
  });

  // Each must fail with a privilege error: reports never change a call record.
  const forbidden: [string, string][] = [
    ["a new call record", "INSERT INTO cdr (src, dst) VALUES ('6666', '7777')"],
    ["changing a call record", "UPDATE cdr SET billsec = 0"],
    ["deleting call records", "DELETE FROM cdr"],
    ["emptying the table", "TRUNCATE TABLE cdr"],
    ["dropping the table", "DROP TABLE cdr"],
    ["a table of its own", "CREATE TABLE report_cache (id INT)"],
    ["another schema", "SELECT * FROM app.anything"],
    ["the accounts table", "SELECT user FROM mysql.user"],
  ];
  for (const [what, sql] of forbidden) {
    it(`refuses ${what}`, async () => {
      expect((await asReports(sql))[1]).to.match(/denied|privilege/i);
    });
  }

  it("the call records are as Asterisk wrote them after every refused write", async () => {
    expect(await pair.sql("primary", `SELECT COUNT(*), SUM(billsec) FROM ${CDR_DB}.cdr`)).to.match(
      /^1\t40\s*$/,
    );
  });
});
