#!/bin/bash
# hastack-mail-refresh — hastack's server/mail/hastack-mail-refresh.sh; components/mail.ts fills in its @@values@@.
# Pulls users, the doveadm password and the peer's address from SSM (the instance profile
# may read @@SSM_PREFIX@@/*) and installs them only when valid. Runs at boot, on a timer and
# before every sync, so both servers always know the same users.
# usage: hastack-mail-refresh [--require-users]
set -euo pipefail
umask 077
log() { echo "hastack-mail-refresh: $*" >&2; }

PREFIX=@@SSM_PREFIX@@
PEER_ROLE=@@PEER_ROLE@@
USERS=@@USERS_FILE@@
SECRETS=@@SECRETS_FILE@@
POSTFIX_DIR=@@POSTFIX_DIR@@
DOVECOT_CONF=@@DOVECOT_CONF@@
STATE=@@STATE_DIR@@
require_users=0
if [ "${1:-}" = "--require-users" ]; then require_users=1; elif [ $# -gt 0 ]; then
  log "unknown argument $1 (expected --require-users)"; exit 2
fi

# The region comes from the instance metadata (IMDSv2) unless the environment names it.
if [ -z "${AWS_DEFAULT_REGION:-}" ]; then
  token=$(curl -sf -m 5 -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 60' http://169.254.169.254/latest/api/token)
  AWS_DEFAULT_REGION=$(curl -sf -m 5 -H "X-aws-ec2-metadata-token: $token" http://169.254.169.254/latest/meta-data/placement/region)
  export AWS_DEFAULT_REGION
fi
param() { aws ssm get-parameter --with-decryption --name "$PREFIX/$1" --query Parameter.Value --output text; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
mkdir -p "$STATE"

# Users: user@domain:{SCHEME}hash, one per line; a short line gets the empty userdb fields
# Dovecot's passwd-file needs (uid, gid and home come from default_fields).
param users > "$tmp/users.raw"
if ! awk -F: -v re='^[a-z0-9._-]+@@@DOMAIN_RE@@$' '
  /^[[:space:]]*(#|$)/ { next }
  $1 !~ re || $2 !~ /^\{[A-Z0-9.-]+\}./ { printf "users line %d: expected user@domain:{SCHEME}hash (lowercase user)\n", NR > "/dev/stderr"; bad = 1; next }
  { if (NF == 2) print $0 "::::::"; else print }
  END { exit bad }' "$tmp/users.raw" > "$tmp/users"; then
  log "refusing the users parameter $PREFIX/users: fix the lines above; keeping the installed users"
  exit 1
fi
count=$(grep -c . "$tmp/users" || true)
if [ "$count" -eq 0 ] && [ "$require_users" -eq 1 ]; then
  log "no users in $PREFIX/users: import the users and passwords from the old server first (migration step 2)"
  exit 1
fi
install -m 0640 -o root -g dovecot "$tmp/users" "$USERS"
# Postfix accepts mail only for listed users (no backscatter from unknown recipients).
awk -F: '{ print $1, "OK" }' "$tmp/users" > "$tmp/vmailbox"
if ! cmp -s "$tmp/vmailbox" "$POSTFIX_DIR/vmailbox"; then
  install -m 0644 "$tmp/vmailbox" "$POSTFIX_DIR/vmailbox"
  if postfix -c "$POSTFIX_DIR" status >/dev/null 2>&1; then postfix -c "$POSTFIX_DIR" reload >/dev/null 2>&1; fi
fi

# The doveadm password authenticates the peer's dsync; never in user-data or logs.
printf 'doveadm_password = %s\n' "$(param doveadm-password)" > "$tmp/secrets"
if ! cmp -s "$tmp/secrets" "$SECRETS"; then
  install -m 0600 -o root -g root "$tmp/secrets" "$SECRETS"
  if doveadm -c "$DOVECOT_CONF" reload >/dev/null 2>&1; then :; fi
fi
param "private-ip/$PEER_ROLE" > "$tmp/peer-ip"
install -m 0644 "$tmp/peer-ip" "$STATE/peer-ip"
log "$count users, peer $PEER_ROLE at $(cat "$STATE/peer-ip")"
