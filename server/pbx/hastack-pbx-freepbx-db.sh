#!/bin/bash
# hastack-pbx-freepbx-db: point FreePBX at its configuration database on the MySQL pair (issue
# 16), so both PBX servers read one replicated source of truth instead of each its own local
# database. server/pbx/; components/pbx.ts renders its env and /etc/hastack/pbx/freepbx.conf.
#  - the password (SSM SecureString) goes to a root:asterisk 0640 file freepbx.conf reads;
#  - the primary, at first boot, adopts the FreePBX database its AMI/installer made locally into
#    the schema on the MySQL pair — only while that schema has no table, so it never overwrites;
#  - /etc/freepbx.conf is replaced by the rendered one (the local original kept once aside).
set -euo pipefail
# Rendered by components/pbx.ts (renderFreepbxDbEnv) at boot: nothing to follow here.
# shellcheck source=/dev/null
. "${PBX_FREEPBX_DB_ENV:-/etc/hastack/pbx-freepbx-db.env}"
log() { echo "hastack-pbx-freepbx-db: $*" >&2; }
die() { log "$*"; exit 1; }
: "${PASSWORD_PARAMETER:?}" "${PASSWORD_FILE:?}" "${DB_HOST:?}" "${DB_PORT:?}" "${DB_USER:?}" "${DB_NAME:?}"
: "${RENDERED_CONF:?}" "${FREEPBX_CONF:?}"
# PARAMETER FILE: the SecureString into a root:asterisk 0640 file FreePBX reads; prints it.
password_to_file() {
  local value=""
  for _ in $(seq 1 "${ATTEMPTS:-60}"); do
    value=$(aws ssm get-parameter --region "$REGION" --with-decryption --name "$1" \
      --query Parameter.Value --output text 2>/dev/null) && [ -n "$value" ] && break
    sleep "${RETRY_SECONDS:-10}"
  done
  [ -n "$value" ] || die "cannot read $1"
  case "$value" in *[!A-Za-z0-9]*) die "$1 must be alphanumeric (it lands in a client option file)" ;; esac
  mkdir -p "$(dirname "$2")"
  ( umask 027; printf '%s\n' "$value" >"$2.new" )
  chgrp asterisk "$2.new" 2>/dev/null || true
  mv -f "$2.new" "$2"
  printf '%s' "$value"
}
pw=$(password_to_file "$PASSWORD_PARAMETER" "$PASSWORD_FILE")
# The CDR reports' read-only account (CDRDBUSER in freepbx.conf).
if [ -n "${CDR_PASSWORD_PARAMETER:-}" ]; then
  password_to_file "$CDR_PASSWORD_PARAMETER" "${CDR_PASSWORD_FILE:?}" >/dev/null
fi

cnf=$(mktemp)
trap 'rm -f "$cnf"' EXIT
printf '[client]\nuser=%s\npassword=%s\nhost=%s\nport=%s\n' "$DB_USER" "$pw" "$DB_HOST" "$DB_PORT" >"$cnf"
remote() { mariadb --defaults-extra-file="$cnf" --protocol=tcp ${REMOTE_OPTS:+$REMOTE_OPTS} -N -B "$@"; }
count_sql="SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = '$DB_NAME'"
remote_tables=""
for _ in $(seq 1 "${ATTEMPTS:-60}"); do
  remote_tables=$(remote -e "$count_sql" 2>/dev/null) && break
  sleep "${RETRY_SECONDS:-10}"
done
[ -n "$remote_tables" ] || die "cannot reach database $DB_NAME on $DB_HOST:$DB_PORT as $DB_USER"

if [ "${ADOPT_LOCAL:-no}" = yes ] && [ "$remote_tables" = 0 ]; then
  # shellcheck disable=SC2086
  local_tables=$(mariadb ${LOCAL_OPTS:-} -N -B -e "$count_sql" 2>/dev/null || echo 0)
  if [ "$local_tables" != 0 ]; then
    log "adopting the local $DB_NAME ($local_tables tables) into $DB_HOST (empty schema)"
    # One consistent snapshot; loaded with the account's own privileges (no DEFINER, no routines).
    # shellcheck disable=SC2086
    mariadb-dump ${LOCAL_OPTS:-} --single-transaction --hex-blob --skip-triggers "$DB_NAME" |
      remote "$DB_NAME" || die "adopting the local $DB_NAME into $DB_HOST failed"
  fi
fi

[ -e "$FREEPBX_CONF.hastack-local" ] || [ ! -e "$FREEPBX_CONF" ] || cp -p "$FREEPBX_CONF" "$FREEPBX_CONF.hastack-local"
install -m 0644 "$RENDERED_CONF" "$FREEPBX_CONF.new"
mv -f "$FREEPBX_CONF.new" "$FREEPBX_CONF"
log "FreePBX reads $DB_NAME on $DB_HOST:$DB_PORT as $DB_USER ($(remote -e "$count_sql") tables)"
