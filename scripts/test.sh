#!/usr/bin/env bash
# The test command: set-up, lint, type-check, the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/.venv/bin:/usr/sbin:$PATH"
echo "== ruff"; ruff check agent plc tests bench
echo "== mypy"; mypy agent plc
echo "== pytest"; python -m pytest -q "$@"
