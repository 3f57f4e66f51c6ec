#!/bin/bash
# hastack-mail-sync — hastack's server/mail/hastack-mail-sync.sh; components/mail.ts fills in its @@values@@.
# Two-way dsync (doveadm sync) of every mailbox with the peer server over the doveadm
# protocol (tcp @@DOVEADM_PORT@@, open only between the two servers). Run by the primary's timer
# every sync interval; being two-way, it is also the reverse sync before a fallback.
# usage: hastack-mail-sync [--verify | --reverse]
set -euo pipefail
umask 077
log() { echo "hastack-mail-sync: $*" >&2; }

SBIN=@@SBIN_DIR@@
STATE=@@STATE_DIR@@
TEXTFILE_DIR=@@TEXTFILE_DIR@@
ROLE=@@ROLE@@
verify=0
case "${1:-}" in
  "") ;;
  --verify) verify=1 ;;
  # Two-way already carries what the peer took while it served; --reverse adds the proof.
  --reverse) verify=1; log "reverse sync: two-way, so everything the peer holds comes here too" ;;
  *) log "unknown argument $1 (expected --verify or --reverse)"; exit 2 ;;
esac
mkdir -p "$STATE"
exec 9>"$STATE/sync.lock"
if ! flock -w 600 9; then log "another sync has held the lock for 10 minutes; giving up"; exit 75; fi
"$SBIN/hastack-mail-refresh"
PEER=$(cat "$STATE/peer-ip")
if [ "$ROLE" = primary ]; then PEER_ROLE=standby; else PEER_ROLE=primary; fi
# Tabs dropped: over the doveadm protocol (-S) Dovecot 2.3.19 can split a long value (a Maildir
# message's GUID is its file name) with a tab where its output is chunked, so the same message
# read locally and remotely differed (the mail drill, 2026-12-01).
guids() { doveadm -c @@DOVECOT_CONF@@ -f tab fetch "$@" 'mailbox guid' ALL | tr -d '\t' | sort; }
if [ "$verify" -eq 1 ]; then
  # What each side holds as the sync begins, per user (checked after it; see the end).
  snap="$STATE/verify"
  rm -rf "$snap" && mkdir -p "$snap"
  users=$(doveadm -c @@DOVECOT_CONF@@ user '*')
  n=0
  for user in $users; do
    guids -u "$user" > "$snap/$n.here"
    guids -S "$PEER:@@DOVEADM_PORT@@" -u "$user" > "$snap/$n.there"
    n=$((n + 1))
  done
fi
started=$(date +%s)
rc=0
# -f (full): the default fast sync skips a mailbox whose uidvalidity, uidnext, message count and
# modseqs match, which is the case for one new message on each side after a sync: neither moved.
# Its warnings are kept for the check below (and still logged).
err=$(doveadm -c @@DOVECOT_CONF@@ sync -A -f -l 60 -T 300 "tcp:$PEER:@@DOVEADM_PORT@@" 2>&1) || rc=$?
[ -z "$err" ] || echo "$err" >&2
# A mailbox made on both servers before any sync carried it (a new user's INBOX, made by the first
# delivery on each side: a failover, or the standby as second MX; a Sent made by a client on each)
# has a GUID on each, and Dovecot 2.3.19's two-way dsync swaps the two at every pass without
# copying a message ("Remote lost mailbox GUID"; with -A the exit code is the last user's). A
# one-way pass (-1: the peer takes this server's GUID and messages, keeps its own messages and
# deletes nothing) gives each mailbox one GUID; the two-way pass after it brings the peer's here.
if [[ $err == *"lost mailbox GUID"* ]]; then
  log "two GUIDs: one-way pass first"
  doveadm -c @@DOVECOT_CONF@@ sync -1 -A -f -l 60 -T 300 "tcp:$PEER:@@DOVEADM_PORT@@" || [ $? -eq 2 ]
  rc=2
fi
# 2 = synced without errors but something changed meanwhile: one more pass settles it.
if [ "$rc" -eq 2 ]; then
  rc=0
  doveadm -c @@DOVECOT_CONF@@ sync -A -f -l 60 -T 300 "tcp:$PEER:@@DOVEADM_PORT@@" || rc=$?
fi
if [ "$rc" -eq 75 ]; then
  # EX_TEMPFAIL: no connection (the peer is not up yet, or is down). Not this server's failure:
  # the unit treats 75 as "try at the next timer"; the metric below stays old and its age alerts.
  log "cannot reach $PEER (doveadm exit 75): nothing synced; last sync $(cat "$STATE/last-sync" 2>/dev/null || echo never)"
  exit 75
fi
if [ "$rc" -ne 0 ]; then log "sync with $PEER failed (doveadm exit $rc)"; exit "$rc"; fi
date +%s > "$STATE/last-sync"
# The metric monitoring alerts on: the peer's copy is current as of now (written atomically).
mkdir -p "$TEXTFILE_DIR"
metric=$(mktemp "$TEXTFILE_DIR/.hastack_replication.XXXXXX")
printf 'hastack_replication_last_success_timestamp_seconds{service="mail",side="%s"} %s\n' "$PEER_ROLE" "$(date +%s)" > "$metric"
chmod 0644 "$metric" && mv "$metric" "$TEXTFILE_DIR/hastack_replication_mail.prom"
log "synced every mailbox with $PEER in $(( $(date +%s) - started )) s"
if [ "$verify" -eq 1 ]; then
  # Everything either server held when the sync began must now be on both. Not "both hold the same
  # now": mail keeps arriving at the active server (a sender's retries after an outage), so a
  # check of the present races it. Message GUIDs per mailbox name, not counts (two sides holding
  # one different message each have equal counts); sorted lists in files, never bodies.
  differ=0 n=0
  for user in $users; do
    guids -u "$user" > "$snap/$n.here.after"
    guids -S "$PEER:@@DOVEADM_PORT@@" -u "$user" > "$snap/$n.there.after"
    gone_here=$(comm -23 "$snap/$n.there" "$snap/$n.here.after" | wc -l)
    gone_there=$(comm -23 "$snap/$n.here" "$snap/$n.there.after" | wc -l)
    n=$((n + 1))
    if [ "$gone_here" -ne 0 ] || [ "$gone_there" -ne 0 ]; then
      log "$user: messages differ from $PEER ($gone_here of its not here, $gone_there of ours not there)"
      differ=1
    fi
  done
  rm -rf "$snap"
  if [ "$differ" -ne 0 ]; then exit 1; fi
  log "verified: $n users hold the same messages (GUIDs per mailbox) on both servers"
fi
