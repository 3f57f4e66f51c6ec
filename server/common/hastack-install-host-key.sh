#!/bin/bash
# hastack-install-host-key: installs this server's SSH host key and its peer's (issue 13).
# The stack generates every server's ed25519 host key (@pulumi/tls, secret) and keeps it in the
# server's SSM path; remote commands pin its public half (hostKey), and the peer pins it through
# /etc/ssh/ssh_known_hosts, so nobody trusts the first key a network path happens to show.
# usage: hastack-install-host-key HOST_KEY_PARAMETER KNOWN_HOSTS_PARAMETER
# Runs first in runcmd (cloud-init's final stage, after the AWS CLI is installed).
# HASTACK_SSH_DIR (default /etc/ssh) lets a test install into a scratch directory; sshd is
# reloaded only for the real one.
set -euo pipefail
# shellcheck source=server/lib/hastack.sh
. "${HASTACK_LIB:-/usr/local/lib/hastack/hastack.sh}"

key_parameter=$1
known_hosts_parameter=$2
dir=${HASTACK_SSH_DIR:-/etc/ssh}

key=$(hastack_ssm_get "$key_parameter" "${HASTACK_SSM_ATTEMPTS:-30}" 10) || {
  hastack_log "cannot read $key_parameter"
  exit 1
}
umask 077
tmp=$(mktemp "$dir/.hastack-host-key.XXXXXX")
trap 'rm -f "$tmp" "$tmp.pub"' EXIT
printf '%s\n' "$key" >"$tmp"
# Refuses anything that is not a private key, before the working key is touched.
ssh-keygen -y -f "$tmp" >"$tmp.pub"
chmod 0644 "$tmp.pub"
mv -f "$tmp.pub" "$dir/ssh_host_ed25519_key.pub"
mv -f "$tmp" "$dir/ssh_host_ed25519_key"
# Only the pinned key is offered: a client must never negotiate an unpinned key type.
rm -f "$dir"/ssh_host_rsa_key "$dir"/ssh_host_rsa_key.pub \
  "$dir"/ssh_host_ecdsa_key "$dir"/ssh_host_ecdsa_key.pub

# The peer's names and key ("name,name,ip ssh-ed25519 AAAA…"): it may be seconds younger.
if known=$(hastack_ssm_get "$known_hosts_parameter" "${HASTACK_SSM_ATTEMPTS:-30}" 10); then
  printf '%s\n' "$known" >"$dir/ssh_known_hosts.new"
  chmod 0644 "$dir/ssh_known_hosts.new"
  mv -f "$dir/ssh_known_hosts.new" "$dir/ssh_known_hosts"
else
  hastack_log "cannot read $known_hosts_parameter: the peer's key is not pinned yet"
fi

if [ -z "${HASTACK_SSH_DIR:-}" ]; then
  systemctl reload ssh.service 2>/dev/null || systemctl restart ssh.service
fi
hastack_log "host key installed: $(ssh-keygen -lf "$dir/ssh_host_ed25519_key.pub")"
