#!/bin/sh
# Adds this interface's secondary private IPv4 addresses, read from IMDSv2.
set -eu
imds=http://169.254.169.254/latest
token=$(curl -sf -X PUT -H "X-aws-ec2-metadata-token-ttl-seconds: 300" "$imds/api/token")
md() { curl -sf -H "X-aws-ec2-metadata-token: $token" "$imds/meta-data/$1"; }
mac=$(md mac)
primary=$(md local-ipv4)
prefix=$(md "network/interfaces/macs/$mac/subnet-ipv4-cidr-block" | cut -d/ -f2)
# `ip -o link` names a link with a peer or parent "ens5@if7:" (veth, VLAN): the name ends at "@".
dev=$(ip -o link | awk -v mac="$mac" 'index($0, mac) { sub(":", "", $2); sub("@.*", "", $2); print $2; exit }')
for addr in $(md "network/interfaces/macs/$mac/local-ipv4s"); do
  [ "$addr" = "$primary" ] || ip addr replace "$addr/$prefix" dev "$dev"
done
