#!/usr/bin/env bash
# Linters and type checks: ruff and mypy over the Python, shellcheck over shell scripts.
set -euo pipefail
cd "$(dirname "$0")/.."
VPY=.venv/bin/python
$VPY -m ruff check ovs_runtime tests bench
$VPY -m mypy ovs_runtime
mapfile -t scripts < <(git ls-files '*.sh' .ci/run)
shellcheck "${scripts[@]}"
echo "lint: ruff, mypy and shellcheck clean"
