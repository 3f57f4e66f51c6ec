#!/bin/bash
# hastack-pbx-sqlite-copy SRC DEST: a consistent copy of a live SQLite database (Asterisk's
# astdb, Elastix's /var/www/db/*.db) taken with SQLite's online backup (`.backup`), never a file
# copy: Asterisk writes while the copy runs, and rsync of a live database file can tear it
# (issue 16). The copy must pass PRAGMA integrity_check before it replaces DEST (atomic rename),
# so DEST is always a whole database: the old one or the new one.
# env: SQLITE_BUSY_MS (20000) a writer's lock is waited for; COPY_RETRY_SECONDS (1) retry n waits n × it.
set -euo pipefail
src=${1:?usage: hastack-pbx-sqlite-copy SRC DEST}
dest=${2:?usage: hastack-pbx-sqlite-copy SRC DEST}
case "$dest" in
  *"'"*) echo "hastack-pbx-sqlite-copy: DEST must not contain a single quote: $dest" >&2; exit 2 ;;
esac
[ -r "$src" ] || { echo "hastack-pbx-sqlite-copy: cannot read $src" >&2; exit 1; }
tmp=$dest.part
rm -f "$tmp"
mkdir -p "$(dirname "$dest")"
# Read-only on the source. The copy runs inside one read transaction (taken with a bounded wait
# for a writer's lock): no commit can land halfway, so the backup never restarts or tears;
# writers wait the few milliseconds the copy takes. A busy source is retried, bounded.
copied=no
for attempt in 1 2 3 4 5; do
  rm -f "$tmp"
  if sqlite3 -readonly -bail "$src" ".timeout ${SQLITE_BUSY_MS:-20000}" \
    "BEGIN" "SELECT count(*) FROM sqlite_master" ".backup '$tmp'" "COMMIT" >/dev/null; then
    copied=yes
    break
  fi
  echo "hastack-pbx-sqlite-copy: $src busy (attempt $attempt/5), retrying" >&2
  sleep "$((attempt * ${COPY_RETRY_SECONDS:-1}))"
done
[ "$copied" = yes ] || { echo "hastack-pbx-sqlite-copy: could not copy $src" >&2; exit 1; }
check=$(sqlite3 -readonly "$tmp" 'PRAGMA integrity_check;')
if [ "$check" != ok ]; then
  rm -f "$tmp"
  echo "hastack-pbx-sqlite-copy: the copy of $src fails integrity_check: $check" >&2
  exit 1
fi
mv -f "$tmp" "$dest"
