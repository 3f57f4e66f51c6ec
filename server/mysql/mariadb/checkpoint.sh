# shellcheck shell=bash
#: MariaDB body of checkpoint_peer (role-change/toolkit.sh explains why).
peer_sql -e "FLUSH LOCAL BINARY LOGS; FLUSH LOCAL ENGINE LOGS" || { log "warning: could not checkpoint the source"; return 0; }
  local file i
  file=$(peer_sql -e "SHOW MASTER STATUS" | cut -f1)
  for i in $(seq 1 50); do
    [ "$(peer_sql -e "SHOW BINLOG EVENTS IN '$file'" | awk -F'	' '$3 == "Binlog_checkpoint" { c = $6 } END { print c }')" = "$file" ] && return 0
    sleep 0.2
  done
  log "warning: the source's binlog checkpoint did not reach $file within 10s"
