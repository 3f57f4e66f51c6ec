#!/bin/bash
# hastack-mail-fallback — hastack's server/mail/hastack-mail-fallback.sh; components/mail.ts fills in its @@values@@.
# Run on the primary before a fallback: reverse sync from the standby (two-way), verify
# that both servers hold the same messages, then unfence so Route 53 sends traffic back.
set -euo pipefail
umask 077
log() { echo "hastack-mail-fallback: $*" >&2; }

@@SBIN_DIR@@/hastack-mail-sync --reverse
@@UNFENCE@@
log "reverse sync verified; fence released — the primary may take traffic again"
