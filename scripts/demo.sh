#!/usr/bin/env bash
# The demo: set-up, then `edge-agent demo` on the embedded default (config/demo.yaml).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/.venv/bin:/usr/sbin:$PATH"
exec edge-agent demo "$@"
