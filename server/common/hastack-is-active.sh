#!/bin/bash
# hastack-is-active NAME: exit 0 if NAME resolves to one of this server's public IPv4 addresses.
set -euo pipefail
name=${1:?usage: hastack-is-active NAME}
want=$(getent ahostsv4 "$name" | awk 'NR == 1 { print $1 }')
[ -n "$want" ] || { echo "hastack-is-active: cannot resolve $name" >&2; exit 2; }
imds=http://169.254.169.254/latest
token=$(curl -sf --max-time 5 -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 60' "$imds/api/token")
md() { curl -sf --max-time 5 -H "X-aws-ec2-metadata-token: $token" "$imds/meta-data/$1"; }
for mac in $(md network/interfaces/macs/); do
  for ip in $(md "network/interfaces/macs/${mac%/}/public-ipv4s" || true); do
    [ "$ip" = "$want" ] && exit 0
  done
done
exit 1
