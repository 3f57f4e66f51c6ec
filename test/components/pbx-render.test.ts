// PBX rendering: the CDR/ODBC config Asterisk needs, the FreePBX-style cloud-init part, SIP
// ports and SRV values. There is no Asterisk package in Debian (it left the archive after
// Debian 10), so Asterisk itself cannot parse these files here: its config syntax (`[section]`,
// `key => value`, `;` comments, `#include`) is parsed below and checked for the keys res_odbc
// and cdr_adaptive_odbc read. The ODBC half is checked for real: unixODBC's isql connects
// through the rendered odbc.ini/odbcinst.ini and Debian's MariaDB driver to a real mariadbd and
// inserts a CDR into the rendered table, the way res_odbc would.
import { expect } from "chai";
import { expectValidCloudConfig } from "../support/cloud-init";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as zlib from "zlib";
import {
  ASTERISK_CDR_VARIABLES,
  CDR_CONNECTION,
  CDR_PASSWORD_INCLUDE,
  FREEPBX_CDR_VARIABLES,
  ODBC_DRIVER_NAME,
  PBX_ADMIN_PORTS,
  PBX_CDR_SETUP_SCRIPT_SOURCE,
  PBX_INSTALL_SCRIPT_SOURCE,
  PBX_SYNC_SCRIPT_SOURCE,
  debianMultiarch,
  pbxCloudConfigParts,
  pbxRtoSeconds,
  pbxServicePorts,
  renderCdrAdaptiveOdbcConf,
  renderCdrTableSql,
  renderOdbcIni,
  renderOdbcinstIni,
  renderResOdbcConf,
  sipSrvRecords,
} from "../../components/pbx";
import {
  IS_ACTIVE_SCRIPT_SOURCE,
  SSH_KEYS_SCRIPT_SOURCE,
  renderSshKeysEnv,
} from "../../components/backup-jobs";
import { SERVER_DIR } from "../../components/server-files";
import { renderCloudConfig, userDataInputs } from "../../components/server-pair";
import { MariadbServer, requireTools, run, startMariadb } from "../../lib/rehearse/backup";

/** Asterisk/ODBC INI: sections of key → value (`=>` or `=`), plus #include lines per section. */
function parseIni(text: string): Map<string, { keys: Map<string, string>; includes: string[] }> {
  const sections = new Map<string, { keys: Map<string, string>; includes: string[] }>();
  let current: { keys: Map<string, string>; includes: string[] } | undefined;
  text.split("\n").forEach((raw, i) => {
    const line = raw
      .replace(/\s;.*$/, "")
      .replace(/^;.*$/, "")
      .trim();
    if (line === "") {
      return;
    }
    const section = /^\[([^\]]+)\]$/.exec(line);
    if (section) {
      current = { keys: new Map(), includes: [] };
      sections.set(section[1], current);
      return;
    }
    if (!current) {
      throw new Error(`line ${i + 1} outside any section: ${raw}`);
    }
    const include = /^#include\s+"?([^"]+)"?$/.exec(line);
    if (include) {
      current.includes.push(include[1]);
      return;
    }
    const kv = /^([^=]+?)\s*=>?\s*(.*)$/.exec(line);
    if (!kv) {
      throw new Error(`line ${i + 1} is neither a section, a key nor an #include: ${raw}`);
    }
    current.keys.set(kv[1].trim().toLowerCase(), kv[2].trim());
  });
  return sections;
}

