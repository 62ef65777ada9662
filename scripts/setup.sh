#!/usr/bin/env bash
# Idempotent set-up on a fresh Debian/Ubuntu machine: system packages, venv, project install.
# Usage: scripts/setup.sh            (sourced by test.sh and demo.sh)
set -euo pipefail
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1  # tests use the system chromium, never a download
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
# GenICam cameras (Aravis), the fake GigE Vision camera and the RTSP server the tests use
gi_ok() { /usr/bin/python3 -c 'import gi; gi.require_version("Aravis", "0.8"); gi.require_version("GstRtspServer", "1.0")' 2>/dev/null; }
if ! gi_ok || ! command -v arv-fake-gv-camera-0.8 >/dev/null \
   || ! gst-inspect-1.0 x264enc >/dev/null 2>&1 || ! gst-inspect-1.0 rtph264pay >/dev/null 2>&1; then
  apt_install python3-gi gir1.2-aravis-0.8 aravis-tools gir1.2-gst-rtsp-server-1.0 \
    gir1.2-gstreamer-1.0 gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good \
    gstreamer1.0-plugins-ugly
fi
# headless browser for the web console's tests (Debian's package; Playwright never downloads one)
if ! command -v chromium >/dev/null && ! command -v chromium-browser >/dev/null; then
  apt_install chromium
fi

if [ ! -x .venv/bin/python ]; then "$PY" -m venv .venv; fi
stamp=.venv/.edge-agent-installed
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e '.[dev]'
  echo "$want" > "$stamp"
fi

# The venv reaches Debian's PyGObject (built for CPython 3.11, the same ABI as the venv's
# 3.11) through a folder holding only a link to the `gi` package: nothing else of
# /usr/lib/python3/dist-packages leaks into the venv.
if .venv/bin/python -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
  mkdir -p .venv/system-gi
  ln -sfn /usr/lib/python3/dist-packages/gi .venv/system-gi/gi
  site=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  echo "$PWD/.venv/system-gi" > "$site/system-gi.pth"
else
  echo "note: Debian's python3-gi is built for Python 3.11; the venv's Python is not, so" \
       "type: genicam cameras are unavailable" >&2
fi
# the OpenVINO side venv (tests/integration/test_openvino.py, bench/bench_openvino.py);
# onnxruntime-openvino ships x86-64 wheels only
if [ "$(uname -m)" = x86_64 ]; then bash scripts/setup_openvino.sh; fi
