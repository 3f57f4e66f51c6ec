# shellcheck shell=bash
#: MySQL 8 part of rejoin_peer (role-change/toolkit.sh): refuse (or re-clone) when this server
#: holds transactions the peer lacks; AUTO_POSITION resumes from the rest.
local_sql -e "STOP REPLICA"
  local mine theirs errant
  mine=$(executed_local)
  theirs=$(executed_peer)
  errant=$(local_sql -e "SELECT GTID_SUBTRACT('$mine', '$theirs')")
  if [ -n "$errant" ]; then
    if [ "$HASTACK_REBUILD" = 1 ]; then
      log "errant transactions $errant; HASTACK_REBUILD=1: re-cloning from the peer"
      clone_from_peer
      return 0
    fi
    refuse "this server has transactions the active side never received ($errant); re-clone it with HASTACK_REBUILD=1 after saving what you need from it"
  fi
