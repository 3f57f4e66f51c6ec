# shellcheck shell=bash
#: MariaDB's own functions of the role-change toolkit (role-change/toolkit.sh ships them in
#: place of @@ENGINE_FUNCTIONS@@): checkpoint_peer, clone_from_peer, rejoin_position.
#: tmp, DATABASES and the helpers they call come from header.sh and toolkit.sh.
# shellcheck disable=SC2154
# checkpoint_peer: make the source's commits up to now durable in its engine. MariaDB commits
# to InnoDB lazily after the binlog; a source crashing within a second of the clone would, on
# its restart as a replica (init_rpl_role=SLAVE), truncate transactions the clone holds but
# this server's binlog does not, and could not rejoin. A binlog checkpoint naming the current
# file proves every earlier commit durable.
checkpoint_peer() {
  peer_sql -e "FLUSH LOCAL BINARY LOGS; FLUSH LOCAL ENGINE LOGS" || { log "warning: could not checkpoint the source"; return 0; }
  local file
  file=$(peer_sql -e "SHOW MASTER STATUS" | cut -f1)
  for _ in $(seq 1 50); do
    [ "$(peer_sql -e "SHOW BINLOG EVENTS IN '$file'" | awk -F'\t' '$3 == "Binlog_checkpoint" { c = $6 } END { print c }')" = "$file" ] && return 0
    sleep 0.2
  done
  log "warning: the source's binlog checkpoint did not reach $file within 10s"
}

# clone_from_peer: GTID-consistent dump of DATABASES from the peer, loaded without binlogging,
# then replication from the dump's position. Streams; no temp copy of the data.
clone_from_peer() {
  log "cloning $DATABASES from $HASTACK_PEER_HOST:$HASTACK_PEER_PORT"
  # A clone replaces this server's history: drop its own binlog (it serves no replica) so
  # gtid_slave_pos can be set to the dump's position whatever it held before.
  local_sql -e "STOP SLAVE; RESET SLAVE ALL; RESET MASTER"
  # Loaded with sql_log_bin=0: the rows arrive under the peer's GTIDs (gtid_slave_pos below),
  # never as local transactions the peer lacks.
  # DATABASES is a list of [A-Za-z0-9_] names: split into one argument each on purpose.
  # shellcheck disable=SC2086
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
}

# rejoin_position: stop replicating and resume from everything this server already has (its
# own writes included); a diverged history shows when the source refuses that position.
rejoin_position() {
  local_sql -e "STOP SLAVE; SET GLOBAL gtid_slave_pos = @@GLOBAL.gtid_binlog_pos"
}
