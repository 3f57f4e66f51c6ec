# shellcheck shell=bash
#: Main part of hastack-mysql-boot-role, shipped after header.sh only (it lands in user-data,
#: where cloud-init also installs server/lib/hastack.sh at @@LIB_PATH@@).
# --- boot-role ---
# shellcheck source=../../lib/hastack.sh
. "${HASTACK_LIB:-@@LIB_PATH@@}"
# Never fails: an unknown intent starts the server read-only (a stale primary taking writes
# after a failover is worse than a read-only one until an operator looks).
side=${HASTACK_SIDE:-}
active=${HASTACK_ACTIVE_SIDE:-}
if [ -z "$active" ] && [ -n "${HASTACK_SSM_ACTIVE_PARAM:-}" ] && command -v aws >/dev/null 2>&1; then
  # On the very first boot the parameter may be seconds younger than the server: retry briefly.
  active=$(hastack_ssm_get "$HASTACK_SSM_ACTIVE_PARAM" 6 5) || active=""
fi
case "$side:$active" in
  primary:primary | standby:standby) write_role active ;;
  primary:standby | standby:primary) write_role passive ;;
  *)
    log "cannot tell the active side (side='$side', active='$active'): starting read-only"
    write_role passive || true
    ;;
esac
exit 0
