// Table-driven tests of what the MySQL pair renders, for both engines, plus the real checkers:
// `bash -n` for every script and `mariadbd --help --verbose` (which refuses unknown options and
// bad values) for the MariaDB server and role files.
import { expect } from "chai";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import {
  DIALECTS,
  Engine,
  MysqlSettings,
  SCRIPT_ENV,
  SCRIPT_NAMES,
  accountPasswordEnv,
  mysqlRpoSeconds,
  mysqlRtoSeconds,
  remoteShell,
  renderChangeSourceSql,
  renderBootRoleDropIn,
  renderProvisionScript,
  renderReplicationUserSql,
  renderRoleConfig,
  renderScript,
  renderServerConfig,
  replicationMode,
  serverIdFor,
} from "../../components/mysql-scripts";
import { SERVER_DIR } from "../../components/server-files";
import { ROLES } from "../../components/server-pair";

const ENGINES: Engine[] = ["mariadb", "mysql"];

function settings(over: Partial<MysqlSettings> = {}): MysqlSettings {
  return {
    engine: "mariadb",
    semiSync: true,
    semiSyncTimeoutMs: 10000,
    binlogRetentionDays: 7,
    maxFailoverLagSeconds: 30,
    forceFailover: false,
    databases: ["asteriskcdrdb", "app"],
    accounts: [{ user: "asteriskcdr", database: "asteriskcdrdb", privileges: "INSERT, SELECT" }],
    ...over,
  };
}

/** key = value lines of an option file, keys as written. */
function options(cnf: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of cnf.split("\n")) {
    const m = /^([a-z_]+)\s*=\s*(.*)$/.exec(line);
    if (m) {
      out[m[1]] = m[2];
    }
  }
  return out;
}

function mariadbd(): string {
  for (const p of ["/usr/sbin/mariadbd", "/usr/bin/mariadbd"]) {
    if (fs.existsSync(p)) {
      return p;
    }
  }
  throw new Error("mariadbd not found: install the Debian package mariadb-server");
}

describe("mysql rendering: server config", () => {
  const cases: {
    engine: Engine;
    section: string;
    gtid: Record<string, string>;
    semi: Record<string, string>;
    plugins: boolean;
  }[] = [
    {
      engine: "mariadb",
      section: "[mariadbd]",
      gtid: { gtid_strict_mode: "ON", log_slave_updates: "ON", gtid_domain_id: "0" },
      semi: {
        rpl_semi_sync_master_timeout: "10000",
        rpl_semi_sync_master_wait_point: "AFTER_SYNC",
        rpl_semi_sync_master_wait_no_slave: "ON",
      },
      plugins: false,
    },
    {
      engine: "mysql",
      section: "[mysqld]",
      gtid: { gtid_mode: "ON", enforce_gtid_consistency: "ON", log_replica_updates: "ON" },
      semi: {
        rpl_semi_sync_source_timeout: "10000",
        rpl_semi_sync_source_wait_point: "AFTER_SYNC",
        rpl_semi_sync_source_wait_no_replica: "ON",
      },
      plugins: true,
    },
  ];
  for (const c of cases) {
    describe(c.engine, () => {
      it("gives each side its own server_id", () => {
        const ids = ROLES.map(
          (side) =>
            options(renderServerConfig({ ...settings({ engine: c.engine }), side })).server_id,
        );
        expect(ids).to.deep.equal([String(serverIdFor("primary")), String(serverIdFor("standby"))]);
        expect(new Set(ids).size).to.equal(2);
      });
      it("enables GTID replication the engine's way, binlog retention and durable commits", () => {
        const cnf = renderServerConfig({
          ...settings({ engine: c.engine, binlogRetentionDays: 3 }),
          side: "primary",
        });
        expect(cnf).to.contain(c.section);
        const o = options(cnf);
        expect(o).to.include(c.gtid);
        expect(o).to.include({
          binlog_expire_logs_seconds: String(3 * 86400),
          binlog_format: "ROW",
          sync_binlog: "1",
          innodb_flush_log_at_trx_commit: "1",
          datadir: "/srv/data/mysql",
          bind_address: "0.0.0.0",
          port: "3306",
        });
        // Role-dependent settings live in the role file only.
        expect(o).not.to.have.property("read_only");
      });
      it("configures semi-sync with the engine's variable names (plugins only for MySQL)", () => {
        const o = options(
          renderServerConfig({ ...settings({ engine: c.engine }), side: "standby" }),
        );
        expect(o).to.include(c.semi);
        const cnf = renderServerConfig({ ...settings({ engine: c.engine }), side: "standby" });
        expect(cnf.includes("plugin_load_add = semisync_source.so")).to.equal(c.plugins);
        expect(cnf.includes("plugin_load_add = semisync_replica.so")).to.equal(c.plugins);
      });
      it("leaves semi-sync out entirely when async", () => {
        const cnf = renderServerConfig({
          ...settings({ engine: c.engine, semiSync: false }),
          side: "primary",
        });
        expect(cnf).not.to.match(/rpl_semi|semisync/);
        for (const state of ["active", "passive"] as const) {
          expect(renderRoleConfig(c.engine, state, false)).not.to.match(/rpl_semi/);
        }
      });
    });
  }
});

