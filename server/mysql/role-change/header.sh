#!/bin/bash
# hastack-mysql-@@NAME@@ (@@ENGINE@@): rendered by components/mysql-scripts.ts; do not edit.
# @@PURPOSE@@
# Parameters come from the environment (HASTACK_*): the same text runs on the servers (remote
# commands) and in `npm run rehearse -- mysql` against loopback servers.
# Exit status: 0 done (or nothing to do), 3 refused by a safety check, anything else an error.
set -euo pipefail
umask 077
SCRIPT=@@NAME@@
: "${HASTACK_ROLE_CNF=@@CONF_DIR@@/90-hastack-role.cnf}"
# Read by hastack_log (server/lib/hastack.sh).
# shellcheck disable=SC2034
HASTACK_LOG_TAG=hastack-mysql-$SCRIPT

# hastack_log and the other hastack_* helpers: server/lib/hastack.sh, carried inline after
# this header or sourced from where cloud-init installed it (boot-role).
log() { hastack_log "$@"; }

write_role() {
  [ -n "$HASTACK_ROLE_CNF" ] || return 0
  if [ "$1" = active ]; then
    cat >"$HASTACK_ROLE_CNF.tmp" <<'ACTIVE'
@@ROLE_ACTIVE@@
ACTIVE
  else
    cat >"$HASTACK_ROLE_CNF.tmp" <<'PASSIVE'
@@ROLE_PASSIVE@@
PASSIVE
  fi
  chmod 0644 "$HASTACK_ROLE_CNF.tmp"
  mv -f "$HASTACK_ROLE_CNF.tmp" "$HASTACK_ROLE_CNF"
  log "role file $HASTACK_ROLE_CNF: $1"
}

