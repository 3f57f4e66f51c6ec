# shellcheck shell=bash
#: MariaDB part of rejoin_peer (role-change/toolkit.sh): where replication resumes.
# Resume from everything this server already has (its own writes included).
  local_sql -e "STOP SLAVE; SET GLOBAL gtid_slave_pos = @@GLOBAL.gtid_binlog_pos"
