#!/usr/bin/env bash
# Run the Molecule scenarios one after another on the lab (they share its hosts).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
for scenario in ${MOLECULE_SCENARIOS:-default fleet upgrade}; do
  start=$(date +%s)
  molecule test -s "$scenario"
  echo "=== molecule ${scenario}: passed in $(( $(date +%s) - start )) s"
done
