#!/bin/bash
# hastack-mysql-@@NAME@@ (@@ENGINE@@): rendered by components/mysql-scripts.ts; do not edit.
# @@PURPOSE@@
# Parameters come from the environment (HASTACK_*): the same text runs on the servers (remote
# commands) and in `npm run rehearse -- mysql` against loopback servers.
# Exit status: 0 done (or nothing to do), 3 refused by a safety check, anything else an error.
set -euo pipefail
umask 077
SCRIPT=@@NAME@@
: "${HASTACK_CLIENT:=@@CLIENT@@}"
: "${HASTACK_DUMP:=@@DUMP@@}"
: "${HASTACK_SOCKET:=/run/mysqld/mysqld.sock}"
: "${HASTACK_LOCAL_USER:=root}"
: "${HASTACK_PEER_HOST:=}"
: "${HASTACK_PEER_PORT:=3306}"
: "${HASTACK_ROLE_CNF=@@CONF_DIR@@/90-hastack-role.cnf}"
: "${HASTACK_MAX_LAG_SECONDS:=@@MAX_LAG_SECONDS@@}"
: "${HASTACK_FORCE:=@@FORCE@@}"
: "${HASTACK_WAIT_SECONDS:=600}"
: "${HASTACK_CONNECT_SECONDS:=60}"
: "${HASTACK_REBUILD:=0}"
: "${HASTACK_UNFENCE=@@UNFENCE_PATH@@}"
# Without the password in the environment (a hand run), it is read from SSM with the instance role.
: "${HASTACK_SSM_PASSWORD_PARAM:=@@SSM_PASSWORD_PARAM@@}"

log() { printf '%s hastack-mysql-%s: %s\n' "$(date -u +%H:%M:%S)" "$SCRIPT" "$*" >&2; }

aws_region() {
  if [ -n "${HASTACK_AWS_REGION:-}" ]; then echo "$HASTACK_AWS_REGION"; return; fi
  local token
  token=$(curl -sf --max-time 3 -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 60' http://169.254.169.254/latest/api/token) || return 1
  curl -sf --max-time 3 -H "X-aws-ec2-metadata-token: $token" http://169.254.169.254/latest/meta-data/placement/region
}

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

