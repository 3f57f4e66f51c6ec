#!/bin/bash
# hastack-pbx-sync sync|final|check ENV: push the PBX's replicated set to the other PBX.
# server/pbx/hastack-pbx-sync.sh, env rendered by components/pbx.ts (renderPbxSyncEnv) from the
# set's table (components/pbx-replicated-set.ts); test/components/sync.test.ts runs this same
# file against real rsync and sqlite3.
#  - SYNC_PATHS: directories pushed to the same path on the peer (rsync -R, live);
#  - SQLITE_FILES (globs) and DUMP_DATABASES: consistent copies (SQLite online backup, a
#    --single-transaction dump) into COPIES_DIR/local, pushed to COPIES_DIR/peer on the peer,
#    where hastack-pbx-activate installs them while Asterisk is stopped. Never a file copy of a
#    live database.
set -euo pipefail
# Shared helpers (hastack_rsync); tests and rehearsals point HASTACK_LIB at server/lib/hastack.sh.
# shellcheck source=../lib/hastack.sh
. "${HASTACK_LIB:-/usr/local/lib/hastack/hastack.sh}"
cmd=${1:-}
env_file=${2:-}
log() { echo "hastack-pbx-sync: $*" >&2; }
if [ -z "$cmd" ] || [ ! -r "$env_file" ]; then
  log "usage: hastack-pbx-sync sync|final|check ENV"
  exit 2
fi
# The env file is rendered by components/ and its path is an argument: nothing to follow here.
# shellcheck source=/dev/null
. "$env_file"
: "${PEER:?}" "${PEER_SIDE:?}" "${SYNC_ROOT:?}" "${PEER_ROOT:?}" "${SYNC_PATHS:?}" "${RSYNC_RSH:?}" "${COPIES_DIR:?}"

active() {
  case "${ACTIVE_CHECK:-dns}" in
    always) return 0 ;;
    never) return 1 ;;
    dns) /usr/local/sbin/hastack-is-active "$SERVICE_NAME" ;;
    *) log "ACTIVE_CHECK must be dns, always or never"; exit 2 ;;
  esac
}

# Consistent copies of the SQLite databases and local dumps into COPIES_DIR/local, built aside
# and swapped in whole: the peer never receives a mix of two runs, and a database that is gone
# here is gone from the copies too.
copies() {
  [ -n "${SQLITE_FILES:-}${DUMP_DATABASES:-}" ] || return 0
  local dir=$SYNC_ROOT/$COPIES_DIR new f db out
  new=$dir/local.new
  rm -rf "$new" "$dir/local.old"
  mkdir -p "$new"
  shopt -s nullglob
  # Globs relative to SYNC_ROOT (e.g. var/www/db/*.db); an absent database is simply not there.
  # shellcheck disable=SC2086
  for f in $(cd "$SYNC_ROOT" && printf '%s\n' $SQLITE_FILES); do
    [ -f "$SYNC_ROOT/$f" ] || continue
    "${SQLITE_COPY:-/usr/local/sbin/hastack-pbx-sqlite-copy}" "$SYNC_ROOT/$f" "$new/$f" ||
      { log "consistent copy of /$f failed"; return 1; }
  done
  shopt -u nullglob
  for db in ${DUMP_DATABASES:-}; do
    mkdir -p "$new/mysql"
    out=$new/mysql/$db.sql.gz
    # One consistent InnoDB snapshot without blocking Asterisk or the web UI.
    # shellcheck disable=SC2086
    "${DUMP_CMD:-mariadb-dump}" ${DUMP_OPTS:-} --single-transaction --routines --events --triggers \
      --hex-blob --databases "$db" | gzip -6 >"$out.part" || { log "dump of database $db failed"; return 1; }
    # mariadb-dump writes this line last; without it the dump was cut short.
    zcat "$out.part" | tail -n 1 | grep -q '^-- Dump completed' || { log "dump of $db is incomplete"; return 1; }
    mv -f "$out.part" "$out"
  done
  [ ! -d "$dir/local" ] || mv "$dir/local" "$dir/local.old"
  mv "$new" "$dir/local"
  rm -rf "$dir/local.old"
}

