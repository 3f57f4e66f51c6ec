#: CHANGE MASTER TO with MariaDB's GTID position (start_replication in role-change/toolkit.sh).
CHANGE MASTER TO MASTER_HOST='@@HOST@@', MASTER_PORT=@@PORT@@, MASTER_USER='@@USER@@', MASTER_PASSWORD='@@PASSWORD@@', MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=5;
