#!/usr/bin/env bash
# Installs the real daemons and checkers the test suite runs against (Debian packages).
# Idempotent: skips apt entirely when every tool is already on PATH. Never starts services:
# the tests start their own instances on loopback and stop them.
set -euo pipefail

PACKAGES=(postfix dovecot-core dovecot-imapd dovecot-pop3d dovecot-lmtpd mariadb-server mariadb-backup
  cloud-init prometheus prometheus-blackbox-exporter bind9-utils rsync swaks iproute2
  unixodbc odbc-mariadb systemd socat shellcheck pyflakes3
  systemd-container mmdebstrap dpkg-dev bind9 bind9-dnsutils unbound nftables openssh-client openssl
  util-linux openssh-server opendkim python3-dkim python3-dnspython libnet-ssleay-perl
  libio-socket-ssl-perl conntrack sqlite3 php-cli pebble certbot python3-certbot-dns-rfc2136
  python3-certbot-dns-route53 nginx curl)
TOOLS=(postconf doveconf dovecot doveadm mariadbd mariadb mariadb-backup cloud-init promtool
  prometheus-blackbox-exporter named-checkzone rsync swaks ip /usr/lib/dovecot/lmtp
  rrsync isql systemd-analyze socat shellcheck pyflakes3
  systemd-nspawn mmdebstrap dpkg-scanpackages named rndc dig unbound nft ssh ssh-keygen ssh-keyscan openssl nsenter sshd
  opendkim flock conntrack sqlite3 php pebble certbot nginx curl)

missing=()
for tool in "${TOOLS[@]}"; do
  command -v "$tool" >/dev/null 2>&1 || [ -x "/usr/sbin/$tool" ] || missing+=("$tool")
done
# certbot's RFC 2136 plugin (the ACME test's DNS-01 against bind9) is a module, not a command.
/usr/bin/python3 -c "import certbot_dns_rfc2136" 2>/dev/null || missing+=("certbot-dns-rfc2136")
if [ "${#missing[@]}" -eq 0 ]; then
  echo "install-deps: all test tools present (${TOOLS[*]})"
  exit 0
fi
echo "install-deps: missing ${missing[*]}; installing Debian packages: ${PACKAGES[*]}"
if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: must run as root (apt-get install) — or install: ${PACKAGES[*]}" >&2
  exit 1
fi

# Keep package post-install scripts from starting system daemons (we start our own on loopback).
created_policy=0
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
  chmod +x /usr/sbin/policy-rc.d
  created_policy=1
fi
cleanup() { [ "$created_policy" -eq 1 ] && rm -f /usr/sbin/policy-rc.d; return 0; }
trap cleanup EXIT

export DEBIAN_FRONTEND=noninteractive
echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
echo "postfix postfix/mailname string localhost" | debconf-set-selections
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" >/tmp/hastack-apt.log 2>&1 || {
  tail -n 40 /tmp/hastack-apt.log >&2
  echo "install-deps: apt-get install failed (full log: /tmp/hastack-apt.log)" >&2
  exit 1
}
echo "install-deps: installed ${PACKAGES[*]}"
