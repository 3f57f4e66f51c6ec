# shellcheck shell=bash
#: Main part of hastack-mysql-failover, shipped after header.sh and toolkit.sh.
#: tmp (the temp directory) is set by toolkit.sh, which precedes this part in the shipped script.
# shellcheck disable=SC2154
# --- failover ---
need_peer
wait_local_up "$HASTACK_CONNECT_SECONDS"
read_status
if ! is_replica; then
  if [ "$(local_read_only)" = 0 ]; then
    log "already the writable primary: nothing to do"
    write_role active
    unfence
    exit 0
  fi
  [ "$HASTACK_FORCE" = 1 ] || refuse "this standby is read-only and not replicating (bootstrap never completed?): promoting it would serve stale or empty data. Set hastack:mysql.forceFailover=true to promote it anyway"
  log "forced: promoting a standby that is not replicating"
  promote OFF
  echo "hastack-mysql-failover: promoted mode=forced lagSeconds=unknown"
  exit 0
fi
sql_errno=$(field @@F_SQL_ERRNO@@)
if [ "$sql_errno" != 0 ]; then
  [ "$HASTACK_FORCE" = 1 ] || refuse "replication stopped with SQL error $sql_errno ($(field @@F_SQL_ERROR@@)): the standby's data is incomplete. Set hastack:mysql.forceFailover=true to promote it anyway"
  log "forced despite SQL error $sql_errno"
fi
mode=unplanned
lag=0
if peer_ro=$(peer_sql -e "SELECT @@GLOBAL.read_only" 2>"$tmp/peer.err"); then
  # Planned: the primary is alive. Fence it, then take every transaction it has.
  mode=planned
  lag=$(field @@F_LAG@@)
  if [ "$lag" = NULL ] || [ -z "$lag" ] || [ "$lag" -gt "$HASTACK_MAX_LAG_SECONDS" ]; then
    [ "$HASTACK_FORCE" = 1 ] || refuse "the standby lags ${lag}s behind the primary (bound: hastack:mysql.maxFailoverLagSeconds = ${HASTACK_MAX_LAG_SECONDS}s); nothing was changed. Wait for it to catch up, or set hastack:mysql.forceFailover=true"
    log "forced despite lag ${lag}s"
  fi
  peer_sql -e "@@MAKE_READ_ONLY@@"
  log "fenced the primary $HASTACK_PEER_HOST (read-only, was read_only=$peer_ro)"
  target=$(executed_peer) || die "lost the primary $HASTACK_PEER_HOST right after fencing it"
  # Applying N seconds of lag can take longer than N when the primary wrote in parallel.
  drain=$((HASTACK_MAX_LAG_SECONDS + HASTACK_CONNECT_SECONDS))
  if ! wait_applied "$target" "$drain"; then
    if [ "$HASTACK_FORCE" != 1 ]; then
      [ "$peer_ro" = 1 ] || peer_sql -e "@@MAKE_WRITABLE@@" || true
      refuse "the standby did not apply the primary's last transactions ($target) within ${drain}s; the primary was made writable again"
    fi
    log "forced: promoting without the primary's last transactions"
  fi
else
  # Unplanned: the primary is gone. Refuse if replication still looks connected (a partition
  # would leave two writable sides), then apply everything received, within the bound.
  # Right after the primary died the IO thread may not have noticed yet: give it the net timeout.
  for _ in $(seq 1 50); do
    [ "$(field @@F_IO@@)" = Yes ] || break
    sleep 0.2
    read_status
  done
  if [ "$(field @@F_IO@@)" = Yes ] && [ "$HASTACK_FORCE" != 1 ]; then
    refuse "replication from $HASTACK_PEER_HOST is still connected but the primary does not answer SQL from here ($(tail -n 1 "$tmp/peer.err")); refusing to create a second writable server"
  fi
  log "primary $HASTACK_PEER_HOST unreachable; applying what this standby received"
  start_ms=$(now_ms)
  rc=0
  wait_drained "$HASTACK_MAX_LAG_SECONDS" || rc=$?
  lag=$(since "$start_ms")
  if [ "$rc" != 0 ]; then
    [ "$HASTACK_FORCE" = 1 ] || refuse "the standby could not apply its received transactions within ${HASTACK_MAX_LAG_SECONDS}s (hastack:mysql.maxFailoverLagSeconds; SQL thread: $(field @@F_SQL@@) $(field @@F_SQL_STATE@@)). Set hastack:mysql.forceFailover=true to promote it anyway"
    log "forced despite an undrained relay log"
  fi
fi
# No replica is attached yet: semi-sync on the source would stall the first commit.
promote OFF
log "promoted ($mode, lag ${lag}s): this server is the writable primary"
echo "hastack-mysql-failover: promoted mode=$mode lagSeconds=$lag"
