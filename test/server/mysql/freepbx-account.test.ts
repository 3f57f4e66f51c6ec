// FreePBX's configuration database on the MySQL pair (issue 16), on a real MariaDB: the account
// the pair's setup script creates with FREEPBX_DB_PRIVILEGES can build and use a FreePBX-like
// schema (module install: tables, indexes, foreign keys, migrations; runtime DML; temporary
// tables; a locked dump load), and nothing more: other schemas, GRANT, FILE, routines,
// triggers, views and global settings are refused. Then hastack-pbx-freepbx-db, the PBX's boot
// script, adopts a "local" FreePBX database (the pair's other server stands in for it) into
// the empty schema with exactly that account and points freepbx.conf at it.
import { expect } from "chai";
import * as fs from "fs";
import * as path from "path";
import {
  FREEPBX_DB_PRIVILEGES,
  FREEPBX_DB_USER,
  PBX_FREEPBX_DB_SOURCE,
  renderFreepbxConf,
  renderFreepbxDbEnv,
} from "../../../components/pbx";
import { FREEPBX_DATABASE } from "../../../components/pbx-replicated-set";
import { SERVER_DIR, envFile } from "../../../components/server-files";
import { run } from "../../../lib/rehearse/backup";
import { LoopbackPair, defaultMysqlSettings } from "../../../lib/rehearse/mysql";