describe("CDR/ODBC config (parsed; Asterisk itself is not packaged in Debian)", () => {
  const resOdbc = parseIni(renderResOdbcConf({ user: "asteriskcdr" }));
  const adaptive = parseIni(renderCdrAdaptiveOdbcConf());
  const odbcIni = parseIni(
    renderOdbcIni({ host: "db.example.co.id", port: 3306, database: "asteriskcdrdb" }),
  );
  const odbcinst = parseIni(renderOdbcinstIni({ instanceType: "t3.small" }));

  it("res_odbc: an enabled, pre-connected connection on the DSN, with user but no password in text", () => {
    const c = resOdbc.get(CDR_CONNECTION)!;
    expect(c.keys.get("enabled")).to.equal("yes");
    expect(c.keys.get("dsn")).to.equal(CDR_CONNECTION);
    expect(c.keys.get("username")).to.equal("asteriskcdr");
    expect(c.keys.get("pre-connect")).to.equal("yes");
    expect(c.keys.get("sanitysql")).to.equal("select 1");
    expect(c.keys.has("password")).to.equal(false);
    expect(c.includes).to.deep.equal([CDR_PASSWORD_INCLUDE]);
  });

  it("cdr_adaptive_odbc: posts to table cdr through that connection, start stored as calldate", () => {
    const a = adaptive.get(CDR_CONNECTION)!;
    expect(a.keys.get("connection")).to.equal(CDR_CONNECTION);
    expect(a.keys.get("table")).to.equal("cdr");
    expect(a.keys.get("alias start")).to.equal("calldate");
    expect(resOdbc.has(a.keys.get("connection")!)).to.equal(true);
  });

  it("odbc.ini: the DSN res_odbc names, on the database pair's endpoint, with a driver odbcinst.ini defines", () => {
    const dsn = odbcIni.get(resOdbc.get(CDR_CONNECTION)!.keys.get("dsn")!)!;
    expect(dsn.keys.get("server")).to.equal("db.example.co.id");
    expect(dsn.keys.get("port")).to.equal("3306");
    expect(dsn.keys.get("database")).to.equal("asteriskcdrdb");
    expect(dsn.keys.has("password")).to.equal(false);
    expect(dsn.keys.has("pwd")).to.equal(false);
    const driver = odbcinst.get(dsn.keys.get("driver")!)!;
    expect(driver, `odbcinst.ini defines ${ODBC_DRIVER_NAME}`).to.not.equal(undefined);
    expect(driver.keys.get("driver")).to.equal("/usr/lib/x86_64-linux-gnu/odbc/libmaodbc.so");
  });

  it("every column of the cdr table is a CDR variable Asterisk or FreePBX fills, an alias target, or the key", () => {
    const columns = [...renderCdrTableSql("asteriskcdrdb").matchAll(/^ {2}`(\w+)` /gm)].map(
      (m) => m[1],
    );
    const aliasTargets = [...adaptive.get(CDR_CONNECTION)!.keys]
      .filter(([k]) => k.startsWith("alias "))
      .map(([, v]) => v);
    const filled = new Set([
      ...ASTERISK_CDR_VARIABLES,
      ...FREEPBX_CDR_VARIABLES,
      ...aliasTargets,
      "id",
    ]);
    expect(columns).to.include.members(["calldate", "src", "dst", "uniqueid", "recordingfile"]);
    expect(columns.filter((c) => !filled.has(c))).to.deep.equal([]);
  });

  const arch: [string, string][] = [
    ["t3.small", "x86_64-linux-gnu"],
    ["m5.large", "x86_64-linux-gnu"],
    ["c5n.xlarge", "x86_64-linux-gnu"],
    ["t4g.small", "aarch64-linux-gnu"],
    ["m7gd.large", "aarch64-linux-gnu"],
    ["c6gn.medium", "aarch64-linux-gnu"],
  ];
  for (const [type, triplet] of arch) {
    it(`the ODBC driver path follows the CPU: ${type} → ${triplet}`, () =>
      expect(debianMultiarch(type)).to.equal(triplet));
  }
});

describe("CDR DSN for real: isql → MariaDB ODBC driver → mariadbd, with the rendered files", function () {
  this.timeout(120_000);
  let tmp: string;
  let db: MariadbServer | undefined;

  before(async () => {
    requireTools({
      isql: "unixodbc",
      mariadbd: "mariadb-server",
      "mariadb-install-db": "mariadb-server",
    });
    if (!fs.existsSync("/usr/lib/x86_64-linux-gnu/odbc/libmaodbc.so")) {
      throw new Error(
        "MariaDB ODBC driver missing: install Debian package odbc-mariadb (test/install-deps.sh)",
      );
    }
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), "hastack-odbc-"));
    db = await startMariadb({ dir: path.join(tmp, "db"), binlog: false });
    await db.sql(
      renderCdrTableSql("asteriskcdrdb") +
        "CREATE USER 'asteriskcdr'@'127.0.0.1' IDENTIFIED BY 'Cdr0nlyPassw0rd';\n" +
        "GRANT SELECT, INSERT ON asteriskcdrdb.* TO 'asteriskcdr'@'127.0.0.1';\n",
    );
    fs.writeFileSync(
      path.join(tmp, "odbcinst.ini"),
      renderOdbcinstIni({ instanceType: "t3.small" }),
    );
    fs.writeFileSync(
      path.join(tmp, "odbc.ini"),
      renderOdbcIni({ host: "127.0.0.1", port: db.port, database: "asteriskcdrdb" }),
    );
  });
  after(async () => {
    await db?.stop();
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  const isql = (password: string, sql: string) =>
    run("isql", ["-b", "-v", CDR_CONNECTION, "asteriskcdr", password], {
      // ODBCSYSINI: unixODBC reads odbc.ini and odbcinst.ini from here instead of /etc.
      env: { ODBCSYSINI: tmp, ODBCINI: path.join(tmp, "odbc.ini") },
      input: sql,
      deadline: Date.now() + 30_000,
    });

  it("inserts a CDR through the DSN with the credentials res_odbc passes", async () => {
    const r = await isql(
      "Cdr0nlyPassw0rd",
      "INSERT INTO cdr (calldate, clid, src, dst, dcontext, duration, billsec, disposition, uniqueid, linkedid, recordingfile) VALUES ('2024-05-17 10:00:00', '\"Alice\" <1001>', '1001', '0812345', 'from-internal', 42, 40, 'ANSWERED', '1715940000.1', '1715940000.1', 'out-0812345-1001.wav')\n",
    );
    expect(r.code, r.stdout + r.stderr).to.equal(0);
    const rows = await db!.sql("SELECT src, dst, billsec FROM asteriskcdrdb.cdr;");
    expect(rows.trim()).to.equal("1001\t0812345\t40");
  });

  it("is refused with a wrong password (the DSN carries none of its own)", async () => {
    const r = await isql("wrong", "SELECT 1\n");
    expect(r.code).to.not.equal(0);
    expect(r.stdout + r.stderr).to.match(/Access denied/);
  });
});