# Callers run push in a condition (reach_peer), where `set -e` does not apply: each rsync returns.
push() { # extra rsync options...
  local paths=() excl=() opts=() p e
  read -ra opts <<<"${RSYNC_OPTS:-}"
  cd "$SYNC_ROOT"
  for p in $SYNC_PATHS; do [ -e "$p" ] && paths+=("$p"); done
  for e in ${EXCLUDES:-}; do excl+=(--exclude="$e"); done
  if [ "${#paths[@]}" -gt 0 ]; then
    hastack_rsync -aHR --no-implied-dirs --numeric-ids --delete-after --partial-dir=.rsync-partial --timeout="${RSYNC_TIMEOUT:-600}" \
      ${BWLIMIT:+--bwlimit="$BWLIMIT"} "${opts[@]}" "${excl[@]}" -e "$RSYNC_RSH" "$@" "${paths[@]}" "$PEER:$PEER_ROOT/" || return
  else
    log "no directory to sync under $SYNC_ROOT ($SYNC_PATHS)"
  fi
  # The copies land beside, never over, the peer's live databases.
  if [ -d "$COPIES_DIR/local" ]; then
    hastack_rsync -a --numeric-ids --delete-after --mkpath --timeout="${RSYNC_TIMEOUT:-600}" \
      ${BWLIMIT:+--bwlimit="$BWLIMIT"} "${opts[@]}" -e "$RSYNC_RSH" "$@" "$COPIES_DIR/local/" "$PEER:$PEER_ROOT/$COPIES_DIR/peer/" || return
  fi
}

# Success metric for monitoring (docs/outputs.md): replication to PEER_SIDE is current as of now.
# Written atomically; a metric that cannot be written never fails the sync.
metric() {
  local dir=${TEXTFILE_DIR:-/var/lib/prometheus/node-exporter} tmp
  { mkdir -p "$dir" && tmp=$(mktemp "$dir/.hastack.XXXXXX") &&
    printf 'hastack_replication_last_success_timestamp_seconds{service="pbx",side="%s"} %s\n' "$PEER_SIDE" "$(date +%s)" >"$tmp" &&
    chmod 0644 "$tmp" && mv -f "$tmp" "$dir/hastack_replication_pbx.prom"; } || log "could not write the metric to $dir"
}

# ssh_unreachable STATUS STDERR_FILE: 0 when the transfer failed only because ssh never reached
# the peer: STATUS 255 (ssh's) or 12 (rsync's, the stream closed first) with ssh's own message
# of a connection that never started. A refused key or a changed host key is a fault: 1.
# (The same test is in server/nas/hastack-nas-replicate.sh; not in lib/hastack.sh, which every
# server's user-data carries and the mail servers' has no room left for.)
ssh_unreachable() {
  [ "$1" -eq 255 ] || [ "$1" -eq 12 ] || return 1
  grep -Eq 'Permission denied|Host key verification failed|REMOTE HOST IDENTIFICATION|host key is known' "$2" && return 1
  grep -Eq '^ssh: (connect to host .* port [0-9]+: |Could not resolve hostname )|^kex_exchange_identification: |Connection timed out during banner exchange' "$2"
}

# reach_peer PUSH_ARGS...: push; when ssh cannot reach the peer at all (not booted yet — a first
# boot's sync can run before the standby is up — or down), say so and exit 75 (EX_TEMPFAIL): the
# unit counts 75 as success (SuccessExitStatus=75), the metric is not written, and its age is what
# monitoring alerts on (the RPO). Any other failure (rsync, authentication, host key) is the
# sync's own: its status fails the run.
reach_peer() {
  local errf rc=0 last
  errf=$(mktemp "${TMPDIR:-/tmp}/hastack-pbx-sync.XXXXXX")
  push "$@" 2> >(tee "$errf" >&2) || rc=$?
  # stderr goes out as it comes (hastack_rsync's retries) and to errf; wait for the copy.
  wait "$!" || true
  if [ "$rc" -ne 0 ] && ssh_unreachable "$rc" "$errf"; then
    rm -f "$errf"
    last=$(awk '{ print $2 }' "${TEXTFILE_DIR:-/var/lib/prometheus/node-exporter}/hastack_replication_pbx.prom" 2>/dev/null || true)
    log "cannot reach the peer $PEER over ssh (exit $rc): nothing pushed, the next run tries again; last push $([ -n "$last" ] && date -u -d "@$last" +%FT%TZ || echo never)"
    exit 75
  fi
  rm -f "$errf"
  return "$rc"
}

check() {
  local diff
  diff=$(reach_peer --dry-run --itemize-changes)
  if [ -n "$diff" ]; then
    log "$PEER differs from this server:"
    printf '%s\n' "$diff" | head -n 20 >&2
    return 3
  fi
  log "$PEER holds exactly what this server holds"
}

exec 9>"${LOCK_FILE:-/run/hastack-pbx-sync.lock}"
flock -w "${LOCK_WAIT_SECONDS:-600}" 9 || { log "another sync is still running"; exit 1; }
case "$cmd" in
  sync)
    if ! active; then
      log "not the active PBX ($SERVICE_NAME points elsewhere): nothing to push"
      exit 0
    fi
    started=$(date +%s)
    copies
    reach_peer
    metric
    log "pushed to $PEER in $(($(date +%s) - started)) s"
    ;;
  final)
    copies
    reach_peer
    check
    metric
    ;;
  check) check ;;
  *) log "unknown command $cmd (sync, final, check)"; exit 2 ;;
esac
