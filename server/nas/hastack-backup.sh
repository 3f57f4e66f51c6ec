#!/bin/bash
# hastack-backup: one NAS backup job (server/nas/hastack-backup.sh; components/backup-jobs.ts
# renders its env file). systemd runs it on the NAS, `npm run rehearse -- backup` runs the same
# file on loopback.
#   hastack-backup run     JOB.env                 take a snapshot (no-op unless this NAS is active)
#   hastack-backup prune   JOB.env                 drop snapshots older than RETENTION_DAYS (never latest)
#   hastack-backup verify  JOB.env [SNAPSHOT]      check a snapshot against its MANIFEST
#   hastack-backup restore JOB.env SNAPSHOT [DEST] rsync job: copy to DEST and verify;
#                                                  dump job: load into RESTORE_DB_HOST:RESTORE_DB_PORT
set -euo pipefail
umask 077
# Shared helpers (hastack_rsync); tests and rehearsals point HASTACK_LIB at server/lib/hastack.sh.
# shellcheck source=../lib/hastack.sh
. "${HASTACK_LIB:-/usr/local/lib/hastack/hastack.sh}"

die() { echo "hastack-backup${JOB:+[$JOB]}: $*" >&2; exit 1; }
log() { echo "hastack-backup[$JOB]: $*" >&2; }

cmd=${1:-}
env_file=${2:-}
if [ -z "$cmd" ] || [ ! -r "$env_file" ]; then
  die "usage: hastack-backup run|prune|verify|restore JOB.env [SNAPSHOT] [DEST]"
fi
# The env file is rendered by components/ and its path is an argument: nothing to follow here.
# shellcheck source=/dev/null
. "$env_file"
: "${JOB:?JOB missing in $env_file}" "${KIND:?KIND missing}" "${BACKUP_ROOT:?}" "${RETENTION_DAYS:?}"
job_dir=$BACKUP_ROOT/$JOB
now=${HASTACK_NOW:-$(date -u +%s)}

active() {
  case "${ACTIVE_CHECK:-dns}" in
    always) return 0 ;;
    never) return 1 ;;
    dns) /usr/local/sbin/hastack-is-active "$SERVICE_NAME" ;;
    *) die "ACTIVE_CHECK must be dns, always or never, got $ACTIVE_CHECK" ;;
  esac
}

# The sources' host keys are pinned (RSYNC_RSH: StrictHostKeyChecking=yes, UserKnownHostsFile):
# refreshed from SSM before each pull, so a rebuilt source server is known; when SSM cannot be
# read the last good copy stays, and a key found in neither is refused, never learned.
refresh_known_hosts() {
  [ -n "${KNOWN_HOSTS_PARAMETER:-}" ] || return 0
  local tmp
  mkdir -p "$(dirname "$KNOWN_HOSTS_FILE")"
  tmp=$(mktemp "$KNOWN_HOSTS_FILE.XXXXXX") || return 0
  if hastack_ssm_get "$KNOWN_HOSTS_PARAMETER" 3 5 >"$tmp" && grep -q ' ssh-' "$tmp"; then
    chmod 0644 "$tmp"
    mv -f "$tmp" "$KNOWN_HOSTS_FILE"
  else
    rm -f "$tmp"
    log "cannot read the sources' host keys from $KNOWN_HOSTS_PARAMETER; keeping $KNOWN_HOSTS_FILE"
  fi
}

