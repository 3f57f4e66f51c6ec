# shellcheck shell=bash
#: Main part of hastack-mysql-boot-role, shipped after header.sh only (it lands in user-data).
# --- boot-role ---
# Never fails: an unknown intent starts the server read-only (a stale primary taking writes
# after a failover is worse than a read-only one until an operator looks).
side=${HASTACK_SIDE:-}
active=${HASTACK_ACTIVE_SIDE:-}
if [ -z "$active" ] && [ -n "${HASTACK_SSM_ACTIVE_PARAM:-}" ] && command -v aws >/dev/null 2>&1; then
  # On the very first boot the parameter may be seconds younger than the server: retry briefly.
  for attempt in 1 2 3 4 5 6; do
    active=$(timeout 20 aws ssm get-parameter --region "$(aws_region)" --name "$HASTACK_SSM_ACTIVE_PARAM" \
      --query Parameter.Value --output text 2>/dev/null) && break
    active=""
    [ "$attempt" = 6 ] || sleep 5
  done
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
