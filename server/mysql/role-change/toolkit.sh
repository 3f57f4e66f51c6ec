# shellcheck shell=bash
#: The role-change toolkit: local/peer SQL, replication status, waits, promotion and cloning.
#: Shipped after header.sh (SCRIPT, HASTACK_ROLE_CNF, log, write_role) and server/lib/hastack.sh
#: in every role-change script but boot-role, which needs none of it (it lands in user-data).
#: @@NAME@@ values come from DIALECTS in components/mysql-scripts.ts; @@ENGINE_FUNCTIONS@@ is
#: the engine's own server/mysql/<engine>/role-change.sh.
: "${HASTACK_CLIENT:=@@CLIENT@@}"
: "${HASTACK_DUMP:=@@DUMP@@}"
: "${HASTACK_SOCKET:=/run/mysqld/mysqld.sock}"
: "${HASTACK_LOCAL_USER:=root}"
: "${HASTACK_PEER_HOST:=}"
: "${HASTACK_PEER_PORT:=3306}"
: "${HASTACK_CLIENT_HOST:=}"
# The pair's TLS files (ca.pem, server.pem, server-key.pem): replication and the peer's dump
# run over TLS, verified against the pair's CA (issue 13).
: "${HASTACK_TLS_DIR:=@@TLS_DIR@@}"
: "${HASTACK_MAX_LAG_SECONDS:=@@MAX_LAG_SECONDS@@}"
: "${HASTACK_FORCE:=@@FORCE@@}"
: "${HASTACK_WAIT_SECONDS:=600}"
: "${HASTACK_CONNECT_SECONDS:=60}"
: "${HASTACK_REBUILD:=0}"
: "${HASTACK_UNFENCE=@@UNFENCE_PATH@@}"
# Without the password in the environment (a hand run), it is read from SSM with the instance role.
: "${HASTACK_SSM_PASSWORD_PARAM:=@@SSM_PASSWORD_PARAM@@}"
REPL_USER=@@REPL_USER@@
# Read by the engine's functions and each script's own part, shipped after this file.
# shellcheck disable=SC2034
DATABASES="@@DATABASES@@"

now_ms() { date +%s%3N; }
# Seconds since a now_ms stamp, one decimal.
since() { awk -v a="$1" -v b="$(now_ms)" 'BEGIN { printf "%.1f", (b - a) / 1000 }'; }
die() { log "ERROR: $*"; exit 1; }
refuse() { log "REFUSED: $*"; exit 3; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/hastack-mysql.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# Local server, authenticated by the OS account (unix_socket / auth_socket).
local_sql() { "$HASTACK_CLIENT" --socket="$HASTACK_SOCKET" --user="$HASTACK_LOCAL_USER" --batch --skip-column-names "$@"; }
# The peer, over TCP with the replication account; the password sits in a 0600 option file,
# never on a command line.
peer_sql() { "$HASTACK_CLIENT" --defaults-extra-file="$tmp/peer.cnf" --protocol=tcp --batch --skip-column-names "$@"; }

need_password() {
  if [ -z "${HASTACK_REPL_PASSWORD:-}" ] && [ -n "${HASTACK_SSM_PASSWORD_PARAM:-}" ] && command -v aws >/dev/null 2>&1; then
    HASTACK_REPL_PASSWORD=$(hastack_ssm_get "$HASTACK_SSM_PASSWORD_PARAM") || true
  fi
  [ -n "${HASTACK_REPL_PASSWORD:-}" ] || die "HASTACK_REPL_PASSWORD is not set (remote commands pass it through sshd AcceptEnv HASTACK_*; by hand, HASTACK_SSM_PASSWORD_PARAM names its SSM parameter)"
  case "$HASTACK_REPL_PASSWORD" in *[!A-Za-z0-9]*) die "HASTACK_REPL_PASSWORD must be alphanumeric (RandomPassword special=false)" ;; esac
}

need_peer() {
  case "$HASTACK_PEER_HOST" in
    "" | *[!A-Za-z0-9.:-]*) die "HASTACK_PEER_HOST must be the peer's address (got '$HASTACK_PEER_HOST')" ;;
  esac
  case "$HASTACK_PEER_PORT" in "" | *[!0-9]*) die "HASTACK_PEER_PORT must be a port number (got '$HASTACK_PEER_PORT')" ;; esac
  need_password
  # connect-timeout in [mysql] only: the dump tools reject it.
  # ssl-ca: TLS verified against the pair's CA (the replication account requires TLS).
  printf '[client]\nuser=%s\npassword=%s\nhost=%s\nport=%s\nssl-ca=%s\n[mysql]\nconnect-timeout=5\n' \
    "$REPL_USER" "$HASTACK_REPL_PASSWORD" "$HASTACK_PEER_HOST" "$HASTACK_PEER_PORT" "$HASTACK_TLS_DIR/ca.pem" >"$tmp/peer.cnf"
}

