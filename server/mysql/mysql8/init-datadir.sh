# shellcheck shell=bash
#: First-boot data directory for MySQL 8 (provision.sh): root@localhost without password but
#: reachable only over the local socket (auth_socket).
mysqld --initialize-insecure --user=mysql --datadir=@@DATADIR@@
