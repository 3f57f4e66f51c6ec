#!/usr/bin/env bash
# The whole suite after install (npm run test:all; CI's .ci/run): lint, the fast part, the loopback
# rehearsals, and the whole-stack rehearsal with every drill. The whole-stack test is the longest
# part by far (a CPU-bound boot of 8 servers, then drills that mostly wait on TTLs, reboots and
# syncs), so it runs in a lane of its own, started first, beside the rest run one after another:
# the suite then takes about as long as that test, not the sum of all parts (2026-12-01, clean
# clone, `.ci/run`: 1385 s with the lanes, 1735–1833 s one after another). The other lane is not
# niced: it was tried (1386 s, the boot no faster), as the kernel shares CPU between sessions
# first (autogroups) and every container service runs in a session of its own, so nice counts only
# inside the suite's own session.
#
# Output: every line of the whole-stack lane is prefixed "[whole stack] " (the lanes interleave
# line by line); each part says when it starts and how it ended; at the end, the failures of each
# part that failed (so they are in the log's tail), a table of the parts, and one line
# "N passed, N failed, N skipped" summing every mocha run, which CI reads as the verdict.
# Exit 0 only when every part passed. Ctrl-C or SIGTERM stops both lanes; the whole-stack
# rehearsal removes what it started, as it does on its own.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

logs=$(mktemp -d "${TMPDIR:-/tmp}/hastack-suite-XXXXXX")
suite_started=$SECONDS
stack_pid=""

# shellcheck disable=SC2317 # reached through the trap
stop_lanes() {
  trap - INT TERM
  echo "suite: stopping (signal); the whole-stack rehearsal cleans up what it started" >&2
  if [ -n "$stack_pid" ]; then
    kill -TERM -- "-$stack_pid" 2>/dev/null
    wait "$stack_pid" 2>/dev/null
  fi
  exit 130
}
trap stop_lanes INT TERM

echo "suite: building (tsc -b)"
if ! npx tsc -b tsconfig.json; then
  echo "suite: the build failed; nothing ran"
  echo "0 passed, 1 failed, 0 skipped"
  exit 1
fi

# One part: its output through (each line after PREFIX) and into its log; records rc and time.
part() {
  local name=$1 prefix=$2
  shift 2
  local started=$SECONDS
  echo "${prefix}suite: $name: started"
  "$@" 2>&1 | sed -u "s/^/$prefix/" | tee "$logs/$name.out"
  local rc=${PIPESTATUS[0]}
  echo "$rc $((SECONDS - started))" >"$logs/$name.rc"
  echo "${prefix}suite: $name: $([ "$rc" = 0 ] && echo passed || echo "FAILED (exit $rc)") in $((SECONDS - started)) s"
}

# The whole-stack lane: its own process group (set -m), so a stop reaches every process in it.
set -m
part stack "[whole stack] " npx mocha --config .mocharc.stack.json &
stack_pid=$!
set +m

part lint "" npm run -s lint
part fast-part "" npx mocha
part loopback-rehearsals "" npx mocha --config .mocharc.rehearse.json

echo "suite: waiting for the whole-stack lane ($((SECONDS - suite_started)) s so far)"
wait "$stack_pid"
trap - INT TERM

# The failures of each part that failed, again, so they are in the log's tail.
all_ok=0
for name in lint fast-part loopback-rehearsals stack; do
  read -r rc _ <"$logs/$name.rc" 2>/dev/null || rc=1
  if [ "$rc" != 0 ]; then
    all_ok=1
    echo
    echo "suite: ---- $name failed (exit $rc); its failures: ----"
    if grep -q "failing$" "$logs/$name.out"; then
      sed -n '/^\(\[whole stack\] \)\? *[0-9][0-9]* failing$/,$p' "$logs/$name.out" | head -200
    else
      tail -n 60 "$logs/$name.out"
    fi
  fi
done

# The table of parts, then the verdict: every mocha run's "N passed, N failed, N skipped" summed.
echo
echo "suite: part                  result   seconds  tests"
passed=0
failed=0
skipped=0
for name in lint fast-part loopback-rehearsals stack; do
  rc=1
  secs="-"
  read -r rc secs <"$logs/$name.rc" 2>/dev/null
  counts=$(grep -Eo '[0-9]+ passed, [0-9]+ failed, [0-9]+ skipped$' "$logs/$name.out" | tail -n 1)
  if [ -n "$counts" ]; then
    read -r p _ f _ s _ <<<"${counts//,/}"
    passed=$((passed + p))
    failed=$((failed + f))
    skipped=$((skipped + s))
  elif [ "$rc" != 0 ]; then
    # Lint, or a run that died before its summary: one failure, not nothing.
    failed=$((failed + 1))
  fi
  printf 'suite: %-21s %-8s %7s  %s\n' "$name" "$([ "$rc" = 0 ] && echo ok || echo FAILED)" "$secs" "${counts:--}"
done
echo "suite: $((SECONDS - suite_started)) s in all (the whole-stack lane beside the others)"
rm -rf "$logs"
echo
echo "$passed passed, $failed failed, $skipped skipped"
exit "$all_ok"
