# shellcheck shell=bash
#: One application account in hastack-mysql-setup: created on this server, not binlogged (each
#: server gets its own). The password arrives in the environment variable @@PASSWORD_ENV@@; the
#: clients' network (the VPC's range as ADDRESS/NETMASK, issue 13) in HASTACK_CLIENT_HOST. An
#: account of an earlier version open to any host ('%') is dropped.
pw_var=@@PASSWORD_ENV@@
pw=${!pw_var:-}
case "$pw" in "" | *[!A-Za-z0-9]*) die "@@PASSWORD_ENV@@ (password of @@USER@@) must be set and alphanumeric" ;; esac
case "$HASTACK_CLIENT_HOST" in
  "" | *[!0-9./]*) die "HASTACK_CLIENT_HOST must be the clients' network as ADDRESS/NETMASK (got '$HASTACK_CLIENT_HOST')" ;;
esac
local_sql <<SQL
SET SESSION sql_log_bin = 0;
DROP USER IF EXISTS '@@USER@@'@'%';
CREATE USER IF NOT EXISTS @@ACCOUNT@@ IDENTIFIED BY '$pw';
ALTER USER @@ACCOUNT@@ IDENTIFIED BY '$pw';
GRANT @@PRIVILEGES@@ ON @@ON@@ TO @@ACCOUNT@@;
SQL
log "account @@USER@@ on @@DATABASE@@ ready (@@ENGINE@@)"
