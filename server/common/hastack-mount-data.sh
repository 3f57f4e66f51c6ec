#!/bin/sh
# Formats the data volume only when it holds no filesystem, then mounts it at /srv/data.
set -eu
mkdir -p /var/lib/hastack /srv/data
if grep -q ' /srv/data ' /proc/mounts; then exit 0; fi
root_disk=$(lsblk -no PKNAME "$(findmnt -no SOURCE /)")
dev=""
i=0
while [ "$i" -lt 60 ]; do
  dev=$(lsblk -dpno NAME,TYPE | awk '$2 == "disk" { print $1 }' | grep -v "/dev/$root_disk\$" | head -n 1 || true)
  [ -n "$dev" ] && break
  i=$((i + 1))
  sleep 5
done
[ -n "$dev" ] || { echo "hastack: data volume not attached after 300 s" >&2; exit 1; }
blkid "$dev" >/dev/null 2>&1 || mkfs.ext4 -q -L hastack-data "$dev"
grep -q 'LABEL=hastack-data' /etc/fstab || echo 'LABEL=hastack-data /srv/data ext4 defaults,nofail 0 2' >> /etc/fstab
mount /srv/data
