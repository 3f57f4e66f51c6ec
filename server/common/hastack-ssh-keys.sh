#!/bin/bash
# hastack-ssh-keys ENV: SSH trust for syncs, replication and backup pulls, from SSM.
# server/common/hastack-ssh-keys.sh, env rendered by components/backup-jobs.ts (renderSshKeysEnv).
# Every accepted key is forced through rrsync.
set -euo pipefail
# The env file is rendered by components/ and its path is an argument: nothing to follow here.
# shellcheck source=/dev/null
. "${1:?usage: hastack-ssh-keys ENV}"
get() { # PARAMETER [--with-decryption]: retries while the stack is still creating it
  local v _
  for _ in $(seq 1 "${ATTEMPTS:-30}"); do
    if v=$(aws ssm get-parameter --region "$REGION" --name "$1" "${@:2}" --query Parameter.Value --output text 2>/dev/null) && [ -n "$v" ]; then
      printf '%s' "$v"
      return 0
    fi
    sleep 10
  done
  return 1
}
ssh_dir=${SSH_DIR:-/root/.ssh}
install -d -m 0700 "$ssh_dir"
if [ -n "${PRIVATE_KEY_PARAMETER:-}" ]; then
  key=$(get "$PRIVATE_KEY_PARAMETER" --with-decryption) || { echo "hastack-ssh-keys: cannot read $PRIVATE_KEY_PARAMETER" >&2; exit 1; }
  ( umask 077; printf '%s\n' "$key" >"$PRIVATE_KEY_PATH.new" )
  mv -f "$PRIVATE_KEY_PATH.new" "$PRIVATE_KEY_PATH"
fi
ak=$ssh_dir/authorized_keys
touch "$ak"
( umask 077; grep -v ' hastack-managed$' "$ak" >"$ak.new" || true )
for entry in ${AUTHORIZED:-}; do
  mode=${entry%%:*}
  parameter=${entry#*:}
  pub=$(get "$parameter") || { echo "hastack-ssh-keys: cannot read $parameter; not authorized" >&2; continue; }
  printf 'command="/usr/bin/rrsync -%s /",restrict %s hastack-managed\n' "$mode" "$pub" >>"$ak.new"
done
mv -f "$ak.new" "$ak"
