#!/usr/bin/env bash
# `make demo`: the lab fleet (scripts/demo_fleet.py); `make demo-host`: one host.
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/python "scripts/${1:-demo_fleet}.py"
