#!/bin/bash
# hastack-mail-setup — hastack's server/mail/hastack-mail-setup.sh; components/mail.ts fills in its @@values@@.
# First boot of a mail server: mail user, Maildir root, certificate, configs, users, timers.
set -euo pipefail
umask 077
log() { echo "hastack-mail-setup: $*" >&2; }

# Values rendered by the stack, each one shell word.
CERT_NAME=@@HOSTNAME@@
CERT_SAN=@@SAN@@

if ! getent group @@MAIL_GROUP@@ >/dev/null; then groupadd --system --gid @@MAIL_UID@@ @@MAIL_GROUP@@; fi
if ! getent passwd @@MAIL_USER@@ >/dev/null; then
  useradd --system --uid @@MAIL_UID@@ --gid @@MAIL_GROUP@@ --home-dir @@MAIL_ROOT@@ --no-create-home --shell /usr/sbin/nologin @@MAIL_USER@@
fi
install -d -o @@MAIL_USER@@ -g @@MAIL_GROUP@@ -m 0750 @@MAIL_ROOT@@
install -d -m 0755 @@STATE_DIR@@
install -d -m 0700 "$(dirname @@TLS_KEY@@)"
# The certificate lives on the data volume: it survives a rebuilt root volume.
if [ ! -s @@TLS_CERT@@ ] || [ ! -s @@TLS_KEY@@ ]; then
  openssl req -x509 -newkey rsa:3072 -nodes -days 825 -subj "/CN=$CERT_NAME" \
    -addext "subjectAltName=$CERT_SAN" -keyout @@TLS_KEY@@ -out @@TLS_CERT@@
  chmod 0600 @@TLS_KEY@@
  log "made a self-signed certificate: the first-boot fallback until ACME's is installed"
fi
install -m 0644 @@STAGING_DIR@@/main.cf @@POSTFIX_DIR@@/main.cf
install -m 0644 @@STAGING_DIR@@/master.cf @@POSTFIX_DIR@@/master.cf
install -m 0644 @@STAGING_DIR@@/virtual @@POSTFIX_DIR@@/virtual
install -m 0644 @@STAGING_DIR@@/dovecot.conf @@DOVECOT_CONF@@
install -m 0644 @@STAGING_DIR@@/opendkim.conf @@OPENDKIM_CONF@@
install -m 0644 @@STAGING_DIR@@/nginx.conf @@WEB_CONF@@
touch @@POSTFIX_DIR@@/vmailbox
# The queue lives on the data volume (main.cf queue_directory): mail accepted but not delivered
# survives a rebuilt root volume and comes back with a dead server's volume, where Postfix
# delivers it on start. Whatever the package's first start queued in Debian's directory moves
# there (Postfix stopped; nothing on the volume is ever overwritten or removed).
systemctl stop postfix
install -d -m 0755 @@QUEUE_DIR@@
if ! @@SBIN_DIR@@/hastack-mail-queue adopt @@OLD_QUEUE_DIR@@; then
  log "some queued mail stayed in @@OLD_QUEUE_DIR@@ (see above): move it by hand, then postsuper -s"
fi
# Creates the queue's missing directories (private/ holds Dovecot's LMTP and auth sockets).
postfix check
echo @@DOMAIN@@ > /etc/mailname
# IAM instance profiles take seconds to work after launch: retry for up to 5 minutes.
for attempt in $(seq 1 30); do
  if @@SBIN_DIR@@/hastack-mail-refresh; then break; fi
  if [ "$attempt" -eq 30 ]; then log "users and secrets still unreadable from SSM; the refresh timer keeps trying"; fi
  sleep 10
done
# The real certificate (ACME DNS-01) for the service name and both server names, before any
# daemon serves TLS — on the standby too, which must hold it before it ever takes traffic. If it
# fails, the self-signed one stays and hastack-mail-cert.timer retries every hour.
if ! @@SBIN_DIR@@/hastack-mail-cert obtain; then
  log "no ACME certificate yet; serving the self-signed one until hastack-mail-cert.timer obtains it"
fi
systemctl daemon-reload
systemctl enable opendkim dovecot postfix nginx
systemctl restart opendkim dovecot postfix nginx
systemctl enable --now hastack-mail-refresh.timer hastack-mail-queue.timer hastack-mail-cert.timer
@@SYNC_TIMER@@
log "mail server ready"
