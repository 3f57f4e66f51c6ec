#!/bin/bash
# hastack-mysql-provision (@@ENGINE@@): rendered by components/mysql-scripts.ts. Idempotent.
set -euo pipefail
# The pair's TLS certificate and key (issue 13), from SSM: the stack generates them, so both
# servers trust one CA without a first-boot race between them. Without them the server starts
# without TLS and replication (REQUIRE SSL) refuses to run: setup and bootstrap fail loudly.
# Fetched first, before 60-hastack.cnf (which names them) is installed: mariadb-install-db reads
# that file and logged "Failed to setup SSL" without them (found by the stack rehearsal, issue 11).
# shellcheck source=../lib/hastack.sh
. "${HASTACK_LIB:-@@LIB_PATH@@}"
HASTACK_LOG_TAG=hastack-mysql-provision
install -d -o root -g mysql -m 0750 @@TLS_DIR@@
for pair in ca:ca.pem cert:server.pem key:server-key.pem; do
  if hastack_ssm_get "@@SSM_TLS_PREFIX@@-${pair%%:*}" 30 10 >"@@TLS_DIR@@/${pair#*:}.new"; then
    chgrp mysql "@@TLS_DIR@@/${pair#*:}.new"
    chmod 0640 "@@TLS_DIR@@/${pair#*:}.new"
    mv -f "@@TLS_DIR@@/${pair#*:}.new" "@@TLS_DIR@@/${pair#*:}"
  else
    rm -f "@@TLS_DIR@@/${pair#*:}.new"
    hastack_log "warning: cannot read @@SSM_TLS_PREFIX@@-${pair%%:*} from SSM: no TLS"
  fi
done
install -m 0644 @@STAGING_DIR@@/60-hastack.cnf @@CONF_DIR@@/60-hastack.cnf
[ -f @@CONF_DIR@@/90-hastack-role.cnf ] || install -m 0644 @@STAGING_DIR@@/90-hastack-role.cnf @@CONF_DIR@@/90-hastack-role.cnf
install -d /etc/systemd/system/@@SERVICE@@.service.d
install -m 0644 @@STAGING_DIR@@/boot-role.conf /etc/systemd/system/@@SERVICE@@.service.d/60-hastack-role.conf
systemctl daemon-reload
systemctl stop @@SERVICE@@ || true
if [ ! -d @@DATADIR@@/mysql ]; then
  install -d -o mysql -g mysql -m 0750 @@DATADIR@@
  @@INIT_DATADIR@@
fi
systemctl enable @@SERVICE@@
systemctl start @@SERVICE@@
# Remote role commands pass their parameters as HASTACK_* environment variables.
systemctl reload ssh || systemctl reload sshd || true
