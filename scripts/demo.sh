#!/usr/bin/env bash
# `make demo`: the single-host demo (the lab fleet comes with a later issue).
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/python scripts/demo.py
