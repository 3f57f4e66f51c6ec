#: CHANGE MASTER TO with MariaDB's GTID position (start_replication in role-change/toolkit.sh),
#: over TLS verified against the pair's CA (the certificate names the pair, not the peer's IP).
CHANGE MASTER TO MASTER_HOST='@@HOST@@', MASTER_PORT=@@PORT@@, MASTER_USER='@@USER@@', MASTER_PASSWORD='@@PASSWORD@@', MASTER_USE_GTID=slave_pos, MASTER_SSL=1, MASTER_SSL_CA='@@SSL_CA@@', MASTER_CONNECT_RETRY=5;
