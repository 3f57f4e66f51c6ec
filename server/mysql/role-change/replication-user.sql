#: The peer's replication account, created by hastack-mysql-setup. Each server gets its peer's
#: account locally (sql_log_bin = 0): a binlogged CREATE USER would replicate into a GTID
#: history the other side then lacks. REQUIRE SSL: replication and the dump carry every row
#: between the servers; the account is refused without TLS (issue 13). @@GRANTS@@ is the engine's least privilege (DIALECTS).
SET SESSION sql_log_bin = 0;
CREATE USER IF NOT EXISTS @@ACCOUNT@@ IDENTIFIED BY '@@PASSWORD@@';
ALTER USER @@ACCOUNT@@ IDENTIFIED BY '@@PASSWORD@@' REQUIRE SSL;
GRANT @@GRANTS@@ ON *.* TO @@ACCOUNT@@;
