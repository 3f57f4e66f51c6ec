#!/bin/bash
# hastack-nas-db-credentials: the dump job's MariaDB credentials from SSM.
# server/nas/hastack-nas-db-credentials.sh; components/nas.ts renders its env file.
set -euo pipefail
# The env file is rendered by components/nas.ts at deploy time: nothing to follow here.
# shellcheck source=/dev/null
. "${NAS_DB_ENV:-/etc/hastack/nas-db.env}"
pw=""
for _ in $(seq 1 "${ATTEMPTS:-30}"); do
  pw=$(aws ssm get-parameter --region "$REGION" --with-decryption --name "$PASSWORD_PARAMETER" \
    --query Parameter.Value --output text 2>/dev/null) && [ -n "$pw" ] && break
  sleep 10
done
[ -n "$pw" ] || { echo "hastack-nas-db-credentials: cannot read $PASSWORD_PARAMETER" >&2; exit 1; }
mkdir -p "$(dirname "$DEFAULTS_FILE")"
( umask 077; printf '[client]\nuser=%s\npassword=%s\n' "$DB_USER" "$pw" >"$DEFAULTS_FILE.new" )
mv -f "$DEFAULTS_FILE.new" "$DEFAULTS_FILE"