describe("FreePBX's account on the MySQL pair (real MariaDB, issue 16)", function () {
  this.timeout(300_000);
  let pair: LoopbackPair;
  const settings = defaultMysqlSettings({
    databases: [FREEPBX_DATABASE, "app"],
    accounts: [
      { user: FREEPBX_DB_USER, database: FREEPBX_DATABASE, privileges: FREEPBX_DB_PRIVILEGES },
    ],
  });

  before(async () => {
    pair = await LoopbackPair.create({ settings });
    await Promise.all([pair.start("primary", "primary"), pair.start("standby", "primary")]);
    await pair.runScriptChecked("setup", "primary");
  });
  after(async () => {
    await pair?.destroy();
  });

  /** SQL as FreePBX's account over TCP, as FreePBX connects; "" when it succeeds, else the error. */
  async function asFreepbx(sql: string): Promise<string> {
    const r = await run("mariadb", [...pair.appClientArgs("primary", 0), "-N", "-B"], {
      input: sql,
      deadline: Date.now() + 30_000,
    });
    return r.code === 0 ? "" : r.stderr.trim() || `exit ${r.code}`;
  }

  it("builds and uses a FreePBX-like schema with exactly the granted privileges", async () => {
    const err = await asFreepbx(`
      USE asterisk;
      CREATE TABLE freepbx_settings (keyword VARCHAR(50) PRIMARY KEY, value VARCHAR(255));
      CREATE TABLE modules (id INT AUTO_INCREMENT PRIMARY KEY, modulename VARCHAR(50) NOT NULL, version VARCHAR(20), enabled TINYINT(1) DEFAULT 0);
      CREATE UNIQUE INDEX modulename ON modules (modulename);
      CREATE TABLE users (extension VARCHAR(20) PRIMARY KEY, name VARCHAR(50)) ENGINE=InnoDB;
      CREATE TABLE devices (id VARCHAR(20) PRIMARY KEY, user VARCHAR(20),
        FOREIGN KEY (user) REFERENCES users (extension) ON DELETE CASCADE) ENGINE=InnoDB;
      ALTER TABLE users ADD COLUMN voicemail VARCHAR(50) DEFAULT 'novm';
      INSERT INTO freepbx_settings VALUES ('AMPASTERISKUSER', 'asterisk');
      INSERT INTO modules (modulename, version, enabled) VALUES ('core', '17.0.1', 1);
      INSERT INTO users VALUES ('1001', 'Reception', 'default');
      INSERT INTO devices VALUES ('1001', '1001');
      UPDATE modules SET version = '17.0.2' WHERE modulename = 'core';
      CREATE TEMPORARY TABLE staging AS SELECT * FROM users;
      LOCK TABLES users WRITE, devices WRITE;
      DELETE FROM devices WHERE id = '1001';
      UNLOCK TABLES;
      CREATE TABLE obsolete (id INT);
      DROP TABLE obsolete;
      SELECT version FROM modules WHERE modulename = 'core';
    `);
    expect(err).to.equal("");
    expect((await pair.sql("primary", "SELECT version FROM asterisk.modules")).trim()).to.equal(
      "17.0.2",
    );
  });

  // Each must fail with a privilege error: FreePBX never needs it.
  const forbidden: [string, string][] = [
    ["another schema", "SELECT * FROM app.anything"],
    ["creating another schema", "CREATE DATABASE freepbx_other"],
    ["the accounts table", "SELECT user FROM mysql.user"],
    ["GRANT", `GRANT SELECT ON asterisk.* TO '${FREEPBX_DB_USER}'@'127.0.0.1'`],
    ["FILE (writing files on the server)", "SELECT 1 INTO OUTFILE '/tmp/hastack-freepbx-leak'"],
    ["a stored routine", "CREATE PROCEDURE asterisk.p() SELECT 1"],
    [
      "a trigger",
      "CREATE TRIGGER asterisk.t BEFORE INSERT ON asterisk.users FOR EACH ROW SET @x = 1",
    ],
    ["a view", "CREATE VIEW asterisk.v AS SELECT 1"],
    ["a global setting (read_only fencing must hold)", "SET GLOBAL read_only = OFF"],
    ["a new account", "CREATE USER 'x'@'127.0.0.1'"],
  ];
  for (const [what, sql] of forbidden) {
    it(`refuses ${what}`, async () => {
      expect(await asFreepbx(sql)).to.match(/denied|privilege/i);
    });
  }

  it("hastack-pbx-freepbx-db adopts a local FreePBX database into the empty schema, once, and points freepbx.conf at it", async () => {
    // A fresh, empty schema on the pair; a "local" FreePBX database on the other server.
    await pair.sql("primary", "DROP DATABASE asterisk; CREATE DATABASE asterisk");
    await pair.sql(
      "standby",
      "SET SESSION sql_log_bin = 0; CREATE DATABASE asterisk; " +
        "CREATE TABLE asterisk.users (extension VARCHAR(20) PRIMARY KEY, name VARCHAR(50)); " +
        "INSERT INTO asterisk.users VALUES ('1001', 'Reception'), ('1002', 'Sales'); " +
        "CREATE TABLE asterisk.freepbx_settings (keyword VARCHAR(50) PRIMARY KEY, value TEXT); " +
        "INSERT INTO asterisk.freepbx_settings VALUES ('AMPMGRUSER', 'admin');",
    );
    const dir = path.join(pair.dir, "pbx");
    fs.mkdirSync(path.join(dir, "bin"), { recursive: true });
    // The AWS CLI stand-in answers the SSM read with the account's password.
    fs.writeFileSync(
      path.join(dir, "bin", "aws"),
      `#!/bin/sh\necho '${pair.accountPasswords[0]}'\n`,
      { mode: 0o755 },
    );
    fs.writeFileSync(path.join(dir, "freepbx.conf"), "<?php // the installer's local config\n");
    fs.writeFileSync(
      path.join(dir, "rendered.conf"),
      renderFreepbxConf({
        host: "db.internal.example.test",
        port: 3306,
        cdrDatabase: "asteriskcdrdb",
      }),
    );
    const env = path.join(dir, "freepbx-db.env");
    fs.writeFileSync(
      env,
      renderFreepbxDbEnv({
        region: "ap-southeast-3",
        freepbxDb: {
          host: "127.0.0.1",
          port: pair.servers.primary.port,
          passwordParameter: "/hastack/pbx/freepbx-db-password",
          cdrDatabase: "asteriskcdrdb",
          cdrPasswordParameter: "/hastack/pbx/freepbx-cdr-db-password",
        },
        adoptLocal: true,
      }) +
        envFile({
          PASSWORD_FILE: path.join(dir, "password"),
          CDR_PASSWORD_FILE: path.join(dir, "cdr-password"),
          RENDERED_CONF: path.join(dir, "rendered.conf"),
          FREEPBX_CONF: path.join(dir, "freepbx.conf"),
          LOCAL_OPTS: `--socket=${pair.servers.standby.socket} -uroot`,
          ATTEMPTS: 3,
          RETRY_SECONDS: 1,
        }),
    );
    const script = (): Promise<{ code: number; stderr: string }> =>
      run("bash", [path.join(SERVER_DIR, PBX_FREEPBX_DB_SOURCE)], {
        env: {
          PBX_FREEPBX_DB_ENV: env,
          PATH: `${path.join(dir, "bin")}:${process.env.PATH}`,
        },
        deadline: Date.now() + 120_000,
      });
    const first = await script();
    expect(first.code, first.stderr).to.equal(0);
    expect(first.stderr).to.contain("adopting the local asterisk");
    expect(
      (await pair.sql("primary", "SELECT name FROM asterisk.users ORDER BY extension")).trim(),
    ).to.equal("Reception\nSales");
    expect(fs.readFileSync(path.join(dir, "password"), "utf8")).to.equal(
      `${pair.accountPasswords[0]}\n`,
    );
    expect(fs.statSync(path.join(dir, "password")).mode & 0o777).to.equal(0o640);
    const conf = fs.readFileSync(path.join(dir, "freepbx.conf"), "utf8");
    expect(conf).to.contain("$amp_conf['AMPDBHOST'] = 'db.internal.example.test';");
    expect(conf).to.not.contain(pair.accountPasswords[0]);
    expect(fs.readFileSync(path.join(dir, "freepbx.conf.hastack-local"), "utf8")).to.contain(
      "installer's local config",
    );
    // A second boot never adopts again: the schema on the pair is the source of truth now.
    await pair.sql("standby", "INSERT INTO asterisk.users VALUES ('1003', 'Stale')");
    const second = await script();
    expect(second.code, second.stderr).to.equal(0);
    expect(second.stderr).to.not.contain("adopting");
    expect((await pair.sql("primary", "SELECT COUNT(*) FROM asterisk.users")).trim()).to.equal("2");
  });
});
