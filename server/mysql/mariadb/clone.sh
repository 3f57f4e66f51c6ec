# shellcheck shell=bash
#: MariaDB body of clone_from_peer (role-change/toolkit.sh): dump with --gtid, load unbinlogged,
#: replicate from the dump's gtid_slave_pos. A clone replaces this server's history: its own
#: binlog is dropped (it serves no replica) so gtid_slave_pos can be set whatever it held.
local_sql -e "STOP SLAVE; RESET SLAVE ALL; RESET MASTER"
  # Loaded with sql_log_bin=0: the rows arrive under the peer's GTIDs (gtid_slave_pos below),
  # never as local transactions the peer lacks.
  if ! "$HASTACK_DUMP" --defaults-extra-file="$tmp/peer.cnf" --protocol=tcp --single-transaction \
    --gtid --master-data=2 --routines --events --triggers --databases $DATABASES |
    awk -v f="$tmp/gtid" '/^-- SET GLOBAL gtid_slave_pos=/ { print > f } { print }' |
    { echo "SET SESSION sql_log_bin = 0;"; cat; } | local_sql; then
    die "clone from $HASTACK_PEER_HOST failed (dump or load, see above)"
  fi
  local pos
  [ -f "$tmp/gtid" ] || die "the dump carried no GTID position (is binary logging on at the peer?)"
  pos=$(sed -n "s/^-- SET GLOBAL gtid_slave_pos='\(.*\)';$/\1/p" "$tmp/gtid" | head -n 1)
  # The binlog starts from the clone's position, so this server can serve the history after
  # it as a source later (a rejoining old primary asks for exactly that position).
  local_sql -e "RESET MASTER; SET GLOBAL gtid_binlog_state = '$pos'; SET GLOBAL gtid_slave_pos = '$pos'"
  start_replication || die "replication did not start after the clone (status $?)"
  checkpoint_peer
  log "cloned at GTID position '$pos'; replicating"
