#!/bin/bash
# hastack-mail-cert — hastack's server/mail/hastack-mail-cert.sh; components/mail.ts fills in its @@values@@.
# The mail server's certificate from ACME (issue 17): DNS-01 on the stack's own Route 53 zone
# (certbot's Route 53 plugin; the instance profile may change only the _acme-challenge records
# of the pair's names), so both servers — the standby too, which takes no traffic — hold a
# valid certificate for the service name before they ever serve it. certbot's state lives on
# the data volume (a rebuild keeps the account and the certificate).
#   obtain  first boot: a certificate for the service name and both server names, unless a
#           valid one is there; on failure the first-boot self-signed certificate stays
#   renew   the timer (twice a day): renews what is due (certbot renew, with any extra certbot
#           arguments given), or obtains what is missing
#   deploy  certbot's deploy hook: installs the new certificate where Postfix, Dovecot and
#           nginx (the MTA-STS policy) read it (atomically) and reloads them
# usage: hastack-mail-cert obtain | renew [CERTBOT_ARGS...] | deploy
set -euo pipefail
umask 077
log() { echo "hastack-mail-cert: $*" >&2; }

ACME_DIR=@@ACME_DIR@@
TLS_CERT=@@TLS_CERT@@
TLS_KEY=@@TLS_KEY@@
POSTFIX_DIR=@@POSTFIX_DIR@@
DOVECOT_CONF=@@DOVECOT_CONF@@
WEB_CONF=@@WEB_CONF@@
SBIN=@@SBIN_DIR@@
NAMES=(@@CERT_NAMES@@)
CONTACT=@@CONTACT@@
# The challenge plugin and ACME directory: Route 53 and Let's Encrypt in production.
PLUGIN_ARGS=(@@ACME_ARGS@@)
LINEAGE=hastack-mail

certbot_() {
  certbot --non-interactive --config-dir "$ACME_DIR/config" --work-dir "$ACME_DIR/work" \
    --logs-dir "$ACME_DIR/logs" "$@"
}

obtain() {
  local domains=() name
  for name in "${NAMES[@]}"; do domains+=(-d "$name"); done
  install -d -m 0700 "$ACME_DIR"
  certbot_ certonly --agree-tos -m "$CONTACT" --cert-name "$LINEAGE" --keep-until-expiring --expand \
    --key-type ecdsa --deploy-hook "$SBIN/hastack-mail-cert deploy" \
    "${PLUGIN_ARGS[@]}" "${domains[@]}"
  # A certificate that was already valid: certbot ran no deploy hook, but it may not be installed.
  RENEWED_LINEAGE=$ACME_DIR/config/live/$LINEAGE deploy
}

renew() {
  if [ ! -d "$ACME_DIR/config/renewal" ] || [ ! -f "$ACME_DIR/config/renewal/$LINEAGE.conf" ]; then
    log "no ACME certificate yet: obtaining one"
    obtain
    return
  fi
  certbot_ renew --cert-name "$LINEAGE" --deploy-hook "$SBIN/hastack-mail-cert deploy" "$@"
}

deploy() {
  local live=${RENEWED_LINEAGE:?deploy runs as certbot\'s deploy hook (RENEWED_LINEAGE)}
  openssl x509 -in "$live/fullchain.pem" -noout -checkend 0 >/dev/null ||
    { log "$live/fullchain.pem is not a valid certificate; keeping the installed one"; exit 1; }
  if cmp -s "$live/fullchain.pem" "$TLS_CERT" && cmp -s "$live/privkey.pem" "$TLS_KEY"; then
    return 0
  fi
  install -d -m 0700 "$(dirname "$TLS_CERT")" "$(dirname "$TLS_KEY")"
  # Key and certificate replaced by renames: a reader sees the old pair or the new one.
  install -m 0600 "$live/privkey.pem" "$TLS_KEY.hastack-new"
  install -m 0644 "$live/fullchain.pem" "$TLS_CERT.hastack-new"
  mv -f "$TLS_KEY.hastack-new" "$TLS_KEY"
  mv -f "$TLS_CERT.hastack-new" "$TLS_CERT"
  if postfix -c "$POSTFIX_DIR" status >/dev/null 2>&1; then postfix -c "$POSTFIX_DIR" reload >/dev/null 2>&1 || true; fi
  doveadm -c "$DOVECOT_CONF" reload >/dev/null 2>&1 || true
  nginx -c "$WEB_CONF" -s reload >/dev/null 2>&1 || true
  log "installed $(openssl x509 -in "$TLS_CERT" -noout -subject -enddate | tr '\n' ' ')"
}

case "${1:-}" in
  obtain) obtain ;;
  renew)
    shift
    renew "$@"
    ;;
  deploy) deploy ;;
  *)
    log "usage: hastack-mail-cert obtain | renew [CERTBOT_ARGS...] | deploy"
    exit 2
    ;;
esac