describe("mysql rendering: role file", () => {
  const table: { engine: Engine; state: "active" | "passive"; want: Record<string, string> }[] = [
    {
      engine: "mariadb",
      state: "active",
      want: {
        read_only: "OFF",
        init_rpl_role: "MASTER",
        rpl_semi_sync_master_enabled: "ON",
        rpl_semi_sync_slave_enabled: "OFF",
      },
    },
    {
      engine: "mariadb",
      state: "passive",
      want: {
        read_only: "ON",
        init_rpl_role: "SLAVE",
        rpl_semi_sync_master_enabled: "OFF",
        rpl_semi_sync_slave_enabled: "ON",
      },
    },
    {
      engine: "mysql",
      state: "active",
      want: {
        read_only: "OFF",
        super_read_only: "OFF",
        rpl_semi_sync_source_enabled: "ON",
        rpl_semi_sync_replica_enabled: "OFF",
      },
    },
    {
      engine: "mysql",
      state: "passive",
      want: {
        read_only: "ON",
        super_read_only: "ON",
        rpl_semi_sync_source_enabled: "OFF",
        rpl_semi_sync_replica_enabled: "ON",
      },
    },
  ];
  for (const t of table) {
    it(`${t.engine} ${t.state}: ${JSON.stringify(t.want)}`, () => {
      expect(options(renderRoleConfig(t.engine, t.state, true))).to.deep.equal(t.want);
    });
  }
});

describe("mysql rendering: SQL dialects", () => {
  it("MariaDB: CHANGE MASTER TO … MASTER_USE_GTID=slave_pos", () => {
    const sql = renderChangeSourceSql("mariadb", "$H", "$P", "$PW");
    expect(sql).to.match(/^CHANGE MASTER TO MASTER_HOST='\$H', MASTER_PORT=\$P, /);
    expect(sql).to.contain("MASTER_USER='hastack_repl', MASTER_PASSWORD='$PW'");
    expect(sql).to.contain("MASTER_USE_GTID=slave_pos");
    expect(sql).not.to.contain("SOURCE");
  });
  it("MySQL: CHANGE REPLICATION SOURCE TO … SOURCE_AUTO_POSITION=1 over TLS", () => {
    const sql = renderChangeSourceSql("mysql", "$H", "$P", "$PW");
    expect(sql).to.match(/^CHANGE REPLICATION SOURCE TO SOURCE_HOST='\$H', SOURCE_PORT=\$P, /);
    expect(sql).to.contain("SOURCE_AUTO_POSITION=1");
    expect(sql).to.contain("SOURCE_SSL=1");
    expect(sql).not.to.contain("MASTER");
  });
  const grants: { engine: Engine; must: string[]; mustNot: string[] }[] = [
    {
      engine: "mariadb",
      must: [
        "REPLICATION SLAVE",
        "BINLOG MONITOR",
        "READ_ONLY ADMIN",
        "REPLICATION MASTER ADMIN",
        "RELOAD",
      ],
      mustNot: ["SUPER", "ALL PRIVILEGES", "INSERT", "UPDATE", "DELETE"],
    },
    {
      engine: "mysql",
      must: ["REPLICATION SLAVE", "REPLICATION CLIENT", "SYSTEM_VARIABLES_ADMIN", "RELOAD"],
      mustNot: ["SUPER", "ALL PRIVILEGES", "INSERT", "UPDATE", "DELETE"],
    },
  ];
  for (const g of grants) {
    it(`${g.engine}: the peer account is created unbinlogged with only what replication, dump and fencing need`, () => {
      const sql = renderReplicationUserSql(g.engine, "$HOST", "$PW");
      expect(sql.split("\n")[0]).to.equal("SET SESSION sql_log_bin = 0;");
      expect(sql).to.contain(
        "CREATE USER IF NOT EXISTS 'hastack_repl'@'$HOST' IDENTIFIED BY '$PW' REQUIRE SSL;",
      );
      // An existing account's TLS requirement is left as it is (test/server/mysql/security.test.ts).
      expect(sql).to.contain("ALTER USER 'hastack_repl'@'$HOST' IDENTIFIED BY '$PW';");
      const grant = sql.split("\n").find((l) => l.startsWith("GRANT "))!;
      for (const p of g.must) {
        expect(grant).to.contain(p);
      }
      for (const p of g.mustNot) {
        expect(grant).not.to.contain(p);
      }
    });
  }
});

