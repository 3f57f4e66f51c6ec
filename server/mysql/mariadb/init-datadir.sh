# shellcheck shell=bash
#: First-boot data directory for MariaDB (provision.sh): root@localhost by unix_socket only.
mariadb-install-db --user=mysql --datadir=@@DATADIR@@ --skip-test-db --auth-root-authentication-method=socket
