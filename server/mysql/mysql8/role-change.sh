# shellcheck shell=bash
#: MySQL 8's own functions of the role-change toolkit (role-change/toolkit.sh ships them in
#: place of @@ENGINE_FUNCTIONS@@): checkpoint_peer, clone_from_peer, rejoin_position.
#: tmp, DATABASES and the helpers they call come from header.sh and toolkit.sh.
# shellcheck disable=SC2154
# checkpoint_peer: MySQL recovers a crashed source by committing its binlogged transactions,
# so a clone never holds what the source's restart would discard: nothing to do.
checkpoint_peer() {
  :
}

# clone_from_peer: GTID-consistent dump of DATABASES from the peer, loaded without binlogging,
# then replication from the dump's position. Streams; no temp copy of the data.
clone_from_peer() {
  log "cloning $DATABASES from $HASTACK_PEER_HOST:$HASTACK_PEER_PORT"
  local_sql -e "STOP REPLICA; RESET REPLICA ALL" || true
  # GTID_PURGED in the dump needs an empty gtid_executed here.
  if [ -n "$(executed_local)" ]; then
    if [ "$(local_sql -e "SELECT VERSION() >= '8.2'")" = 1 ]; then local_sql -e "RESET BINARY LOGS AND GTIDS"; else local_sql -e "RESET MASTER"; fi
  fi
  # The dump itself switches sql_log_bin off and sets GTID_PURGED to the source's set.
  # DATABASES is a list of [A-Za-z0-9_] names: split into one argument each on purpose.
  # shellcheck disable=SC2086
  if ! "$HASTACK_DUMP" --defaults-extra-file="$tmp/peer.cnf" --protocol=tcp --single-transaction \
    --set-gtid-purged=ON --source-data=2 --no-tablespaces --routines --events --triggers \
    --databases $DATABASES | local_sql; then
    die "clone from $HASTACK_PEER_HOST failed (dump or load, see above)"
  fi
  start_replication || die "replication did not start after the clone (status $?)"
  checkpoint_peer
  log "cloned at GTID set '$(executed_local)'; replicating"
}

# rejoin_position: stop replicating; refuse when this server holds transactions the active
# side never received, or with HASTACK_REBUILD=1 re-clone it from the peer (recloned=1: the
# clone already replicates). AUTO_POSITION then resumes from the rest.
rejoin_position() {
  local_sql -e "STOP REPLICA"
  local mine theirs errant
  mine=$(executed_local)
  theirs=$(executed_peer)
  errant=$(local_sql -e "SELECT GTID_SUBTRACT('$mine', '$theirs')")
  if [ -n "$errant" ]; then
    if [ "$HASTACK_REBUILD" = 1 ]; then
      log "errant transactions $errant; HASTACK_REBUILD=1: re-cloning from the peer"
      clone_from_peer
      # Read by rejoin_peer (toolkit.sh): the clone already replicates.
      # shellcheck disable=SC2034
      recloned=1
      return 0
    fi
    refuse "this server has transactions the active side never received ($errant); re-clone it with HASTACK_REBUILD=1 after saving what you need from it"
  fi
}