describe("mysql rendering: role-change scripts", () => {
  for (const engine of ENGINES) {
    for (const name of SCRIPT_NAMES) {
      it(`${engine} ${name}: valid bash (bash -n), strict mode, no literal secret`, () => {
        const text = renderScript(name, settings({ engine }));
        const r = spawnSync("bash", ["-n"], { input: text, encoding: "utf8" });
        expect(r.status, r.stderr).to.equal(0);
        expect(text.startsWith("#!/bin/bash\n")).to.equal(true);
        expect(text).to.contain("set -euo pipefail");
        // Passwords are only ever shell expansions of the environment.
        expect(text).not.to.match(/PASSWORD='[A-Za-z0-9]/);
        expect(text).not.to.match(/IDENTIFIED BY '[A-Za-z0-9]/);
      });
    }
    it(`${engine}: scripts speak only their engine's dialect`, () => {
      const all = SCRIPT_NAMES.map((n) => renderScript(n, settings({ engine }))).join("\n");
      const d = DIALECTS[engine];
      expect(all).to.contain(d.stopReplica);
      expect(all).to.contain(d.showReplicaStatus);
      if (engine === "mariadb") {
        expect(all).to.contain("CHANGE MASTER TO");
        expect(all).to.contain("MASTER_GTID_WAIT");
        expect(all).not.to.match(
          /REPLICATION SOURCE|STOP REPLICA|rpl_semi_sync_source|WAIT_FOR_EXECUTED_GTID_SET/,
        );
      } else {
        expect(all).to.contain("CHANGE REPLICATION SOURCE TO");
        expect(all).to.contain("WAIT_FOR_EXECUTED_GTID_SET");
        expect(all).to.contain("GTID_SUBTRACT");
        expect(all).not.to.match(/CHANGE MASTER|STOP SLAVE|rpl_semi_sync_master|MASTER_GTID_WAIT/);
      }
    });
  }
  it("bakes the config's lag bound, force flag and databases in as overridable defaults", () => {
    const text = renderScript(
      "failover",
      settings({ maxFailoverLagSeconds: 45, forceFailover: true, databases: ["cdr"] }),
    );
    expect(text).to.contain(': "${HASTACK_MAX_LAG_SECONDS:=45}"');
    expect(text).to.contain(': "${HASTACK_FORCE:=1}"');
    expect(text).to.contain('DATABASES="cdr"');
    expect(renderScript("failover", settings())).to.contain(': "${HASTACK_FORCE:=0}"');
  });
  it("failover refuses with a message naming the config key, and exits 3 for refusals", () => {
    const text = renderScript("failover", settings());
    expect(text).to.contain('refuse() { log "REFUSED: $*"; exit 3; }');
    expect(text).to.contain("hastack:mysql.maxFailoverLagSeconds");
    expect(text).to.contain("hastack:mysql.forceFailover=true");
  });
  it("async settings never touch semi-sync variables in scripts", () => {
    for (const engine of ENGINES) {
      for (const name of SCRIPT_NAMES) {
        expect(
          renderScript(name, settings({ engine, semiSync: false })),
          `${engine} ${name}`,
        ).not.to.match(/rpl_semi/);
      }
    }
  });
  it("setup creates each application account unbinlogged, password from its own variable", () => {
    const text = renderScript("setup", settings());
    // Indirect expansion: the template names the variable (lint-clean), bash reads its value.
    expect(text).to.contain(`pw_var=${accountPasswordEnv(0)}\npw=\${!pw_var:-}\n`);
    // Issue 13: the clients' network (the VPC's range), never any host; an old '%' is dropped.
    expect(text).to.contain(
      "CREATE USER IF NOT EXISTS 'asteriskcdr'@'$HASTACK_CLIENT_HOST' IDENTIFIED BY '$pw';",
    );
    expect(text).to.contain(
      "GRANT INSERT, SELECT ON \\`asteriskcdrdb\\`.* TO 'asteriskcdr'@'$HASTACK_CLIENT_HOST';",
    );
    expect(text).to.contain("DROP USER IF EXISTS 'asteriskcdr'@'%';");
  });
  it("refuses account names that would need quoting", () => {
    expect(() =>
      renderScript("setup", settings({ accounts: [{ user: "x'; DROP", database: "app" }] })),
    ).to.throw(/names must be/);
  });
  it("the remote shell is constant text that preserves every parameter variable", () => {
    const shell = remoteShell(2);
    expect(shell).to.match(/^sudo --preserve-env=\S+ \/bin\/bash -s$/);
    const names = shell.split(" ")[1].replace("--preserve-env=", "").split(",");
    expect(names).to.include.members([...SCRIPT_ENV, accountPasswordEnv(0), accountPasswordEnv(1)]);
    expect(names).not.to.include(accountPasswordEnv(2));
  });
  it("boot-role runs before every start and never blocks it", () => {
    const dropIn = renderBootRoleDropIn(
      "mariadb",
      "standby",
      "/hastack/mysql/active-side",
      "ap-southeast-3",
    );
    expect(dropIn).to.contain("Environment=HASTACK_SIDE=standby");
    expect(dropIn).to.contain("Environment=HASTACK_AWS_REGION=ap-southeast-3");
    expect(dropIn).to.contain("Environment=HASTACK_SSM_ACTIVE_PARAM=/hastack/mysql/active-side");
    expect(dropIn).to.contain("ExecStartPre=-+/usr/local/sbin/hastack-mysql-boot-role");
  });
  it("boot-role runs with full privileges: Debian's unit is User=mysql under ProtectSystem=full", function () {
    // Found by the stack rehearsal (issue 11): without "+", the role file write failed with
    // "Read-only file system" and the MySQL primary started read-only for good.
    const unitFile = "/lib/systemd/system/mariadb.service";
    if (!fs.existsSync(unitFile)) {
      this.skip(); // mariadb-server: test/install-deps.sh
    }
    const unit = fs.readFileSync(unitFile, "utf8");
    expect(unit).to.match(/^ProtectSystem=full$/m);
    expect(unit).to.match(/^User=mysql$/m);
    const dropIn = renderBootRoleDropIn(
      "mariadb",
      "primary",
      "/hastack/mysql/active-side",
      "ap-southeast-3",
    );
    expect(dropIn).to.match(/^ExecStartPre=-\+\/usr\/local\/sbin\/hastack-mysql-boot-role$/m);
  });
  it("provisioning has the TLS files before the option file that names them reaches the server", () => {
    // The stack rehearsal (issue 11) found mariadb-install-db logging "Failed to setup SSL":
    // 60-hastack.cnf (ssl_ca/ssl_cert/ssl_key) was installed before the files were fetched.
    for (const e of ENGINES) {
      const m = renderProvisionScript(e);
      const fetched = m.indexOf("hastack_ssm_get");
      expect(fetched, e).to.be.greaterThan(0);
      expect(fetched, `${e}: TLS fetched before the option file is installed`).to.be.lessThan(
        m.indexOf("/60-hastack.cnf"),
      );
      expect(fetched, `${e}: before the data directory is initialised`).to.be.lessThan(
        m.indexOf("if [ ! -d /srv/data/mysql/mysql ]"),
      );
    }
  });
  it("provisioning puts the datadir on the data volume once", () => {
    const m = renderProvisionScript("mariadb");
    expect(m).to.contain("if [ ! -d /srv/data/mysql/mysql ]; then");
    expect(m).to.contain("mariadb-install-db --user=mysql --datadir=/srv/data/mysql");
    expect(renderProvisionScript("mysql")).to.contain(
      "mysqld --initialize-insecure --user=mysql --datadir=/srv/data/mysql",
    );
    for (const e of ENGINES) {
      expect(spawnSync("bash", ["-n"], { input: renderProvisionScript(e) }).status).to.equal(0);
    }
  });
});

describe("mysql rendering: boot-role decides the role from the stack's intent", () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "hastack-bootrole-"));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));
  const table: { side: string; active: string; want: "active" | "passive" }[] = [
    { side: "primary", active: "primary", want: "active" },
    { side: "standby", active: "standby", want: "active" },
    { side: "primary", active: "standby", want: "passive" },
    { side: "standby", active: "primary", want: "passive" },
    { side: "primary", active: "", want: "passive" },
    { side: "primary", active: "sideways", want: "passive" },
  ];
  for (const t of table) {
    it(`side ${t.side}, active ${JSON.stringify(t.active)} → ${t.want}`, () => {
      const roleCnf = path.join(dir, "role.cnf");
      const r = spawnSync("bash", ["-s"], {
        input: renderScript("boot-role", settings()),
        encoding: "utf8",
        env: {
          PATH: process.env.PATH,
          HASTACK_SIDE: t.side,
          HASTACK_ACTIVE_SIDE: t.active,
          HASTACK_ROLE_CNF: roleCnf,
          // No SSM here: an empty intent must not reach AWS.
          HASTACK_SSM_ACTIVE_PARAM: "",
          // The shared helpers boot-role sources (installed by cloud-init on a server).
          HASTACK_LIB: path.join(SERVER_DIR, "lib", "hastack.sh"),
        },
      });
      expect(r.status, r.stderr).to.equal(0);
      expect(fs.readFileSync(roleCnf, "utf8")).to.equal(renderRoleConfig("mariadb", t.want, true));
    });
  }
});

