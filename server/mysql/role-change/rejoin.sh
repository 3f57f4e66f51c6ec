# shellcheck shell=bash
#: Main part of hastack-mysql-rejoin, shipped after header.sh and toolkit.sh.
#: tmp (the temp directory) is set by toolkit.sh, which precedes this part in the shipped script.
# shellcheck disable=SC2154
# --- rejoin ---
need_peer
wait_local_up "$HASTACK_CONNECT_SECONDS"
read_status
if is_replica && replicating_from_peer && [ "$(field @@F_IO@@)" = Yes ] && [ "$(field @@F_SQL@@)" = Yes ]; then
  @@SEMI_REPLICA_ON@@
  write_role passive
  log "already replicating from $HASTACK_PEER_HOST:$HASTACK_PEER_PORT: nothing to do"
  exit 0
fi
peer_ro=$(peer_sql -e "SELECT @@GLOBAL.read_only" 2>"$tmp/peer.err") ||
  die "the active side $HASTACK_PEER_HOST:$HASTACK_PEER_PORT is unreachable: $(tail -n 1 "$tmp/peer.err")"
[ "$peer_ro" = 0 ] || refuse "the peer $HASTACK_PEER_HOST is read-only, so it is not the active side yet: run the fallback (or failover) there first"
rejoin_peer
write_role passive
log "replicating from the active side $HASTACK_PEER_HOST:$HASTACK_PEER_PORT"
