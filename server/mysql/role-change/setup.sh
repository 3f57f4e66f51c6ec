# shellcheck shell=bash
#: Main part of hastack-mysql-setup, shipped after header.sh and toolkit.sh.
#: @@ACCOUNTS@@ is one role-change/account.sh per application account (none: the line goes).
# --- setup ---
need_peer
wait_local_up "$HASTACK_WAIT_SECONDS"
# Unquoted here-document: the shell expands the peer address and password into the SQL sent
# on the client's stdin (never its argv).
local_sql <<SQL
@@REPLICATION_USER_SQL@@
SQL
log "replication account $REPL_USER@$HASTACK_PEER_HOST ready"
@@ACCOUNTS@@
if [ "$(local_read_only)" = 0 ]; then
  for db in $DATABASES; do
    local_sql -e "CREATE DATABASE IF NOT EXISTS \`$db\` CHARACTER SET utf8mb4"
  done
  log "databases present: $DATABASES"
fi
