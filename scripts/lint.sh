#!/usr/bin/env bash
# Linters and type checks: ruff and mypy over the Python, shellcheck over shell scripts.
set -euo pipefail
cd "$(dirname "$0")/.."
VPY=.venv/bin/python
$VPY -m ruff check ovs_runtime lab fleet tests bench roles scripts
$VPY -m mypy ovs_runtime lab fleet bench
mapfile -t scripts < <(git ls-files '*.sh' .ci/run)
shellcheck "${scripts[@]}"
# Roles and playbooks: yamllint, and ansible-lint's production profile.
PATH="$PWD/.venv/bin:$PATH" .venv/bin/yamllint -s roles playbooks inventories molecule .yamllint .ansible-lint
PATH="$PWD/.venv/bin:$PATH" .venv/bin/ansible-lint -q roles playbooks inventories molecule
echo "lint: ruff, mypy, shellcheck, yamllint and ansible-lint clean"
