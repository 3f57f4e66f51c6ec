#!/usr/bin/env bash
# Lints every file that lands on a server (issue 10): shellcheck -x over server/**/*.sh with zero
# findings, pyflakes and a byte-compile over server/**/*.py. Part of `npm run lint`.
set -euo pipefail
cd "$(dirname "$0")/.."
mapfile -d '' shells < <(find server -type f -name '*.sh' -print0 | sort -z)
mapfile -d '' pythons < <(find server -type f -name '*.py' -print0 | sort -z)
status=0
if [ "${#shells[@]}" -gt 0 ]; then
  shellcheck -x -P SCRIPTDIR "${shells[@]}" || status=1
fi
if [ "${#pythons[@]}" -gt 0 ]; then
  pyflakes3 "${pythons[@]}" || status=1
  for f in "${pythons[@]}"; do
    /usr/bin/python3 -c 'import ast, sys; ast.parse(open(sys.argv[1]).read(), sys.argv[1])' "$f" || status=1
  done
fi
[ "$status" -eq 0 ] && echo "lint-server: ${#shells[@]} shell and ${#pythons[@]} Python files clean"
exit "$status"