describe("mysql rendering: mariadbd accepts the rendered option files", () => {
  function check(cnf: string): { status: number | null; out: string; err: string } {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "hastack-cnf-"));
    try {
      const file = path.join(dir, "my.cnf");
      fs.writeFileSync(file, cnf);
      const r = spawnSync(
        mariadbd(),
        [`--defaults-file=${file}`, "--user=root", "--help", "--verbose"],
        {
          encoding: "utf8",
          timeout: 30_000,
        },
      );
      return { status: r.status, out: r.stdout, err: r.stderr };
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }
  for (const side of ROLES) {
    for (const state of ["active", "passive"] as const) {
      it(`${side} server config + ${state} role file`, () => {
        const cnf =
          renderServerConfig({ ...settings(), side }) + renderRoleConfig("mariadb", state, true);
        const r = check(cnf);
        expect(r.status, r.err).to.equal(0);
        // mariadbd's own view of the parsed options.
        expect(r.out).to.match(new RegExp(`^server-id\\s+${serverIdFor(side)}$`, "m"));
        expect(r.out).to.match(/^gtid-strict-mode\s+TRUE$/m);
        expect(r.out).to.match(/^rpl-semi-sync-master-wait-point\s+AFTER_SYNC$/m);
        expect(r.out).to.match(
          new RegExp(`^read-only\\s+${state === "active" ? "FALSE" : "TRUE"}$`, "m"),
        );
        expect(r.out).to.match(
          new RegExp(`^init-rpl-role\\s+${state === "active" ? "MASTER" : "SLAVE"}$`, "m"),
        );
      });
    }
  }
  it("the checker is real: an unknown option is refused", () => {
    const r = check(
      renderServerConfig({ ...settings(), side: "primary" }) +
        "rpl_semi_sync_source_enabled = ON\n",
    );
    expect(r.status).to.not.equal(0);
    expect(r.err).to.match(/unknown variable 'rpl_semi_sync_source_enabled/);
  });
});

