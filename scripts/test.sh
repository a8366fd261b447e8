#!/usr/bin/env bash
# The whole suite, stage by stage, with each stage's duration; stops at the first failure.
set -euo pipefail
cd "$(dirname "$0")/.."
total_start=$(date +%s)
make --no-print-directory lint
make --no-print-directory unit
make --no-print-directory integration
make --no-print-directory packaging-test
make --no-print-directory fleet-test
make --no-print-directory molecule
echo "=== all stages passed in $(( $(date +%s) - total_start )) s"