pull_rsync() {
  refresh_known_hosts
  mkdir -p "$job_dir/.incoming/data"
  local link=() excl=() opts=() rc=0
  read -ra opts <<<"${RSYNC_OPTS:-}"
  [ -d "$job_dir/latest/data" ] && link=(--link-dest="$job_dir/latest/data")
  for e in ${EXCLUDES:-}; do excl+=(--exclude="$e"); done
  # .incoming survives an interrupted run and --partial-dir keeps a half-copied file, so the
  # next run resumes instead of starting over; --delete drops what the source no longer has.
  hastack_rsync -aH --numeric-ids --delete --partial-dir=.rsync-partial --timeout="${RSYNC_TIMEOUT:-600}" \
    ${BWLIMIT:+--bwlimit="$BWLIMIT"} "${opts[@]}" "${link[@]}" "${excl[@]}" -e "$RSYNC_RSH" \
    "$SOURCE_HOST:$SOURCE_PATH/" "$job_dir/.incoming/data/" || rc=$?
  # 24 = some files vanished while copying (mail expunged, recording moved): each file copied
  # is still whole, and the next run picks up the change.
  [ "$rc" -eq 0 ] || [ "$rc" -eq 24 ] || die "rsync from $SOURCE_HOST:$SOURCE_PATH failed (exit $rc); .incoming kept, the next run resumes"
}

dump_db() {
  mkdir -p "$job_dir/.incoming/data"
  local out=$job_dir/.incoming/data/$JOB.sql.gz dbs=()
  read -ra dbs <<<"$DATABASES"
  # --single-transaction: one consistent InnoDB snapshot without blocking writers.
  # --gtid --master-data=2: the GTID position as a comment, so a dump can seed a new replica.
  mariadb-dump --defaults-extra-file="$DB_DEFAULTS_FILE" --host="$DB_HOST" --port="$DB_PORT" \
    --single-transaction --gtid --master-data=2 --routines --events --triggers --hex-blob \
    --databases "${dbs[@]}" | gzip -6 >"$out.part"
  # mariadb-dump writes this line last; without it the dump was cut short.
  zcat "$out.part" | tail -n 1 | grep -q '^-- Dump completed' || die "dump of $DATABASES is incomplete"
  mv -f "$out.part" "$out"
}

write_manifest() { # DIR: sha256 of every file under DIR/data, sorted, into DIR/MANIFEST.sha256
  (cd "$1/data" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0r sha256sum) >"$1/MANIFEST.sha256.part"
  mv -f "$1/MANIFEST.sha256.part" "$1/MANIFEST.sha256"
}

# METRIC LABELS FILE: now as the metric's value, for node_exporter's textfile collector, written
# atomically (docs/outputs.md); a metric that cannot be written never fails the backup itself.
metric() {
  local dir=${TEXTFILE_DIR:-/var/lib/prometheus/node-exporter} tmp
  { mkdir -p "$dir" && tmp=$(mktemp "$dir/.hastack.XXXXXX") &&
    printf '%s{%s} %s\n' "$1" "$2" "$(date +%s)" >"$tmp" && chmod 0644 "$tmp" && mv -f "$tmp" "$dir/$3.prom"; } ||
    log "could not write metric $1 to $dir"
}

snapshot_dir() { # NAME or "latest" -> directory
  local s=${1:-latest}
  [ "$s" = latest ] && s=$(readlink "$job_dir/latest" || true)
  if [ -z "$s" ] || [ ! -d "$job_dir/$s/data" ]; then die "no snapshot ${1:-latest} in $job_dir"; fi
  echo "$job_dir/$s"
}

verify() { # DIR
  [ -r "$1/MANIFEST.sha256" ] || die "$1 has no MANIFEST.sha256"
  (cd "$1/data" && sha256sum --quiet --strict -c "$1/MANIFEST.sha256") || die "$1 does not match its MANIFEST"
  log "verified ${1##*/}: $(wc -l <"$1/MANIFEST.sha256") files match MANIFEST.sha256"
}

