#!/usr/bin/env bash
# Idempotent set-up on a fresh Debian/Ubuntu machine: system packages, venv, project install.
# Usage: scripts/setup.sh            (sourced by test.sh and demo.sh)
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
apt_updated=0
apt_install() {
  if [ "$apt_updated" = 0 ]; then $SUDO apt-get update -qq; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$@" >/dev/null
}

PY=${PYTHON:-python3}
if ! command -v "$PY" >/dev/null; then apt_install python3; fi
if ! "$PY" -c 'import sys; assert sys.version_info >= (3, 11)' 2>/dev/null; then
  echo "edge-agent needs Python >= 3.11 ($PY is $("$PY" --version 2>&1))" >&2; exit 1
fi
if ! "$PY" -c 'import venv, ensurepip' 2>/dev/null; then apt_install python3-venv; fi
if ! command -v mosquitto >/dev/null && [ ! -x /usr/sbin/mosquitto ]; then apt_install mosquitto; fi
if ! command -v systemd-analyze >/dev/null; then apt_install systemd; fi

if [ ! -x .venv/bin/python ]; then "$PY" -m venv .venv; fi
stamp=.venv/.edge-agent-installed
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e '.[dev]'
  echo "$want" > "$stamp"
fi

# the OpenVINO side venv (tests/integration/test_openvino.py, bench/bench_openvino.py);
# onnxruntime-openvino ships x86-64 wheels only
if [ "$(uname -m)" = x86_64 ]; then bash scripts/setup_openvino.sh; fi
