#!/bin/bash
# hastack-pbx-install: make sure Asterisk/FreePBX is installed (server/pbx/).
set -euo pipefail
# Rendered by components/pbx.ts (renderPbxInstallEnv) at boot: nothing to follow here.
# shellcheck source=/dev/null
. /etc/hastack/pbx-install.env
if [ -x /usr/sbin/asterisk ]; then
  echo "hastack-pbx-install: Asterisk present ($(/usr/sbin/asterisk -V 2>/dev/null || echo unknown version))"
  exit 0
fi
if [ -z "${INSTALLER_URL:-}" ] || [ -z "${INSTALLER_SHA256:-}" ]; then
  echo "hastack-pbx-install: no Asterisk on this AMI and no hastack:pbx.installer {url, sha256}: bake FreePBX into hastack:pbx.ami or pin an installer" >&2
  exit 1
fi
installer=/root/hastack-freepbx-install.sh
curl -fsSL --retry 5 --max-time 600 -o "$installer" "$INSTALLER_URL"
echo "$INSTALLER_SHA256  $installer" | sha256sum --strict -c - || { echo "hastack-pbx-install: installer checksum mismatch, not running it" >&2; exit 1; }
bash "$installer"
