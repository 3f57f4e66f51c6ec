#!/bin/bash
# hastack-mail-queue — hastack's server/mail/hastack-mail-queue.sh; components/mail.ts fills in its @@values@@.
# Mail this server accepted but has not delivered yet (issue 17), from Postfix's own report
# (`postqueue -j`, one JSON object per message, with the arrival time Postfix recorded):
#   metrics  writes queue size per queue and the oldest message's age to node_exporter's
#            textfile collector (run every minute by hastack-mail-queue.timer); a failed report
#            leaves the last-report timestamp behind, which monitoring alerts on;
#   flush    delivers the queue before this server is shut down or fenced for good
#            (`postqueue -f`, bounded wait) and refuses (exit 1, what is left listed) while
#            anything is still queued — held mail included, which nothing delivers by itself;
#   adopt OLD_QUEUE_DIR
#            moves the messages of a queue directory Postfix no longer uses (Debian's
#            /var/spool/postfix, before the queue moved to the data volume) into the configured
#            one, with Postfix stopped; `postsuper -s` then renames them to match their new inodes.
# The queue lives on the data volume (main.cf queue_directory): a dead server's queue comes back
# with its volume and Postfix delivers it when the server returns; a rebuild never deletes it.
# usage: hastack-mail-queue metrics | flush [--wait SECONDS] | adopt OLD_QUEUE_DIR
set -euo pipefail
umask 022
log() { echo "hastack-mail-queue: $*" >&2; }
usage() {
  log "usage: hastack-mail-queue metrics | flush [--wait SECONDS] | adopt OLD_QUEUE_DIR"
  exit 2
}

POSTFIX_DIR=@@POSTFIX_DIR@@
TEXTFILE_DIR=@@TEXTFILE_DIR@@
# Postfix's queues as postqueue names them (maildrop: posted locally, not picked up yet).
QUEUES="maildrop incoming active deferred hold"

# Prints "count oldest_arrival_time" per queue, one line each, in QUEUES order (0 0 when empty).
queue_report() {
  local report
  report=$(postqueue -c "$POSTFIX_DIR" -j) || return 1
  # Each line is one message; its own keys precede the recipients' (whose strings Postfix
  # escapes, so a delay reason cannot fake a key).
  printf '%s\n' "$report" | awk -v queues="$QUEUES" '
    BEGIN { n = split(queues, q, " "); for (i = 1; i <= n; i++) { count[q[i]] = 0; oldest[q[i]] = 0 } }
    NF == 0 { next }
    {
      if (!match($0, /"queue_name": *"[a-z]+"/)) { print "unparsable postqueue line: " $0 > "/dev/stderr"; bad = 1; next }
      name = substr($0, RSTART, RLENGTH); sub(/^"queue_name": *"/, "", name); sub(/"$/, "", name)
      if (!match($0, /"arrival_time": *[0-9]+/)) { print "no arrival_time: " $0 > "/dev/stderr"; bad = 1; next }
      t = substr($0, RSTART, RLENGTH); sub(/^"arrival_time": */, "", t)
      count[name]++
      if (oldest[name] == 0 || t + 0 < oldest[name]) { oldest[name] = t + 0 }
    }
    END { for (i = 1; i <= n; i++) { print q[i], count[q[i]], oldest[q[i]] }; exit bad }
  '
}

write_metrics() {
  local report now total=0 oldest=0 name count first tmp
  report=$(queue_report) || { log "postqueue -j failed: queue metrics not updated"; exit 1; }
  now=$(date +%s)
  mkdir -p "$TEXTFILE_DIR"
  tmp=$(mktemp "$TEXTFILE_DIR/.hastack_mail_queue.XXXXXX")
  {
    echo "# HELP hastack_mail_queue_messages Messages in the Postfix queue, per queue."
    echo "# TYPE hastack_mail_queue_messages gauge"
    while read -r name count first; do
      echo "hastack_mail_queue_messages{queue=\"$name\"} $count"
      total=$((total + count))
      if [ "$first" -gt 0 ] && { [ "$oldest" -eq 0 ] || [ "$first" -lt "$oldest" ]; }; then oldest=$first; fi
    done <<<"$report"
    echo "# HELP hastack_mail_queue_oldest_message_age_seconds Age of the oldest queued message (0 when the queue is empty)."
    echo "# TYPE hastack_mail_queue_oldest_message_age_seconds gauge"
    if [ "$oldest" -gt 0 ]; then
      echo "hastack_mail_queue_oldest_message_age_seconds $((now > oldest ? now - oldest : 0))"
    else
      echo "hastack_mail_queue_oldest_message_age_seconds 0"
    fi
    echo "# HELP hastack_mail_queue_last_report_timestamp_seconds When the queue was last read successfully."
    echo "# TYPE hastack_mail_queue_last_report_timestamp_seconds gauge"
    echo "hastack_mail_queue_last_report_timestamp_seconds $now"
  } >"$tmp"
  chmod 0644 "$tmp"
  mv "$tmp" "$TEXTFILE_DIR/hastack_mail_queue.prom"
  log "$total message(s) queued"
}