describe("PBX boot scripts (bash, with a stub aws CLI)", function () {
  this.timeout(30_000);
  let tmp: string;
  beforeEach(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), "hastack-pbxboot-"));
    fs.mkdirSync(path.join(tmp, "bin"));
    // Stands in for `aws ssm get-parameter`: prints a value per parameter name.
    fs.writeFileSync(
      path.join(tmp, "bin", "aws"),
      `#!/bin/sh
while [ $# -gt 0 ]; do [ "$1" = --name ] && name=$2; shift; done
case "$name" in
  /hastack/pbx/cdr-db-password) echo Sup3rSecretCdr ;;
  /hastack/pbx/sync-ssh-private-key) printf -- '-----BEGIN OPENSSH PRIVATE KEY-----\\nAAAA\\n-----END OPENSSH PRIVATE KEY-----\\n' ;;
  /hastack/pbx/sync-ssh-public-key) echo 'ssh-ed25519 AAAAsync hastack-pbx-sync' ;;
  /hastack/pbx/nas-backup-ssh-public-key) echo 'ssh-ed25519 AAAAnas hastack-nas' ;;
  *) exit 255 ;;
esac
`,
      { mode: 0o755 },
    );
  });
  afterEach(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it("every PBX server script is valid bash", async () => {
    for (const rel of [
      PBX_SYNC_SCRIPT_SOURCE,
      PBX_INSTALL_SCRIPT_SOURCE,
      PBX_CDR_SETUP_SCRIPT_SOURCE,
      SSH_KEYS_SCRIPT_SOURCE,
      IS_ACTIVE_SCRIPT_SOURCE,
    ]) {
      const r = await run("bash", ["-n", path.join(SERVER_DIR, rel)]);
      expect(r.code, `${rel}: ${r.stderr}`).to.equal(0);
    }
  });

  it("cdr setup writes the password only to the include file (0640), wires the includes once", async () => {
    const etc = path.join(tmp, "asterisk");
    const rendered = path.join(tmp, "rendered");
    fs.mkdirSync(etc);
    fs.mkdirSync(rendered);
    fs.writeFileSync(path.join(etc, "res_odbc.conf"), "#include res_odbc_additional.conf\n");
    fs.writeFileSync(
      path.join(rendered, "res_odbc_hastack.conf"),
      renderResOdbcConf({ user: "asteriskcdr" }),
    );
    fs.writeFileSync(
      path.join(rendered, "cdr_adaptive_odbc_hastack.conf"),
      renderCdrAdaptiveOdbcConf(),
    );
    const include = path.join(tmp, "secret", "res_odbc_password.conf");
    fs.writeFileSync(
      path.join(tmp, "cdr.env"),
      `REGION='ap-southeast-3'\nPASSWORD_PARAMETER='/hastack/pbx/cdr-db-password'\nPASSWORD_INCLUDE='${include}'\nDSN_HOST='db.example.co.id'\n`,
    );
    const env = {
      PATH: `${path.join(tmp, "bin")}:${process.env.PATH}`,
      PBX_CDR_ENV: path.join(tmp, "cdr.env"),
      ASTERISK_ETC: etc,
      RENDERED_DIR: rendered,
    };
    for (let i = 0; i < 2; i++) {
      const r = await run("bash", [path.join(SERVER_DIR, PBX_CDR_SETUP_SCRIPT_SOURCE)], {
        env,
        deadline: Date.now() + 20_000,
      });
      expect(r.code, r.stderr).to.equal(0);
    }
    expect(fs.readFileSync(include, "utf8")).to.equal("password => Sup3rSecretCdr\n");
    expect(fs.statSync(include).mode & 0o777).to.equal(0o640);
    expect(fs.readFileSync(path.join(etc, "res_odbc.conf"), "utf8")).to.equal(
      '#include res_odbc_additional.conf\n#include "res_odbc_hastack.conf"\n',
    );
    expect(fs.readFileSync(path.join(etc, "cdr_adaptive_odbc.conf"), "utf8")).to.equal(
      '#include "cdr_adaptive_odbc_hastack.conf"\n',
    );
    for (const f of fs.readdirSync(etc)) {
      expect(fs.readFileSync(path.join(etc, f), "utf8"), f).not.to.contain("Sup3rSecretCdr");
    }
  });

  it("ssh keys: the private key 0600, peers write-only and the NAS read-only, other keys kept", async () => {
    const sshDir = path.join(tmp, "ssh");
    fs.mkdirSync(sshDir);
    fs.writeFileSync(path.join(sshDir, "authorized_keys"), "ssh-ed25519 AAAAadmin admin@office\n");
    const envFile = path.join(tmp, "keys.env");
    fs.writeFileSync(
      envFile,
      renderSshKeysEnv({
        region: "ap-southeast-3",
        privateKey: {
          parameter: "/hastack/pbx/sync-ssh-private-key",
          path: path.join(sshDir, "sync"),
        },
        authorized: [
          { parameter: "/hastack/pbx/sync-ssh-public-key", mode: "wo" },
          { parameter: "/hastack/pbx/nas-backup-ssh-public-key", mode: "ro" },
        ],
      }),
    );
    const env = { PATH: `${path.join(tmp, "bin")}:${process.env.PATH}`, SSH_DIR: sshDir };
    for (let i = 0; i < 2; i++) {
      const r = await run("bash", [path.join(SERVER_DIR, SSH_KEYS_SCRIPT_SOURCE), envFile], {
        env,
      });
      expect(r.code, r.stderr).to.equal(0);
    }
    expect(fs.statSync(path.join(sshDir, "sync")).mode & 0o777).to.equal(0o600);
    expect(fs.readFileSync(path.join(sshDir, "authorized_keys"), "utf8")).to.equal(
      "ssh-ed25519 AAAAadmin admin@office\n" +
        'command="/usr/bin/rrsync -wo /",restrict ssh-ed25519 AAAAsync hastack-pbx-sync hastack-managed\n' +
        'command="/usr/bin/rrsync -ro /",restrict ssh-ed25519 AAAAnas hastack-nas hastack-managed\n',
    );
  });
});

