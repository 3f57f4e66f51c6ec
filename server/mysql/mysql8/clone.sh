# shellcheck shell=bash
#: MySQL 8 body of clone_from_peer (role-change/toolkit.sh): dump with GTID_PURGED, which
#: needs an empty gtid_executed here; the dump itself switches sql_log_bin off.
local_sql -e "STOP REPLICA; RESET REPLICA ALL" || true
  # GTID_PURGED in the dump needs an empty gtid_executed here.
  if [ -n "$(executed_local)" ]; then
    if [ "$(local_sql -e "SELECT VERSION() >= '8.2'")" = 1 ]; then local_sql -e "RESET BINARY LOGS AND GTIDS"; else local_sql -e "RESET MASTER"; fi
  fi
  # The dump itself switches sql_log_bin off and sets GTID_PURGED to the source's set.
  if ! "$HASTACK_DUMP" --defaults-extra-file="$tmp/peer.cnf" --protocol=tcp --single-transaction \
    --set-gtid-purged=ON --source-data=2 --no-tablespaces --routines --events --triggers \
    --databases $DATABASES | local_sql; then
    die "clone from $HASTACK_PEER_HOST failed (dump or load, see above)"
  fi
  start_replication || die "replication did not start after the clone (status $?)"
  checkpoint_peer
  log "cloned at GTID set '$(executed_local)'; replicating"
