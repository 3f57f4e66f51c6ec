#!/bin/bash
# hastack-mail-migrate — hastack's server/mail/hastack-mail-migrate.sh; components/mail.ts fills in its @@values@@.
# Steps 3, 7 and 9 of the move from the old server: copy every user's mailboxes from it over
# IMAPS, one way (doveadm sync -1 -R: merge, delete nothing on this server) in every step:
# initial (step 3), final (step 7); retire (step 9) refuses while the old server still accepts
# SMTP on SMTP_PORT, repeats the final sync (at most 3 rounds) and refuses while any old
# mailbox holds a message this server lacks (counted by Message-ID). The old server must allow
# MASTER_USER to log in as any user and its master password must be in SSM at
# @@SSM_PREFIX@@/migration/master-password.
# usage: hastack-mail-migrate initial|final OLD_IP MASTER_USER PORT | retire OLD_IP MASTER_USER PORT SMTP_PORT
set -euo pipefail
umask 077
log() { echo "hastack-mail-migrate: $*" >&2; }

SBIN=@@SBIN_DIR@@
CONF=@@DOVECOT_CONF@@
PREFIX=@@SSM_PREFIX@@
OLD_NAME=@@HOSTNAME@@
usage="usage: hastack-mail-migrate initial|final OLD_IP MASTER_USER PORT | retire OLD_IP MASTER_USER PORT SMTP_PORT"
if [ $# -lt 4 ] || [ $# -ne "$([ "$1" = retire ] && echo 5 || echo 4)" ]; then log "$usage"; exit 2; fi
mode=$1 old_ip=$2 master=$3 port=$4 smtp_port=${5:-25}
case "$mode" in
  # Not doveadm backup -R for step 3: it fails ("INBOX can't be deleted", exit 65) once this
  # server's INBOX exists (a delivery, a login, an earlier run) and, before failing,
  # expunges what this server holds that the old server lacks.
  initial | final | retire) dsync=(sync -1 -R) ;;
  *) log "mode must be initial (step 3), final (step 7) or retire (step 9), got $mode"; exit 2 ;;
esac
if ! [[ "$smtp_port" =~ ^[0-9]+$ ]]; then log "SMTP_PORT must be a number, got $smtp_port"; exit 2; fi
if ! [[ "$old_ip" =~ ^[0-9]{1,3}(\.[0-9]{1,3}){3}$ ]]; then log "OLD_IP must be an IPv4 address, got $old_ip"; exit 2; fi
if ! [[ "$port" =~ ^[0-9]+$ ]]; then log "PORT must be a number, got $port"; exit 2; fi
if ! [[ "$master" =~ ^[A-Za-z0-9._@-]+$ ]]; then log "MASTER_USER has unexpected characters: $master"; exit 2; fi
# Step 9 must not take a last copy while the old server can still take mail after it.
if [ "$mode" = retire ] && timeout 10 bash -c "exec 3<>/dev/tcp/$old_ip/$smtp_port" 2>/dev/null; then
  log "refusing: the old server still accepts SMTP on $old_ip:$smtp_port; run hastack-mail-retire-old on it first (step 9), so no mail reaches it after this last sync"
  exit 1
fi
"$SBIN/hastack-mail-refresh" --require-users
users=$(doveadm -c "$CONF" user '*' | wc -l)

# The region for the SSM reads, unless the environment names it: hastack_region (the one
# IMDSv2 lookup, server/lib/hastack.sh, which every server gets at first boot).
if [ -z "${AWS_DEFAULT_REGION:-}" ]; then
  # shellcheck source=../lib/hastack.sh
  . "${HASTACK_LIB:-/usr/local/lib/hastack/hastack.sh}"
  AWS_DEFAULT_REGION=$(hastack_region)
  export AWS_DEFAULT_REGION
fi
tmp=$(mktemp -d)
tunnel=
cleanup() { if [ -n "$tunnel" ]; then kill "$tunnel" 2>/dev/null || true; fi; rm -rf "$tmp"; }
trap cleanup EXIT
# doveadm reads the generated config as the mail user: the directory is 0711, the password
# file 0600 root (read by doveadm before it drops privileges), never on a command line.
chmod 0711 "$tmp"
password=$(aws ssm get-parameter --with-decryption --name "$PREFIX/migration/master-password" --query Parameter.Value --output text)
printf 'imapc_password = %s\n' "$password" > "$tmp/password.conf"

