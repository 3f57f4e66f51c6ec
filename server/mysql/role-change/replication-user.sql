#: The peer's replication account, created by hastack-mysql-setup. Each server gets its peer's
#: account locally (sql_log_bin = 0): a binlogged CREATE USER would replicate into a GTID
#: history the other side then lacks. REQUIRE SSL: replication and the dump carry every row
#: between the servers; the account is refused without TLS (issue 13). A NEW account requires
#: TLS from the start; an existing one keeps its requirement (ALTER USER without REQUIRE leaves
#: it as it is): setup re-runs when its script changes, and tightening an account made before
#: issue 13 would stop a running replica that still connects without TLS at its next reconnect.
#: README "Upgrading an existing stack" step 3 tightens it by hand once both sides use TLS.
#: @@GRANTS@@ is the engine's least privilege (DIALECTS).
SET SESSION sql_log_bin = 0;
CREATE USER IF NOT EXISTS @@ACCOUNT@@ IDENTIFIED BY '@@PASSWORD@@' REQUIRE SSL;
ALTER USER @@ACCOUNT@@ IDENTIFIED BY '@@PASSWORD@@';
GRANT @@GRANTS@@ ON *.* TO @@ACCOUNT@@;
