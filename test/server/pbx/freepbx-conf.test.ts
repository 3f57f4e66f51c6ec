// /etc/freepbx.conf as rendered (issue 16), read by real PHP the way FreePBX reads it: it parses
// (`php -l`), and including it yields the connection to the MySQL pair's internal name with the
// password taken from the root:asterisk file at run time (never written in the file).
import { expect } from "chai";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import {
  FREEPBX_CDR_DB_USER,
  FREEPBX_CDR_PASSWORD_FILE,
  FREEPBX_DB_USER,
  FREEPBX_PASSWORD_FILE,
  renderFreepbxConf,
} from "../../../components/pbx";
import { FREEPBX_DATABASE } from "../../../components/pbx-replicated-set";
import { requireTools, run } from "../../../lib/rehearse/backup";

const BOOTSTRAP = "/var/www/html/admin/bootstrap.php";

describe("freepbx.conf (real PHP)", function () {
  this.timeout(180_000);
  let tmp: string;
  before(() => requireTools({ php: "php-cli" }));
  beforeEach(() => (tmp = fs.mkdtempSync(path.join(os.tmpdir(), "hastack-freepbx-conf-"))));
  afterEach(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it("parses, and FreePBX gets the pair's internal name, its account and the password from the file", async () => {
    const text = renderFreepbxConf({
      host: "db.internal.example.co.id",
      port: 3306,
      cdrDatabase: "asteriskcdrdb",
    });
    expect(text).to.contain(FREEPBX_PASSWORD_FILE);
    expect(text).to.contain(FREEPBX_CDR_PASSWORD_FILE);
    expect(text).to.contain(BOOTSTRAP);
    const conf = path.join(tmp, "freepbx.conf");
    fs.writeFileSync(conf, text);
    const lint = await run("php", ["-l", conf], { deadline: Date.now() + 30_000 });
    expect(lint.code, lint.stdout + lint.stderr).to.equal(0);
    // Run it where the test may write: the two absolute paths point into the temp directory.
    fs.writeFileSync(path.join(tmp, "password"), "s3cretFromSsm\n");
    fs.writeFileSync(path.join(tmp, "cdr-password"), "cdrReportsSecret\n");
    fs.writeFileSync(path.join(tmp, "bootstrap.php"), "<?php $bootstrapped = true;\n");
    fs.writeFileSync(
      conf,
      text
        .replace(FREEPBX_PASSWORD_FILE, path.join(tmp, "password"))
        .replace(FREEPBX_CDR_PASSWORD_FILE, path.join(tmp, "cdr-password"))
        .replace(BOOTSTRAP, path.join(tmp, "bootstrap.php")),
    );
    const r = await run(
      "php",
      ["-r", `include '${conf}'; echo json_encode([$amp_conf, $bootstrapped]);`],
      { deadline: Date.now() + 30_000 },
    );
    expect(r.code, r.stderr).to.equal(0);
    const [amp, bootstrapped] = JSON.parse(r.stdout) as [Record<string, string>, boolean];
    expect(amp).to.deep.equal({
      AMPDBUSER: FREEPBX_DB_USER,
      AMPDBPASS: "s3cretFromSsm",
      AMPDBHOST: "db.internal.example.co.id",
      AMPDBPORT: "3306",
      AMPDBNAME: FREEPBX_DATABASE,
      AMPDBENGINE: "mysql",
      datasource: "",
      // The CDR reports: the same internal name, their own read-only account.
      CDRDBTYPE: "mysql",
      CDRDBHOST: "db.internal.example.co.id",
      CDRDBPORT: "3306",
      CDRDBNAME: "asteriskcdrdb",
      CDRDBTABLENAME: "cdr",
      CDRDBUSER: FREEPBX_CDR_DB_USER,
      CDRDBPASS: "cdrReportsSecret",
    });
    expect(bootstrapped, "FreePBX's bootstrap is loaded last").to.equal(true);
  });
});
