#!/bin/bash
# hastack-pbx-cdr-setup: CDRs to the MySQL pair (server/pbx/; components/pbx.ts renders its env).
set -euo pipefail
# The env file is rendered by components/pbx.ts at deploy time: nothing to follow here.
# shellcheck source=/dev/null
. "${PBX_CDR_ENV:-/etc/hastack/pbx-cdr.env}"
etc=${ASTERISK_ETC:-/etc/asterisk}
rendered=${RENDERED_DIR:-/etc/hastack/pbx}
[ -d "$etc" ] || { echo "hastack-pbx-cdr-setup: $etc missing (Asterisk not installed)" >&2; exit 1; }
pw=""
for _ in $(seq 1 60); do
  pw=$(aws ssm get-parameter --region "$REGION" --with-decryption --name "$PASSWORD_PARAMETER" \
    --query Parameter.Value --output text 2>/dev/null) && [ -n "$pw" ] && break
  sleep 10
done
[ -n "$pw" ] || { echo "hastack-pbx-cdr-setup: cannot read $PASSWORD_PARAMETER" >&2; exit 1; }
mkdir -p "$(dirname "$PASSWORD_INCLUDE")"
( umask 027; printf 'password => %s\n' "$pw" >"$PASSWORD_INCLUDE.new" )
chgrp asterisk "$PASSWORD_INCLUDE.new" 2>/dev/null || true
mv -f "$PASSWORD_INCLUDE.new" "$PASSWORD_INCLUDE"
install -m 0644 "$rendered/res_odbc_hastack.conf" "$rendered/cdr_adaptive_odbc_hastack.conf" "$etc/"
for f in res_odbc cdr_adaptive_odbc; do
  line="#include \"${f}_hastack.conf\""
  touch "$etc/$f.conf"
  grep -qxF "$line" "$etc/$f.conf" || printf '%s\n' "$line" >>"$etc/$f.conf"
done
if [ -S /var/run/asterisk/asterisk.ctl ]; then
  asterisk -rx 'module reload res_odbc.so' || true
  asterisk -rx 'module reload cdr_adaptive_odbc.so' || true
fi
echo "hastack-pbx-cdr-setup: CDRs go to $DSN_HOST via ODBC DSN hastack-cdr"
