#: The peer's replication account, created by hastack-mysql-setup. Each server gets its peer's
#: account locally (sql_log_bin = 0): a binlogged CREATE USER would replicate into a GTID
#: history the other side then lacks. @@GRANTS@@ is the engine's least privilege (DIALECTS).
SET SESSION sql_log_bin = 0;
CREATE USER IF NOT EXISTS @@ACCOUNT@@ IDENTIFIED BY '@@PASSWORD@@';
ALTER USER @@ACCOUNT@@ IDENTIFIED BY '@@PASSWORD@@';
GRANT @@GRANTS@@ ON *.* TO @@ACCOUNT@@;