describe("PBX cloud-init part", function () {
  this.timeout(180_000);
  const parts = pbxCloudConfigParts({
    role: "primary",
    hostname: "pbx1",
    fqdn: "pbx1.example.co.id",
    serviceName: "pbx.example.co.id",
    peer: "pbx2.example.co.id",
    region: "ap-southeast-3",
    ssmPrefix: "/hastack/pbx",
    databaseEndpoint: "db.example.co.id",
    databasePort: 3306,
    cdrDatabase: "asteriskcdrdb",
    syncIntervalMinutes: 15,
    rtpPorts: { from: 10000, to: 20000 },
    instanceType: "t3.small",
  });

  it("passes `cloud-init schema` once rendered by ServerPair", () => {
    expectValidCloudConfig(renderCloudConfig(parts));
  });

  it("installs the ODBC driver, rsync and the AWS CLI, and runs install → keys → CDR → sync timer in order", () => {
    expect(parts.packages).to.include.members([
      "odbc-mariadb",
      "unixodbc",
      "rsync",
      "awscli",
      "python3",
    ]);
    const cmds = (parts.runcmd ?? []).map((c) => (Array.isArray(c) ? c.join(" ") : c));
    const idx = (needle: string) => cmds.findIndex((c) => c.includes(needle));
    expect(idx("hastack-pbx-install")).to.be.lessThan(idx("hastack-ssh-keys"));
    expect(idx("hastack-ssh-keys")).to.be.lessThan(idx("hastack-pbx-cdr-setup"));
    expect(idx("hastack-pbx-cdr-setup")).to.be.lessThan(idx("hastack-pbx-sync.timer"));
  });

  it("fits EC2's 16 KiB user-data limit gzipped, in eip (the default) and dns mode", () => {
    // With the shared shell library it is over 16 KiB as text: ServerPair sends it compressed
    // (userDataInputs), which cloud-init reads as is.
    const plain = renderCloudConfig(parts);
    expect(zlib.gzipSync(plain).length).to.be.lessThan(16 * 1024);
    expect(Object.keys(userDataInputs(plain))).to.deep.equal(
      Buffer.byteLength(plain) > 16 * 1024 ? ["userDataBase64"] : ["userData"],
    );
    const withAgent = renderCloudConfig({
      ...parts,
      healthAgent: { servicePort: 5060, failureThreshold: 3 },
    });
    expect(zlib.gzipSync(withAgent).length).to.be.lessThan(16 * 1024);
  });

  it("carries no secret: only SSM parameter names", () => {
    const text = renderCloudConfig(parts);
    expect(text).to.contain("/hastack/pbx/cdr-db-password");
    expect(text).not.to.match(/password\s*=>\s*(?!%s)\S/);
    expect(text).not.to.contain("PRIVATE KEY-----");
  });

  it("the sync pushes to the other server, the RTP range matches the security group", () => {
    const env = parts.writeFiles!.find((f) => f.path === "/etc/hastack/pbx-sync.env")!.content;
    expect(env).to.contain("PEER=pbx2.example.co.id");
    expect(env).to.contain("SERVICE_NAME=pbx.example.co.id");
    const rtp = parts.writeFiles!.find((f) => f.path.endsWith("rtp_hastack.conf"))!.content;
    expect(rtp).to.contain("rtpstart=10000\nrtpend=20000");
    const timer = parts.writeFiles!.find((f) => f.path.endsWith("hastack-pbx-sync.timer"))!.content;
    expect(timer).to.contain("OnCalendar=*-*-* *:00/15:00");
  });
});

