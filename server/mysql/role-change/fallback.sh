# shellcheck shell=bash
#: Main part of hastack-mysql-fallback, shipped after header.sh and toolkit.sh. The @@SEMI_*@@
#: lines are the semi-sync commands (":" or nothing when hastack:mysql.semiSync is false).
#: tmp (the temp directory) is set by toolkit.sh, which precedes this part in the shipped script.
# shellcheck disable=SC2154
# --- fallback ---
need_peer
wait_local_up "$HASTACK_CONNECT_SECONDS"
peer_ro=$(peer_sql -e "SELECT @@GLOBAL.read_only" 2>"$tmp/peer.err") ||
  refuse "the active side $HASTACK_PEER_HOST:$HASTACK_PEER_PORT is unreachable ($(tail -n 1 "$tmp/peer.err")): a fallback needs both servers up; nothing was changed"
local_ro=$(local_read_only)
read_status
if [ "$local_ro" = 0 ]; then
  [ "$peer_ro" = 1 ] || refuse "both servers are writable (split brain): compare their data before choosing which one to keep"
  is_replica && local_sql -e "@@STOP_REPLICA@@; @@RESET_REPLICA_ALL@@"
  @@SEMI_SOURCE_ON_LOCAL@@
  write_role active
  unfence
  log "already the writable primary (peer read-only): nothing to do"
  exit 0
fi
# 1. Replicate from the active side.
if ! replicating_from_peer || [ "$(field @@F_IO@@)" != Yes ] || [ "$(field @@F_SQL@@)" != Yes ]; then
  log "step 1: replicating from the active side $HASTACK_PEER_HOST:$HASTACK_PEER_PORT"
  rejoin_peer
fi
@@SEMI_SOURCE_ON_PEER@@
# 2. Catch up while the active side keeps serving (bounded). Under a write load heavier than
# one replica thread applies, the lag never reaches zero: "caught up" is within the failover
# lag bound, and the fence below stops writes while the rest is applied (a bounded pause).
start=$SECONDS
while :; do
  read_status
  [ "$(field @@F_SQL_ERRNO@@)" = 0 ] || die "replication failed while catching up: $(field @@F_SQL_ERROR@@)"
  lag=$(field @@F_LAG@@)
  if [ "$(field @@F_IO@@)" = Yes ] && [ "$(field @@F_SQL@@)" = Yes ] && [ "$lag" != NULL ] &&
    [ "$lag" -le "$HASTACK_MAX_LAG_SECONDS" ]; then
    break
  fi
  if [ $((SECONDS - start)) -ge "$HASTACK_WAIT_SECONDS" ]; then
    refuse "not within ${HASTACK_MAX_LAG_SECONDS}s of the active side after ${HASTACK_WAIT_SECONDS}s (lag $lag s); it keeps serving and this server keeps replicating: re-run later"
  fi
  log "catching up: ${lag}s behind"
  sleep 1
done
log "step 2: within ${lag}s of the active side after $((SECONDS - start))s"
# 3. Fence the active side, then take its last transactions.
peer_sql -e "@@MAKE_READ_ONLY@@"
fenced_ms=$(now_ms)
target=$(executed_peer) || die "lost the active side $HASTACK_PEER_HOST after fencing it"
drain=$((HASTACK_MAX_LAG_SECONDS + HASTACK_CONNECT_SECONDS))
if ! wait_applied "$target" "$drain"; then
  peer_sql -e "@@MAKE_WRITABLE@@" || true
  refuse "did not apply the active side's last transactions ($target) within ${drain}s; it was made writable again"
fi
log "step 3: fenced $HASTACK_PEER_HOST and applied up to $target"
# 4. Swap the roles back: this side becomes the writable source (the peer rejoins next).
promote @@SEMI_SOURCE_AFTER_FALLBACK@@
paused=$(since "$fenced_ms")
log "step 4: this server is the writable primary again (writes paused ${paused}s); run rejoin on $HASTACK_PEER_HOST"
echo "hastack-mysql-fallback: promoted pausedSeconds=$paused"