flush() {
  local wait_seconds=600 deadline report left held
  while [ $# -gt 0 ]; do
    case "$1" in
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
  if ! postfix -c "$POSTFIX_DIR" status 2>/dev/null; then
    log "Postfix is not running: start it so its queue can be delivered, then run this again"
    exit 1
  fi
  deadline=$((SECONDS + wait_seconds))
  while :; do
    report=$(queue_report)
    left=$(awk '{ n += $2 } END { print n + 0 }' <<<"$report")
    held=$(awk '$1 == "hold" { print $2 }' <<<"$report")
    if [ "$left" -eq 0 ]; then break; fi
    # Held mail waits for an operator: waiting longer cannot deliver it.
    if [ "$SECONDS" -ge "$deadline" ] || [ "$left" -eq "$held" ]; then
      log "refusing: $left message(s) still queued ($held on hold); do NOT shut this server down or fence it for good:"
      postqueue -c "$POSTFIX_DIR" -p >&2 || true
      log "fix their delivery (the reasons above; held mail: postsuper -H ALL), then run this again"
      exit 1
    fi
    postqueue -c "$POSTFIX_DIR" -f
    sleep 2
  done
  write_metrics
  log "the queue is empty: nothing is stranded if this server goes away"
}

adopt() {
  local old=${1:-} queue pid q f rel dir moved=0 kept=0
  if [ $# -ne 1 ] || [ -z "$old" ]; then usage; fi
  queue=$(postconf -c "$POSTFIX_DIR" -h queue_directory)
  if [ ! -d "$old" ] || [ "$(realpath -m "$old")" = "$(realpath -m "$queue")" ]; then
    log "nothing to adopt: $old is not another queue directory"
    return 0
  fi
  if postfix -c "$POSTFIX_DIR" status 2>/dev/null; then
    log "Postfix is running: stop it before its queue directory changes"
    exit 1
  fi
  pid=$(tr -d ' \n' <"$old/pid/master.pid" 2>/dev/null || true)
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    log "a Postfix still runs on $old (pid $pid): stop it first"
    exit 1
  fi
  # Creates the configured queue's missing directories with Postfix's owners and modes.
  postfix -c "$POSTFIX_DIR" check
  # Message files and their delivery logs; never sockets, pids or Postfix's private state.
  for q in maildrop incoming active deferred hold corrupt defer bounce trace; do
    [ -d "$old/$q" ] || continue
    while IFS= read -r -d '' f; do
      rel=${f#"$old"/}
      if [ -e "$queue/$rel" ]; then
        log "kept $f: $queue/$rel already exists"
        kept=$((kept + 1))
        continue
      fi
      dir=$(dirname "$rel")
      if [ ! -d "$queue/$dir" ]; then
        mkdir -p "$queue/$dir"
        chown --reference="$old/$dir" "$queue/$dir"
        chmod --reference="$old/$dir" "$queue/$dir"
      fi
      # Copied first, the original removed only once the copy is complete.
      cp -p "$f" "$queue/$rel"
      rm -f "$f"
      moved=$((moved + 1))
    done < <(find "$old/$q" -type f -print0)
  done
  if [ "$moved" -gt 0 ]; then
    # Short queue ids encode the file's inode: rename the moved files to match.
    postsuper -c "$POSTFIX_DIR" -s
  fi
  log "moved $moved queue file(s) from $old to $queue"
  if [ "$kept" -gt 0 ]; then
    log "$kept file(s) left in $old (names taken in $queue): move them by hand, then postsuper -s"
    exit 1
  fi
}

case "${1:-}" in
  metrics) write_metrics ;;
  flush)
    shift
    flush "$@"
    ;;
  adopt)
    shift
    adopt "$@"
    ;;
  *) usage ;;
esac
