// Issue 13 on real MariaDB: the pair's accounts are limited to the clients' network (never
// '%'), and replication runs over TLS with a replication account that is refused without it.
// Two loopback servers (lib/rehearse/mysql.ts) run the very scripts the stack ships; client
// source addresses 127.0.0.x stand for hosts inside (127.0.0.0/29) and outside the range.
import { expect } from "chai";
import {
  LOOPBACK_CLIENT_HOST,
  LoopbackPair,
  defaultMysqlSettings,
} from "../../../lib/rehearse/mysql";
import { REPLICATION_USER, mysqlClientHost } from "../../../components/mysql-scripts";

describe("mysql security on real MariaDB (issue 13)", function () {
  this.timeout(300_000);
  let pair: LoopbackPair;
  const settings = defaultMysqlSettings({
    databases: ["app"],
    accounts: [{ user: "hastack_app", database: "app", privileges: "SELECT, INSERT" }],
  });

  before(async () => {
    pair = await LoopbackPair.create({ settings });
    await Promise.all([pair.start("primary", "primary"), pair.start("standby", "primary")]);
    // An account of an earlier version, open to any host: setup must remove it.
    await pair.sql("primary", "CREATE USER 'hastack_app'@'%' IDENTIFIED BY 'old'");
    await pair.runScriptChecked("setup", "primary");
    await pair.runScriptChecked("setup", "standby");
    await pair.runScriptChecked("bootstrap", "standby");
  });
  after(async () => {
    await pair?.destroy();
  });

  describe("accounts are limited to the clients' network", () => {
    it("no account of the pair allows any host ('%')", async () => {
      const hosts = await pair.sql(
        "primary",
        "SELECT CONCAT(user, '@', host) FROM mysql.user WHERE user IN ('hastack_app', 'hastack_repl')",
      );
      expect(hosts.trim().split("\n").sort()).to.deep.equal([
        `hastack_app@${LOOPBACK_CLIENT_HOST}`,
        `${REPLICATION_USER}@127.0.0.1`,
      ]);
    });
    it("an application client inside the range logs in", async () => {
      const err = await pair.tryLogin("primary", {
        user: "hastack_app",
        password: pair.accountPasswords[0],
        fromAddress: "127.0.0.2",
        tls: true,
      });
      expect(err).to.equal("");
    });
    it("the same client from outside the range is refused, with the right password", async () => {
      const err = await pair.tryLogin("primary", {
        user: "hastack_app",
        password: pair.accountPasswords[0],
        fromAddress: "127.0.0.9",
        tls: true,
      });
      expect(err).to.match(/not allowed to connect|Access denied/);
    });
  });

  describe("replication runs over TLS", () => {
    it("the replica's channel uses TLS (Master_SSL_Allowed=Yes) and replicates", async () => {
      const st = await pair.replicaStatus("standby");
      expect(st.Master_SSL_Allowed).to.equal("Yes");
      expect(st.Slave_IO_Running).to.equal("Yes");
      expect(st.Slave_SQL_Running).to.equal("Yes");
    });
    it("the replication account requires TLS (REQUIRE SSL)", async () => {
      const grants = await pair.sql(
        "primary",
        `SHOW CREATE USER '${REPLICATION_USER}'@'127.0.0.1'`,
      );
      expect(grants).to.match(/REQUIRE SSL/);
    });
    it("the replication account is refused without TLS and accepted with it", async () => {
      const login = (tls: boolean): Promise<string> =>
        pair.tryLogin("primary", { user: REPLICATION_USER, password: pair.password, tls });
      expect(await login(false)).to.match(/Access denied/);
      expect(await login(true)).to.equal("");
    });
    it("the replica verifies the source against the pair's CA", async () => {
      const st = await pair.replicaStatus("standby");
      expect(st.Master_SSL_CA_File).to.equal(`${pair.tlsDir}/ca.pem`);
    });
  });

  // Setup re-runs on an existing stack when its script changes (`pulumi up` after an upgrade).
  // An account made before issue 13 has no TLS requirement and its replica connects without
  // TLS: tightening it there would stop replication at the next reconnect.
  describe("setup re-run on a stack made before TLS never tightens a running account", () => {
    const account = `'${REPLICATION_USER}'@'127.0.0.1'`;
    it("keeps an existing account's requirement: the old replica still logs in without TLS", async () => {
      await pair.sql("primary", `SET SESSION sql_log_bin = 0; ALTER USER ${account} REQUIRE NONE`);
      await pair.runScriptChecked("setup", "primary");
      const created = await pair.sql("primary", `SHOW CREATE USER ${account}`);
      expect(created).to.not.match(/REQUIRE SSL/);
      const login = (tls: boolean): Promise<string> =>
        pair.tryLogin("primary", { user: REPLICATION_USER, password: pair.password, tls });
      expect(await login(false), "the old replica's way in still works").to.equal("");
      // README step 3, by hand once both sides use TLS.
      await pair.sql("primary", `SET SESSION sql_log_bin = 0; ALTER USER ${account} REQUIRE SSL`);
      expect(await login(false)).to.match(/Access denied/);
    });
  });
});

describe("mysqlClientHost: the clients' network as MySQL sees hosts", () => {
  const table: { cidr: string; want?: string; error?: RegExp }[] = [
    { cidr: "10.20.0.0/16", want: "10.20.0.0/255.255.0.0" },
    { cidr: "172.31.0.0/20", want: "172.31.0.0/255.255.240.0" },
    { cidr: "10.0.0.5/32", want: "10.0.0.5/255.255.255.255" },
    { cidr: "10.20.1.0/16", error: /host bits set/ },
    { cidr: "0.0.0.0/0", error: /from \/8 to \/32/ },
    { cidr: "10.20.0.0", error: /IPv4 CIDR/ },
    { cidr: "300.1.1.0/24", error: /IPv4 CIDR/ },
  ];
  for (const t of table) {
    it(`${t.cidr} → ${t.want ?? "refused"}`, () => {
      if (t.want) {
        expect(mysqlClientHost(t.cidr)).to.equal(t.want);
      } else {
        expect(() => mysqlClientHost(t.cidr)).to.throw(t.error!);
      }
    });
  }
});
