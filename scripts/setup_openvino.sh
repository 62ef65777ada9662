#!/usr/bin/env bash
# Side venv .venv-openvino/: the project (editable) on onnxruntime-openvino instead of
# onnxruntime. Both wheels install the same `onnxruntime` module, so they cannot share a
# venv: tests/integration/test_openvino.py and bench/bench_openvino.py run the OpenVINO
# execution provider in this one. Idempotent (stamp on pyproject.toml); called by setup.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=.venv-openvino
if [ ! -x "$VENV/bin/python" ]; then "$PY" -m venv "$VENV"; fi
stamp=$VENV/.edge-agent-installed
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  "$VENV/bin/python" -m pip install -q --upgrade pip
  "$VENV/bin/python" -m pip install -q -e .
  # the project's `onnxruntime` dependency out, the OpenVINO build of the same module in
  "$VENV/bin/python" -m pip uninstall -q -y onnxruntime
  "$VENV/bin/python" -m pip install -q --force-reinstall --no-deps 'onnxruntime-openvino>=1.18'
  echo "$want" > "$stamp"
fi
