#!/usr/bin/env bash
# Run one stage of the test suite and print how long it took.
# pytest's exit code 5 ("no tests collected") is a failure here: a stage that runs
# nothing must not look green.
set -uo pipefail
stage=$1
shift
start=$(date +%s)
echo "=== stage ${stage}: $*"
"$@"
rc=$?
elapsed=$(( $(date +%s) - start ))
if [ "$rc" -eq 5 ]; then
  echo "=== stage ${stage}: pytest collected no tests; failing" >&2
  rc=1
fi
echo "=== stage ${stage}: exit ${rc} after ${elapsed} s"
exit "$rc"