describe("PBX ports, SRV records, RTO", () => {
  const ports = pbxServicePorts({
    rtpPorts: { from: 10000, to: 20000 },
    voiceCidrs: ["198.51.100.0/28", "203.0.113.0/24"],
    backupClientSecurityGroupIds: ["sg-nas"],
  });

  it("no SIP or RTP port is open to 0.0.0.0/0; each lists exactly the trunk and office CIDRs", () => {
    for (const p of ports.filter((p) => p.fromPort !== 22)) {
      expect(p.cidrs, p.description).to.deep.equal(["198.51.100.0/28", "203.0.113.0/24"]);
    }
    expect(ports.flatMap((p) => p.cidrs ?? [])).not.to.include("0.0.0.0/0");
  });
  it("an empty CIDR list means closed, never the ServerPair default of 0.0.0.0/0", () => {
    const closed = pbxServicePorts({ rtpPorts: { from: 10000, to: 20000 }, voiceCidrs: [] });
    expect(closed.every((p) => Array.isArray(p.cidrs) && p.cidrs.length === 0)).to.equal(true);
  });
  it("SIP 5060 UDP+TCP, SIP-TLS 5061 TCP, RTP UDP only", () => {
    expect(ports.map((p) => [p.protocol, p.fromPort, p.toPort ?? p.fromPort])).to.deep.equal([
      ["udp", 5060, 5060],
      ["tcp", 5060, 5060],
      ["tcp", 5061, 5061],
      ["udp", 10000, 20000],
      ["tcp", 22, 22],
    ]);
  });
  it("SSH for backups only from the NAS security group", () => {
    const ssh = ports.find((p) => p.fromPort === 22)!;
    expect(ssh.cidrs).to.deep.equal([]);
    expect(ssh.sourceSecurityGroupIds).to.deep.equal(["sg-nas"]);
  });
  it("admin web UI and AMI are neither admin nor service ports (SSH tunnel only)", () => {
    expect(PBX_ADMIN_PORTS).to.deep.equal([22]);
    expect(ports.map((p) => p.fromPort)).not.to.include.members([80, 443, 5038]);
  });
  it("SRV values are `priority weight port target`", () => {
    const srv = sipSrvRecords("example.co.id", "pbx.example.co.id");
    expect(srv.map((s) => [s.name, s.value])).to.deep.equal([
      ["_sip._udp.example.co.id", "10 100 5060 pbx.example.co.id"],
      ["_sip._tcp.example.co.id", "10 100 5060 pbx.example.co.id"],
      ["_sips._tcp.example.co.id", "10 100 5061 pbx.example.co.id"],
    ]);
    for (const s of srv) {
      expect(s.value).to.match(/^\d+ \d+ \d+ [a-z0-9.-]+$/);
    }
  });
  it("RTO adds phone re-registration to the pair's switch time", () => {
    expect(pbxRtoSeconds(960)).to.equal(1260);
  });
});
