#!/bin/bash
# hastack-mail-retire-old — runs ON THE OLD mail server (Postfix), between migration steps 8 and
# 9 (README "Moving mail to a new server"; issue 18). Step 8 took the old server out of the MX
# set while it still accepted mail; once senders' cached MX sets have expired (the MX TTL):
#   1. it stops accepting mail: every Postfix smtpd listener (25, 587, 465) is disabled and
#      Postfix reloaded, so no message can reach this server after the new server's last sync;
#   2. it delivers what the queue holds (flush, bounded wait);
#   3. it refuses (exit 1, the queue listed) while the queue still holds mail: shutting the
#      server down then would lose that mail.
# Then apply phase 9: its check on the new server repeats the final sync and refuses while any
# mailbox here holds mail the new servers lack. Power this server off only after that.
# usage: hastack-mail-retire-old [--config-dir DIR] [--wait SECONDS]
set -euo pipefail
umask 077
log() { echo "hastack-mail-retire-old: $*" >&2; }
usage() {
  log "usage: hastack-mail-retire-old [--config-dir DIR] [--wait SECONDS]"
  exit 2
}

config_dir=/etc/postfix
wait_seconds=600
while [ $# -gt 0 ]; do
  case "$1" in
    --config-dir)
      [ $# -ge 2 ] || usage
      config_dir=$2
      shift 2
      ;;
    --wait)
      [ $# -ge 2 ] || usage
      wait_seconds=$2
      shift 2
      ;;
    *) usage ;;
  esac
done
if ! [[ "$wait_seconds" =~ ^[0-9]+$ ]]; then
  log "--wait must be a whole number of seconds, got $wait_seconds"
  exit 2
fi
if [ ! -f "$config_dir/main.cf" ]; then
  log "--config-dir $config_dir holds no main.cf: is this the old Postfix server?"
  exit 2
fi
if ! postfix -c "$config_dir" status 2>/dev/null; then
  log "Postfix is not running: start it so its queue can be delivered, then run this again"
  exit 1
fi

# 1. No more mail in: comment out every smtpd listener (master.cf keeps them for a rollback:
#    postconf -c DIR -M- to list, or restore master.cf from its backup).
cp -p "$config_dir/master.cf" "$config_dir/master.cf.hastack-retire.$(date +%Y%m%d%H%M%S)"
mapfile -t listeners < <(postconf -c "$config_dir" -M | awk '$2 == "inet" && $8 == "smtpd" { print $1 "/inet" }')
for listener in "${listeners[@]}"; do
  postconf -c "$config_dir" -M# "$listener"
done
postfix -c "$config_dir" reload
log "stopped accepting mail: disabled ${#listeners[@]} smtpd listener(s) ${listeners[*]:-}"

# 2. and 3. Deliver the queue, bounded; refuse while anything is left.
deadline=$((SECONDS + wait_seconds))
while :; do
  queued=$(postqueue -c "$config_dir" -j | wc -l)
  if [ "$queued" -eq 0 ]; then
    break
  fi
  if [ "$SECONDS" -ge "$deadline" ]; then
    log "refusing: $queued message(s) still queued after ${wait_seconds} s; do NOT shut this server down:"
    postqueue -c "$config_dir" -p >&2 || true
    log "fix their delivery (postqueue -p shows why), then run this again"
    exit 1
  fi
  postqueue -c "$config_dir" -f
  sleep 2
done
log "the queue is empty and no mail can arrive: apply migration phase 9 on the new stack now"
