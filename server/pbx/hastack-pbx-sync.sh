#!/bin/bash
# hastack-pbx-sync sync|final|check ENV: push Asterisk config and spool to the other PBX.
# server/pbx/hastack-pbx-sync.sh, env rendered by components/pbx.ts (renderPbxSyncEnv);
# test/components/sync.test.ts runs this same file against real rsync.
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
: "${PEER:?}" "${PEER_SIDE:?}" "${SYNC_ROOT:?}" "${PEER_ROOT:?}" "${SYNC_PATHS:?}" "${RSYNC_RSH:?}"

active() {
  case "${ACTIVE_CHECK:-dns}" in
    always) return 0 ;;
    never) return 1 ;;
    dns) /usr/local/sbin/hastack-is-active "$SERVICE_NAME" ;;
    *) log "ACTIVE_CHECK must be dns, always or never"; exit 2 ;;
  esac
}

push() { # extra rsync options...
  local paths=() excl=() opts=() p e
  read -ra opts <<<"${RSYNC_OPTS:-}"
  cd "$SYNC_ROOT"
  for p in $SYNC_PATHS; do [ -e "$p" ] && paths+=("$p"); done
  [ "${#paths[@]}" -gt 0 ] || { log "nothing to sync under $SYNC_ROOT ($SYNC_PATHS)"; return 0; }
  for e in ${EXCLUDES:-}; do excl+=(--exclude="$e"); done
  hastack_rsync -aHR --numeric-ids --delete-after --partial-dir=.rsync-partial --timeout="${RSYNC_TIMEOUT:-600}" \
    ${BWLIMIT:+--bwlimit="$BWLIMIT"} "${opts[@]}" "${excl[@]}" -e "$RSYNC_RSH" "$@" "${paths[@]}" "$PEER:$PEER_ROOT/"
}

# Success metric for monitoring (docs/outputs.md): replication to PEER_SIDE is current as of now.
# Written atomically; a metric that cannot be written never fails the sync.
metric() {
  local dir=${TEXTFILE_DIR:-/var/lib/prometheus/node-exporter} tmp
  { mkdir -p "$dir" && tmp=$(mktemp "$dir/.hastack.XXXXXX") &&
    printf 'hastack_replication_last_success_timestamp_seconds{service="pbx",side="%s"} %s\n' "$PEER_SIDE" "$(date +%s)" >"$tmp" &&
    chmod 0644 "$tmp" && mv -f "$tmp" "$dir/hastack_replication_pbx.prom"; } || log "could not write the metric to $dir"
}

check() {
  local diff
  diff=$(push --dry-run --itemize-changes)
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
    push
    metric
    log "pushed to $PEER in $(($(date +%s) - started)) s"
    ;;
  final)
    push
    check
    metric
    ;;
  check) check ;;
  *) log "unknown command $cmd (sync, final, check)"; exit 2 ;;
esac
