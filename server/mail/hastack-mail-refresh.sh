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
SSH_DIR=@@BACKUP_SSH_DIR@@
NAS_READ_ROOT=@@MAIL_ROOT@@
DKIM_DIR=@@DKIM_KEY_DIR@@
DKIM_DOMAIN=@@DOMAIN@@
DKIM_USER=@@DKIM_USER@@
DKIM_PID_FILE=@@DKIM_PID_FILE@@
MTA_STS_POLICY=$STATE/mta-sts.txt
require_users=0
if [ "${1:-}" = "--require-users" ]; then require_users=1; elif [ $# -gt 0 ]; then
  log "unknown argument $1 (expected --require-users)"; exit 2
fi

# The region for the SSM reads, unless the environment names it: hastack_region (the one
# IMDSv2 lookup, server/lib/hastack.sh, which every server gets at first boot).
if [ -z "${AWS_DEFAULT_REGION:-}" ]; then
  # shellcheck source=../lib/hastack.sh
  . "${HASTACK_LIB:-/usr/local/lib/hastack/hastack.sh}"
  AWS_DEFAULT_REGION=$(hastack_region)
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

# The NAS pulls the Maildirs (backup job mail-maildirs) as root with its own key, which this
# server accepts only through rrsync: read-only (no write, no delete) and only under the mail
# root — never the users file, the TLS key or anything else here (issue 11). A key that cannot
# be read keeps the one installed; other lines of authorized_keys are left as they are.
nas="NAS backup key not updated"
if nas_key=$(param nas-backup-ssh-public-key) && read -r key_type key_body _ <<<"$nas_key" &&
  [[ "$key_type" =~ ^(ssh-ed25519|ecdsa-sha2-nistp(256|384|521)|ssh-rsa)$ ]] &&
  [[ "$key_body" =~ ^[A-Za-z0-9+/]+=*$ ]]; then
  ak=$SSH_DIR/authorized_keys
  install -d -m 0700 "$SSH_DIR"
  touch "$ak"
  {
    grep -v ' hastack-mail-nas-backup$' "$ak" || true
    printf 'command="/usr/bin/rrsync -ro -absolute %s",restrict %s %s hastack-mail-nas-backup\n' \
      "$NAS_READ_ROOT" "$key_type" "$key_body"
  } > "$tmp/authorized_keys"
  if ! cmp -s "$tmp/authorized_keys" "$ak"; then
    install -m 0600 "$tmp/authorized_keys" "$ak.hastack-new"
    mv -f "$ak.hastack-new" "$ak"
  fi
  nas="NAS backup key allowed to read $NAS_READ_ROOT"
else
  log "$PREFIX/nas-backup-ssh-public-key is unreadable or not one SSH public key; keeping the installed NAS key"
fi

# DKIM: the selector the stack says both servers sign with (dkim-signing-selector; a key
# rotation switches it, README) and its key, the same on both servers so a failover signs
# identically. An unreadable parameter keeps the installed selector; like the NAS key, a bad or
# unreadable key keeps the installed key (mail keeps flowing; the sync and the users never wait
# on it). The selector is not in user-data: a rotation never changes a server's user-data.
dkim="DKIM key not updated"
selector=""
if selector=$(param dkim-signing-selector) && [[ "$selector" =~ ^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$ ]]; then
  :
else
  log "$PREFIX/dkim-signing-selector is unreadable or not a selector; keeping the installed one"
  selector=""
fi
if [ -z "$selector" ]; then
  :
elif param "dkim/$selector" > "$tmp/dkim.key" && openssl pkey -in "$tmp/dkim.key" -noout 2>/dev/null; then
  key=$DKIM_DIR/$selector.private
  printf 'hastack %s:%s:%s\n' "$DKIM_DOMAIN" "$selector" "$key" > "$tmp/keytable"
  printf '*@%s hastack\n' "$DKIM_DOMAIN" > "$tmp/signingtable"
  install -d -m 0700 -o "$DKIM_USER" "$DKIM_DIR"
  changed=0
  # The key before the tables that name it: OpenDKIM never reads a key that is not there yet.
  if ! cmp -s "$tmp/dkim.key" "$key"; then
    install -m 0600 -o "$DKIM_USER" "$tmp/dkim.key" "$key"
    changed=1
  fi
  for table in keytable signingtable; do
    if ! cmp -s "$tmp/$table" "$DKIM_DIR/$table"; then
      install -m 0644 -o "$DKIM_USER" "$tmp/$table" "$DKIM_DIR/$table"
      changed=1
    fi
  done
  # SIGUSR1: OpenDKIM rereads its configuration, tables and key.
  if [ "$changed" -eq 1 ] && [ -s "$DKIM_PID_FILE" ]; then kill -USR1 "$(cat "$DKIM_PID_FILE")" 2>/dev/null || true; fi
  dkim="DKIM selector $selector"
else
  log "$PREFIX/dkim/$selector is unreadable or not a private key; keeping the installed DKIM key"
fi
# MTA-STS: the policy the stack derives from the MX set (mta-sts-policy), which nginx serves
# (server/mail/nginx.conf). No parameter (hastack:mail.mtaSts none): no policy, nginx answers
# 404. A policy without version and mode, or an unreadable parameter, keeps the installed one.
sts="MTA-STS policy not updated"
if param mta-sts-policy 2>"$tmp/sts.err" | grep -v '^[[:space:]]*$' > "$tmp/mta-sts.txt" &&
  [ "$(head -n 1 "$tmp/mta-sts.txt")" = "version: STSv1" ] &&
  grep -Eq '^mode: (testing|enforce)$' "$tmp/mta-sts.txt"; then
  if ! cmp -s "$tmp/mta-sts.txt" "$MTA_STS_POLICY"; then
    install -m 0644 "$tmp/mta-sts.txt" "$MTA_STS_POLICY.hastack-new"
    mv -f "$MTA_STS_POLICY.hastack-new" "$MTA_STS_POLICY"
  fi
  sts="MTA-STS $(grep '^mode: ' "$MTA_STS_POLICY")"
elif grep -q ParameterNotFound "$tmp/sts.err"; then
  rm -f "$MTA_STS_POLICY"
  sts="no MTA-STS policy"
else
  log "$PREFIX/mta-sts-policy is unreadable or not an MTA-STS policy; keeping the installed one"
fi
log "$count users, peer $PEER_ROLE at $(cat "$STATE/peer-ip"); $nas; $dkim; $sts"
