#!/bin/bash
# hastack-nas-replicate REPLICATE.env: copy the backup tree to the standby NAS.
# server/nas/hastack-nas-replicate.sh, env rendered by components/backup-jobs.ts
# (renderReplicateEnv); rehearsed unchanged by `npm run rehearse -- backup`.
set -euo pipefail
# Shared helpers (hastack_rsync); tests and rehearsals point HASTACK_LIB at server/lib/hastack.sh.
# shellcheck source=../lib/hastack.sh
. "${HASTACK_LIB:-/usr/local/lib/hastack/hastack.sh}"
env_file=${1:?usage: hastack-nas-replicate REPLICATE.env}
# The env file is rendered by components/ and its path is an argument: nothing to follow here.
# shellcheck source=/dev/null
. "$env_file"
: "${BACKUP_ROOT:?}" "${PEER:?}" "${PEER_ROOT:?}" "${RSYNC_RSH:?}"
log() { echo "hastack-nas-replicate: $*" >&2; }
case "${ACTIVE_CHECK:-dns}" in
  always) ;;
  never) log "not the active NAS: nothing to do"; exit 0 ;;
  dns) /usr/local/sbin/hastack-is-active "$SERVICE_NAME" || { log "not the active NAS ($SERVICE_NAME points elsewhere): nothing to do"; exit 0; } ;;
  *) log "ACTIVE_CHECK must be dns, always or never"; exit 1 ;;
esac
# ssh_unreachable STATUS STDERR_FILE: 0 when the transfer failed only because ssh never reached
# the peer: STATUS 255 (ssh's) or 12 (rsync's, the stream closed first) with ssh's own message
# of a connection that never started. A refused key or a changed host key is a fault: 1.
# (The same test is in server/pbx/hastack-pbx-sync.sh; not in lib/hastack.sh, which every
# server's user-data carries and the mail servers' has no room left for.)
ssh_unreachable() {
  [ "$1" -eq 255 ] || [ "$1" -eq 12 ] || return 1
  grep -Eq 'Permission denied|Host key verification failed|REMOTE HOST IDENTIFICATION|host key is known' "$2" && return 1
  grep -Eq '^ssh: (connect to host .* port [0-9]+: |Could not resolve hostname )|^kex_exchange_identification: |Connection timed out during banner exchange' "$2"
}

mkdir -p "$BACKUP_ROOT"
exec 9>"$BACKUP_ROOT/.replicate.lock"
# Several jobs finishing together queue up here instead of running side by side.
flock -w "${LOCK_WAIT_SECONDS:-3600}" 9 || { log "replication still running after the wait"; exit 1; }
started=$(date +%s)
read -ra rsync_opts <<<"${RSYNC_OPTS:-}"
errf=$(mktemp "${TMPDIR:-/tmp}/hastack-nas-replicate.XXXXXX")
rc=0
hastack_rsync -aH --numeric-ids --delete-after --partial-dir=.rsync-partial --timeout="${RSYNC_TIMEOUT:-600}" \
  ${BWLIMIT:+--bwlimit="$BWLIMIT"} "${rsync_opts[@]}" \
  --exclude=/.replicate.lock --exclude=/.locks/ --exclude='/*/.incoming/' --exclude='/*/.lock' --exclude='/*/.latest.new' \
  -e "$RSYNC_RSH" "$BACKUP_ROOT/" "$PEER:$PEER_ROOT/" 2> >(tee "$errf" >&2) || rc=$?
# stderr goes to the journal as it comes (hastack_rsync's retries) and to errf; wait for the copy.
wait "$!" || true
if [ "$rc" -ne 0 ] && ssh_unreachable "$rc" "$errf"; then
  # The standby NAS not up (a first boot's job can finish before it is, or it is down): not this
  # NAS's failure and no backup is lost — the snapshots are here. Exit 75 (EX_TEMPFAIL): the unit
  # counts it as success (SuccessExitStatus=75), the next job or the hourly timer tries again,
  # and the replication metric below stays old: its age is what monitoring alerts on.
  rm -f "$errf"
  log "cannot reach the standby NAS $PEER over ssh (exit $rc): nothing replicated, the next run tries again"
  exit 75
fi
rm -f "$errf"
[ "$rc" -eq 0 ] || { log "replication to $PEER failed (rsync exit $rc)"; exit "$rc"; }
log "replicated $BACKUP_ROOT to $PEER:$PEER_ROOT in $(($(date +%s) - started)) s"
# Success metric for monitoring (docs/outputs.md), labelled with the side that received the copy.
dir=${TEXTFILE_DIR:-/var/lib/prometheus/node-exporter}
{ mkdir -p "$dir" && tmp=$(mktemp "$dir/.hastack.XXXXXX") &&
  printf 'hastack_replication_last_success_timestamp_seconds{service="nas",side="%s"} %s\n' "${PEER_SIDE:-standby}" "$(date +%s)" >"$tmp" &&
  chmod 0644 "$tmp" && mv -f "$tmp" "$dir/hastack_replication_nas.prom"; } || log "could not write the replication metric to $dir"