prune() {
  local keep cutoff d s t
  keep=$(readlink "$job_dir/latest" || true)
  cutoff=$((now - RETENTION_DAYS * 86400))
  for d in "$job_dir"/[0-9]*T*Z; do
    [ -d "$d" ] || continue
    s=${d##*/}
    [ "$s" = "$keep" ] && continue
    t=$(date -u -d "${s:0:4}-${s:4:2}-${s:6:2} ${s:9:2}:${s:11:2}:${s:13:2}" +%s 2>/dev/null) || continue
    if [ "$t" -lt "$cutoff" ]; then
      rm -rf -- "$d"
      log "pruned $s (older than $RETENTION_DAYS days)"
    fi
  done
}

run() {
  if ! active; then
    log "this NAS is not the active one ($SERVICE_NAME points elsewhere): nothing to do"
    return 0
  fi
  mkdir -p "$job_dir" "$BACKUP_ROOT/.locks"
  exec 9>"$job_dir/.lock"
  flock -n 9 || die "another run of $JOB holds $job_dir/.lock"
  # Jobs that read one source take turns (pbx-config and pbx-spool share the PBX; a slow run
  # can overlap the next): the later one waits, bounded, instead of colliding with the first.
  local source=${SOURCE_HOST:-${DB_HOST:-}} wait=${SOURCE_LOCK_WAIT_SECONDS:-3600} started stamp
  exec 8>"$BACKUP_ROOT/.locks/source-${source//\//_}.lock"
  flock -w "$wait" 8 || die "another job still reads $source after $wait s; the next run retries"
  started=$(date +%s)
  case "$KIND" in
    rsync) pull_rsync ;;
    mariadb-dump) dump_db ;;
    *) die "KIND must be rsync or mariadb-dump, got $KIND" ;;
  esac
  flock -u 8
  write_manifest "$job_dir/.incoming"
  stamp=$(date -u -d "@$now" +%Y%m%dT%H%M%SZ)
  [ ! -e "$job_dir/$stamp" ] || die "snapshot $stamp already exists"
  mv "$job_dir/.incoming" "$job_dir/$stamp"
  ln -sfn "$stamp" "$job_dir/.latest.new"
  mv -T "$job_dir/.latest.new" "$job_dir/latest"
  log "snapshot $stamp: $(wc -l <"$job_dir/$stamp/MANIFEST.sha256") files in $(($(date +%s) - started)) s"
  prune
  metric hastack_backup_last_success_timestamp_seconds \
    "service=\"${BACKUP_SERVICE:-unknown}\",backup=\"$JOB\"" "hastack_backup_$JOB"
  flock -u 9
  if [ "${REPLICATE_AFTER:-yes}" = yes ]; then
    # 75: the standby NAS cannot be reached (hastack-nas-replicate says so). The snapshot is taken:
    # this job succeeded; the replication metric ages and the hourly replication tries again.
    "${REPLICATE_CMD:-/usr/local/sbin/hastack-nas-replicate}" "$REPLICATE_ENV" || [ $? -eq 75 ]
  fi
}

restore() { # SNAPSHOT [DEST]
  local snap
  snap=$(snapshot_dir "${1:-latest}")
  verify "$snap"
  case "$KIND" in
    rsync)
      local dest=${2:?restore of an rsync job needs DEST}
      mkdir -p "$dest"
      rsync -aH --numeric-ids "$snap/data/" "$dest/"
      (cd "$dest" && sha256sum --quiet --strict -c "$snap/MANIFEST.sha256") || die "restored tree in $dest does not match the snapshot"
      log "restored ${snap##*/} into $dest and verified"
      ;;
    mariadb-dump)
      : "${RESTORE_DB_HOST:?set RESTORE_DB_HOST}" "${RESTORE_DB_PORT:?}" "${RESTORE_DB_DEFAULTS_FILE:?}"
      zcat "$snap/data/$JOB.sql.gz" |
        mariadb --defaults-extra-file="$RESTORE_DB_DEFAULTS_FILE" --host="$RESTORE_DB_HOST" --port="$RESTORE_DB_PORT"
      log "loaded ${snap##*/} into $RESTORE_DB_HOST:$RESTORE_DB_PORT"
      ;;
  esac
}

case "$cmd" in
  run) run ;;
  prune) prune ;;
  verify) verify "$(snapshot_dir "${3:-latest}")" ;;
  restore) restore "${3:-latest}" "${4:-}" ;;
  *) die "unknown command $cmd (run, prune, verify, restore)" ;;
esac