# The TLS tunnel: verifies the old server's certificate against our shared host name.
lport=
for _ in 1 2 3 4 5; do
  candidate=$((30000 + RANDOM % 20000))
  socat -d TCP-LISTEN:"$candidate",bind=127.0.0.1,reuseaddr,fork \
    OPENSSL:"$old_ip":"$port",verify=1,@@CA@@,commonname="$OLD_NAME",snihost="$OLD_NAME",min-version=TLS1.2 \
    2>>"$tmp/tunnel.log" &
  tunnel=$!
  for _ in $(seq 1 50); do
    if ss -Hltn "sport = :$candidate" | grep -q .; then lport=$candidate; break; fi
    if ! kill -0 "$tunnel" 2>/dev/null; then break; fi
    sleep 0.1
  done
  if [ -n "$lport" ]; then break; fi
  kill "$tunnel" 2>/dev/null || true
  tunnel=
done
if [ -z "$lport" ]; then log "could not start the TLS tunnel to $old_ip:$port"; cat "$tmp/tunnel.log" >&2; exit 1; fi
cat > "$tmp/migrate.conf" <<CONF
!include $CONF
imapc_host = 127.0.0.1
imapc_port = $lport
imapc_ssl = no
imapc_user = %u
imapc_master_user = $master
imapc_features = rfc822.size fetch-headers
mail_prefetch_count = 20
!include $tmp/password.conf
CONF
removed=0
sync_round() {
  log "$mode: doveadm ${dsync[*]} for $users users from $OLD_NAME at $old_ip:$port (certificate verified)"
  local rc=0
  doveadm -c "$tmp/migrate.conf" "${dsync[@]}" -A imapc: || rc=$?
  if [ "$rc" -ne 0 ]; then
    log "$mode sync from the old server failed (doveadm exit $rc)"
    sed "s/^/tls tunnel: /" "$tmp/tunnel.log" | tail -n 5 >&2
    exit "$rc"
  fi
  while read -r user; do
    while IFS=$'\t' read -r mailbox uids; do
      unset seen; declare -A seen=()
      for uid in $uids; do
        sum=$(doveadm -c "$CONF" fetch -u "$user" text mailbox "$mailbox" uid "$uid" </dev/null | sha256sum | cut -d" " -f1)
        if [ -n "${seen[$sum]:-}" ]; then
          doveadm -c "$CONF" expunge -u "$user" mailbox "$mailbox" uid "$uid" </dev/null
          removed=$((removed + 1))
        else
          seen[$sum]=1
        fi
      done
    done < <(doveadm -c "$CONF" -f tab fetch -u "$user" 'mailbox uid hdr.message-id' ALL | tail -n +2 |
      awk -F'\t' '$3 != "" { k = $1 "\t" $3; n[k]++; u[k] = u[k] " " $2 }
        END { for (k in n) if (n[k] > 1) { split(k, p, "\t"); print p[1] "\t" u[k] } }')
  done < <(doveadm -c "$CONF" user '*')
}

TAB=$(printf '\t')
# retire: every message of every old mailbox must be here, counted by Message-ID (a message
# without one counts by number). Prints the users that miss mail; fails when any does.
id_counts() {
  tail -n +2 "$1" | sort | uniq -c | awk '{ c = $1; $1 = ""; sub(/^ /, ""); print ($0 == "" ? "<none>" : $0) "\t" c }' | LC_ALL=C sort -t "$TAB" -k 1,1
}
verify_round() {
  local user missing bad=0 total=0
  while read -r user; do
    if ! doveadm -c "$tmp/migrate.conf" -o mail_location=imapc: -f tab fetch -u "$user" hdr.message-id ALL </dev/null >"$tmp/old.ids"; then
      log "refusing: could not list $user's mail on the old server"
      exit 1
    fi
    doveadm -c "$CONF" -f tab fetch -u "$user" hdr.message-id ALL </dev/null >"$tmp/new.ids"
    id_counts "$tmp/old.ids" >"$tmp/old.counts"
    id_counts "$tmp/new.ids" >"$tmp/new.counts"
    missing=$(LC_ALL=C join -t "$TAB" -a 1 -e 0 -o 0,1.2,2.2 "$tmp/old.counts" "$tmp/new.counts" |
      awk -F"$TAB" '$2 > $3 { m += $2 - $3 } END { print m + 0 }')
    total=$((total + $(tail -n +2 "$tmp/old.ids" | wc -l)))
    if [ "$missing" -gt 0 ]; then
      log "$user: $missing message(s) on the old server are not here"
      bad=1
    fi
  done < <(doveadm -c "$CONF" user '*')
  log "checked $total message(s) on the old server: $([ "$bad" -eq 0 ] && echo "all here" || echo "some missing")"
  return "$bad"
}

started=$(date +%s)
sync_round
if [ "$mode" = retire ]; then
  round=1
  until verify_round; do
    if [ "$round" -ge 3 ]; then
      log "refusing: after $round final syncs the old server still holds mail this server lacks; do NOT shut it down"
      exit 1
    fi
    round=$((round + 1))
    sync_round
  done
  log "verified: every message of the old server's $users users is here ($round sync round(s)); it may be shut down"
fi
log "$mode sync of $users users done in $(( $(date +%s) - started )) s; $removed exact duplicates removed"
