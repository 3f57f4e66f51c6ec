#!/bin/bash
# hastack-pbx-activate ENV: make this PBX the one that serves (issue 16). The switch runs it on
# the server becoming active (PbxPair's remote command) before the service address moves there:
#  1. the consistent copies the other PBX shipped (COPIES_DIR/peer: astdb, Elastix's SQLite
#     databases, local database dumps) are checked first — every SQLite copy must pass
#     PRAGMA integrity_check, every dump must be whole — and only then installed, with Asterisk
#     stopped (ASTERISK_STOP … ASTERISK_START), each set of copies only once; where the web UI
#     writes those databases itself (Elastix: httpd and /var/www/db/*.db) it is stopped first
#     and started last (WEB_STOP … WEB_START), so no page writes into a database being replaced;
#  2. the web UI is started on this server, taking over (WEB_START), whether or not anything
#     was installed;
#  3. FreePBX: `fwconsole reload` regenerates /etc/asterisk from the configuration database and
#     reloads Asterisk. A missing fwconsole is a failure, never skipped: the address stays put.
# server/pbx/hastack-pbx-activate.sh, env rendered by components/pbx.ts (renderPbxActivateEnv);
# test/server/pbx/activate.test.ts runs this file.
# The switch sends this text on stdin (bash -s ENV): every command that could read stdin gets
# /dev/null, so none can swallow the rest of the script.
set -euo pipefail
log() { echo "hastack-pbx-activate: $*" >&2; }
die() { log "$*"; exit 1; }
env_file=${1:-}
[ -r "$env_file" ] || die "usage: hastack-pbx-activate ENV"
# The env file is rendered by components/ and its path is an argument: nothing to follow here.
# shellcheck source=/dev/null
. "$env_file"
: "${FLAVOUR:?}" "${ROOT:?}" "${COPIES_DIR:?}" "${ASTERISK_STOP:?}" "${ASTERISK_START:?}"
peer=$ROOT/$COPIES_DIR/peer
marker=$ROOT/$COPIES_DIR/installed.sha256

# The copies to install: only names the replicated set declares (SQLITE_FILES globs under the
# copies, DUMP_DATABASES), relative to ROOT.
sqlite=() dumps=()
if [ -d "$peer" ]; then
  shopt -s nullglob
  # shellcheck disable=SC2086
  for f in $(cd "$peer" && printf '%s\n' ${SQLITE_FILES:-}); do
    [ -f "$peer/$f" ] && sqlite+=("$f")
  done
  shopt -u nullglob
  for db in ${DUMP_DATABASES:-}; do
    [ -f "$peer/mysql/$db.sql.gz" ] && dumps+=("$db")
  done
fi

manifest() {
  local f
  for f in "${sqlite[@]}"; do sha256sum "$peer/$f"; done
  for f in "${dumps[@]}"; do sha256sum "$peer/mysql/$f.sql.gz"; done
}

asterisk_stopped=no web_stopped=no
restart_asterisk() {
  if [ "$asterisk_stopped" = yes ]; then
    # shellcheck disable=SC2086
    $ASTERISK_START </dev/null || log "could not start Asterisk again ($ASTERISK_START)"
  fi
  if [ "$web_stopped" = yes ]; then
    # shellcheck disable=SC2086
    $WEB_START </dev/null || log "could not start the web UI again ($WEB_START)"
  fi
}

if [ "$((${#sqlite[@]} + ${#dumps[@]}))" -eq 0 ]; then
  log "no databases shipped by the other PBX in $peer: nothing to install"
elif [ "$(manifest)" = "$(cat "$marker" 2>/dev/null || true)" ]; then
  log "the shipped databases in $peer are installed already"
else
  # Check everything before touching anything: a bad copy leaves this server as it was.
  for f in "${sqlite[@]}"; do
    check=$(sqlite3 -readonly "$peer/$f" 'PRAGMA integrity_check;' 2>&1) || check="unreadable: $check"
    [ "$check" = ok ] || die "the shipped copy of /$f fails integrity_check ($check): nothing installed"
  done
  for db in "${dumps[@]}"; do
    zcat "$peer/mysql/$db.sql.gz" | tail -n 1 | grep -q '^-- Dump completed' ||
      die "the shipped dump of database $db is incomplete: nothing installed"
  done
  trap restart_asterisk EXIT
  if [ -n "${WEB_STOP:-}" ]; then
    log "stopping the web UI ($WEB_STOP): it writes the databases being replaced"
    # shellcheck disable=SC2086
    $WEB_STOP </dev/null || die "could not stop the web UI ($WEB_STOP): nothing installed"
    web_stopped=yes
  fi
  log "stopping Asterisk ($ASTERISK_STOP) to install ${#sqlite[@]} database file(s) and ${#dumps[@]} dump(s)"
  # shellcheck disable=SC2086
  $ASTERISK_STOP </dev/null || die "could not stop Asterisk ($ASTERISK_STOP): nothing installed"
  asterisk_stopped=yes
  for f in "${sqlite[@]}"; do
    dest=$ROOT/$f
    mkdir -p "$(dirname "$dest")"
    cp "$peer/$f" "$dest.hastack-new"
    if [ -e "$dest" ]; then
      chown --reference="$dest" "$dest.hastack-new" && chmod --reference="$dest" "$dest.hastack-new"
    fi
    # A journal left beside the old database would be replayed into the new one.
    rm -f "$dest-journal" "$dest-wal" "$dest-shm"
    mv -f "$dest.hastack-new" "$dest"
    log "installed /$f"
  done
  for db in "${dumps[@]}"; do
    # shellcheck disable=SC2086
    zcat "$peer/mysql/$db.sql.gz" | $DB_CLIENT || die "loading the dump of $db failed"
    log "loaded database $db"
  done
  manifest >"$marker.new" && mv -f "$marker.new" "$marker"
  trap - EXIT
  # shellcheck disable=SC2086
  $ASTERISK_START </dev/null || die "could not start Asterisk ($ASTERISK_START)"
  asterisk_stopped=no
fi

# The web UI serves from the server taking over (started again if it was stopped above, started
# for the first time if this server kept it stopped while it stood by).
if [ -n "${WEB_START:-}" ]; then
  # shellcheck disable=SC2086
  $WEB_START </dev/null || die "could not start the web UI ($WEB_START)"
  web_stopped=no
  log "web UI started ($WEB_START)"
fi

if [ "$FLAVOUR" = freepbx ]; then
  command -v "${FWCONSOLE:-fwconsole}" >/dev/null ||
    die "flavour freepbx but ${FWCONSOLE:-fwconsole} is not installed: cannot regenerate /etc/asterisk from FreePBX's database"
  timeout "${RELOAD_TIMEOUT_SECONDS:-600}" "${FWCONSOLE:-fwconsole}" reload </dev/null ||
    die "${FWCONSOLE:-fwconsole} reload failed: /etc/asterisk may not match FreePBX's database"
  log "FreePBX reloaded: /etc/asterisk regenerated from its database"
fi
log "active"
