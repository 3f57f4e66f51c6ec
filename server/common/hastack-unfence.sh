#!/bin/sh
# Run only after this server's data has been synced back from the active side.
set -eu
rm -f "${HASTACK_FENCE_FILE:-/var/lib/hastack/fenced}"
logger -t hastack "unfenced by ${SUDO_USER:-root}" 2>/dev/null || true
echo "unfenced: Route 53 will see this server healthy within a few checks"
