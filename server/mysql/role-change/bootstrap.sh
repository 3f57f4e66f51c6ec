# shellcheck shell=bash
#: Main part of hastack-mysql-bootstrap, shipped after header.sh and toolkit.sh.
# --- bootstrap ---
need_peer
wait_local_up "$HASTACK_WAIT_SECONDS"
read_status
if is_replica && replicating_from_peer; then
  if [ "$(field @@F_IO@@)" != Yes ] || [ "$(field @@F_SQL@@)" != Yes ]; then
    local_sql -e "@@START_REPLICA@@"
  fi
  log "already replicating from $HASTACK_PEER_HOST:$HASTACK_PEER_PORT: nothing to do"
  exit 0
fi
[ "$(local_read_only)" = 1 ] || refuse "this server is writable: bootstrap only turns the passive (read-only) side into a replica"
[ "$(peer_sql -e "SELECT @@GLOBAL.read_only")" = 0 ] || refuse "the peer $HASTACK_PEER_HOST is read-only: bootstrap clones from the writable side"
for db in $DATABASES; do
  n=$(local_sql -e "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = '$db'")
  if [ "$n" != 0 ] && [ "$HASTACK_REBUILD" != 1 ]; then
    refuse "database $db already has $n tables here; set HASTACK_REBUILD=1 to replace them with the peer's"
  fi
done
clone_from_peer
write_role passive