describe("mysql rendering: designed RPO and RTO", () => {
  const rpo: { semiSync: boolean; bound: number; want: number }[] = [
    { semiSync: true, bound: 30, want: 0 },
    { semiSync: true, bound: 0, want: 0 },
    { semiSync: false, bound: 30, want: 30 },
    { semiSync: false, bound: 120, want: 120 },
  ];
  for (const r of rpo) {
    it(`rpo ${replicationMode(r.semiSync)}, bound ${r.bound}s → ${r.want}s`, () => {
      expect(mysqlRpoSeconds(r.semiSync, r.bound)).to.equal(r.want);
    });
  }
  const rto: { switchover: "dns" | "eip"; pair: number; bound: number; want: number }[] = [
    // dns: the pair assumes no operator; the database needs the reviewed flip anyway.
    { switchover: "dns", pair: 90, bound: 30, want: 90 + 900 + 30 },
    // eip: the pair's estimate already includes the operator.
    { switchover: "eip", pair: 960, bound: 30, want: 960 + 30 },
    { switchover: "dns", pair: 15, bound: 0, want: 915 },
  ];
  for (const r of rto) {
    it(`rto ${r.switchover}, pair ${r.pair}s, drain bound ${r.bound}s → ${r.want}s`, () => {
      expect(
        mysqlRtoSeconds({
          switchover: r.switchover,
          pairRtoSeconds: r.pair,
          maxFailoverLagSeconds: r.bound,
        }),
      ).to.equal(r.want);
    });
  }
});
