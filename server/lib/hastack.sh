# shellcheck shell=bash
# hastack.sh: shell helpers shared by the server scripts of every hastack service (issue 10).
#
# Where it lives: each service's cloud-init write_files installs this very file at
#   /usr/local/lib/hastack/hastack.sh        (HASTACK_LIB_PATH in components/server-files.ts)
# and scripts source it with
#   . "${HASTACK_LIB:-/usr/local/lib/hastack/hastack.sh}"
# so tests and rehearsals point HASTACK_LIB at server/lib/hastack.sh of the package. Scripts
# sent over SSH on stdin (remote commands) carry its text inline instead: servers booted
# before a function was added here do not have it on disk (user-data runs at first boot only).
#
# Rules for what goes here (several services edit this file; keep merges easy):
# - one function per block, each block fenced by a "# ---- name ----" line and documented
#   (usage, output, status); add new blocks at the end of the file;
# - every function is prefixed hastack_, is general (no service's names or paths), never
#   exits the caller (it returns a status) and writes diagnostics to stderr only;
# - bash 4+ (Debian 12); no dependency beyond coreutils, curl and the AWS CLI.

# ---- hastack_log ----
# hastack_log MESSAGE...: one line "HH:MM:SS TAG: MESSAGE" on stderr (journal-friendly).
# TAG is $HASTACK_LOG_TAG when set, else the script's name.
hastack_log() {
  printf '%s %s: %s\n' "$(date -u +%H:%M:%S)" "${HASTACK_LOG_TAG:-${0##*/}}" "$*" >&2
}

# ---- hastack_imds ----
# hastack_imds PATH: prints instance metadata PATH (e.g. placement/region) read with IMDSv2,
# as the instances require (http_tokens=required, hop limit 1). Status 1 when unreachable.
# HASTACK_IMDS_URL overrides the endpoint (rehearsals run their own stand-in).
hastack_imds() {
  local base=${HASTACK_IMDS_URL:-http://169.254.169.254/latest} token
  token=$(curl -sf --max-time 3 -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 60' \
    "$base/api/token") || return 1
  curl -sf --max-time 3 -H "X-aws-ec2-metadata-token: $token" "$base/meta-data/$1"
}

# ---- hastack_region ----
# hastack_region: prints the AWS region the server's AWS calls go to: $HASTACK_AWS_REGION when
# set (the stack passes it), else $AWS_DEFAULT_REGION, else the instance's own (IMDSv2).
hastack_region() {
  if [ -n "${HASTACK_AWS_REGION:-}" ]; then
    echo "$HASTACK_AWS_REGION"
  elif [ -n "${AWS_DEFAULT_REGION:-}" ]; then
    echo "$AWS_DEFAULT_REGION"
  else
    hastack_imds placement/region
  fi
}

# ---- hastack_ssm_get ----
# hastack_ssm_get NAME [ATTEMPTS [DELAY_SECONDS]]: prints the value of SSM parameter NAME
# (SecureStrings decrypted) in hastack_region. Tries ATTEMPTS times (default 1), DELAY_SECONDS
# apart (default 5): at first boot a parameter can be seconds younger than the server. Each
# call is bounded (20 s). Status 1 when no non-empty value was read; prints nothing then.
hastack_ssm_get() {
  local name=$1 attempts=${2:-1} delay=${3:-5} region value attempt
  region=$(hastack_region) || region=""
  for ((attempt = 1; attempt <= attempts; attempt++)); do
    if value=$(timeout 20 aws ssm get-parameter ${region:+--region "$region"} --with-decryption \
      --name "$name" --query Parameter.Value --output text 2>/dev/null) && [ -n "$value" ]; then
      printf '%s\n' "$value"
      return 0
    fi
    [ "$attempt" -ge "$attempts" ] || sleep "$delay"
  done
  return 1
}

# ==== added by the NAS/PBX work (issue 15: rrsync lock); the lead merges textual conflicts ====
# ---- hastack_rsync ----
# hastack_rsync RSYNC_ARGS...: runs `rsync RSYNC_ARGS...`. When the far side's rrsync refuses
# because another transfer is writing into the same directory ("Another instance of rrsync is
# already accessing this directory": rrsync -wo takes a non-blocking lock per directory), it
# waits and tries again with a doubling delay — HASTACK_RSYNC_RETRY_DELAY seconds first
# (default 5), at most 120 — up to HASTACK_RSYNC_RETRIES more times (default 8, about 10 min in
# all), so a colliding sync or replication waits its turn instead of losing the run. Any other
# failure returns rsync's status at once. rsync's stderr is passed on (after each attempt).
hastack_rsync() {
  local retries=${HASTACK_RSYNC_RETRIES:-8} delay=${HASTACK_RSYNC_RETRY_DELAY:-5} attempt=0 rc errf
  errf=$(mktemp "${TMPDIR:-/tmp}/hastack-rsync.XXXXXX") || return 1
  while :; do
    rc=0
    rsync "$@" 2>"$errf" || rc=$?
    cat "$errf" >&2
    if [ "$rc" -eq 0 ] || ! grep -q 'Another instance of rrsync' "$errf" || [ "$attempt" -ge "$retries" ]; then
      rm -f "$errf"
      return "$rc"
    fi
    attempt=$((attempt + 1))
    printf '%s hastack_rsync: the far side is busy with another transfer; retry %d/%d in %d s\n' \
      "$(date -u +%H:%M:%S)" "$attempt" "$retries" "$delay" >&2
    sleep "$delay"
    delay=$((delay * 2 > 120 ? 120 : delay * 2))
  done
}
