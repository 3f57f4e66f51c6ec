#!/bin/bash
# hastack-mysql-provision (@@ENGINE@@): rendered by components/mysql-scripts.ts. Idempotent.
set -euo pipefail
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