wait_local_up() {
  local limit=$1 start=$SECONDS
  until local_sql -e "SELECT 1" >/dev/null 2>"$tmp/err"; do
    if [ $((SECONDS - start)) -ge "$limit" ]; then
      die "local server (socket $HASTACK_SOCKET) did not answer within ${limit}s: $(tail -n 1 "$tmp/err")"
    fi
    sleep 1
  done
}

# Replication status of the local server, one "Field: value" per line.
read_status() {
  "$HASTACK_CLIENT" --socket="$HASTACK_SOCKET" --user="$HASTACK_LOCAL_USER" --batch --vertical \
    -e "@@SHOW_REPLICA_STATUS@@" >"$tmp/status"
}
field() { awk -v k="$1" '{ n = index($0, ": "); f = substr($0, 1, n - 1); gsub(/^ +/, "", f); if (n > 0 && f == k) { print substr($0, n + 2); exit } }' "$tmp/status"; }
is_replica() { [ -n "$(field @@F_IO@@)" ]; }
replicating_from_peer() { [ "$(field @@F_SOURCE_HOST@@)" = "$HASTACK_PEER_HOST" ] && [ "$(field @@F_SOURCE_PORT@@)" = "$HASTACK_PEER_PORT" ]; }
local_read_only() { local_sql -e "SELECT @@GLOBAL.read_only"; }
executed_local() { local_sql -e "SELECT @@EXECUTED_SQL@@"; }
executed_peer() { peer_sql -e "SELECT @@EXECUTED_SQL@@"; }

# wait_applied GTIDS SECONDS: 0 once the local server has applied GTIDS.
wait_applied() {
  local gtids=$1 secs=$2
  [ -n "$gtids" ] || return 0
  [ "$(local_sql -e "SELECT IF(@@WAIT_FOR_GTIDS@@('$gtids', $secs) = 0, 'ok', 'timeout')")" = ok ]
}

# wait_drained SECONDS: 0 once the replica applied everything it received (its source is gone).
wait_drained() {
  local limit=$1 start=$SECONDS
  while :; do
    read_status
    [ "$(field @@F_SQL@@)" = Yes ] || return 2
    case "$(field @@F_SQL_STATE@@)" in *"read all relay log"*) return 0 ;; esac
    [ $((SECONDS - start)) -lt "$limit" ] || return 1
    sleep 0.2
  done
}

unfence() {
  if [ -n "$HASTACK_UNFENCE" ] && [ -x "$HASTACK_UNFENCE" ]; then
    "$HASTACK_UNFENCE" >&2 || log "warning: $HASTACK_UNFENCE failed; the health check may keep this side out of DNS"
  fi
}

# promote SEMI_SOURCE(ON|OFF): stop replicating and become the writable source.
promote() {
  local_sql -e "@@STOP_REPLICA@@; @@RESET_REPLICA_ALL@@; @@PROMOTE_SEMI_SQL@@ @@MAKE_WRITABLE@@;"
  write_role active
  unfence
}

# start_replication: point the local server at the peer and wait until connected (bounded).
start_replication() {
  {
    echo "@@STOP_REPLICA@@;"
    @@SEMI_REPLICA_SIDE@@
    echo "@@CHANGE_SOURCE_SQL@@"
    echo "@@START_REPLICA@@;"
  } | local_sql
  local start=$SECONDS
  while :; do
    read_status
    [ "$(field @@F_IO@@)" = Yes ] && [ "$(field @@F_SQL@@)" = Yes ] && return 0
    local errno
    errno=$(field @@F_IO_ERRNO@@)
    if [ "$errno" = 1236 ]; then
      return 4 # the source cannot serve our history: diverged (or purged binlogs)
    fi
    if [ $((SECONDS - start)) -ge "$HASTACK_CONNECT_SECONDS" ]; then
      die "replication from $HASTACK_PEER_HOST:$HASTACK_PEER_PORT not running after ${HASTACK_CONNECT_SECONDS}s: IO $(field @@F_IO@@) error $errno $(field @@F_IO_ERROR@@); SQL $(field @@F_SQL@@) $(field @@F_SQL_ERROR@@)"
    fi
    sleep 0.5
  done
}

@@ENGINE_FUNCTIONS@@

# rejoin_peer: make this server (holding its own history) a replica of the peer.
rejoin_peer() {
  local_sql -e "@@MAKE_READ_ONLY@@"
  recloned=0
  rejoin_position
  [ "$recloned" = 0 ] || return 0
  local rc=0
  start_replication || rc=$?
  if [ "$rc" = 4 ]; then
    if [ "$HASTACK_REBUILD" = 1 ]; then
      log "history diverged from the peer; HASTACK_REBUILD=1: re-cloning from the peer"
      clone_from_peer
    else
      refuse "this server's history diverged from $HASTACK_PEER_HOST (its source refused our GTID position: $(field @@F_IO_ERROR@@)). It holds transactions the active side never received; re-clone it with HASTACK_REBUILD=1 after saving what you need from it"
    fi
  elif [ "$rc" != 0 ]; then
    exit "$rc"
  fi
}
