"""STATUS= of the running daemon stays current (issue 23): `systemctl status` showed
"0 inspections, degraded: camera:cam1" long after the camera streamed."""

from __future__ import annotations

import re
import socket
import time
from pathlib import Path

from tests.e2e.harness import Daemon, write_config
from tests.support.ports import free_port


def _statuses(sock: socket.socket, seconds: float) -> list[tuple[float, str]]:
    out: list[tuple[float, str]] = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            data = sock.recv(4096)
        except TimeoutError:
            continue
        out += [(time.monotonic(), m[7:]) for m in data.decode().splitlines()
                if m.startswith("STATUS=")]
    return out


def _inspections(text: str) -> int:
    m = re.search(r"(\d+) inspections", text)
    assert m, text
    return int(m.group(1))


def test_status_follows_the_daemon_within_seconds(tmp_path: Path) -> None:
    # MQTT status every 10 s (the default): STATUS= must not wait for it
    cfg = write_config(tmp_path, mqtt_port=free_port(), modbus_port=free_port(),
                       mqtt_extra={"status_interval_s": 10.0})
    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        sock.settimeout(0.2)
        daemon = Daemon(cfg, env={"NOTIFY_SOCKET": str(path)})
        try:
            daemon.wait_started()
            _wait_inspecting(daemon)
            got = _statuses(sock, 5.0)
            assert got, "no STATUS= within 5 s"
            last = got[-1][1]
            # the current state: the camera streams, only the absent broker and PLC fail
            assert "camera:cam1" not in last and "sink:mqtt" in last, got
            counts = [_inspections(text) for _, text in got]
            assert counts[-1] > 0 and counts == sorted(counts), got
            assert len(got) >= 2, f"the counters were not refreshed within 5 s: {got}"
            times = [t for t, _ in got]
            assert max(b - a for a, b in zip(times, times[1:], strict=False)) < 3.5, got
            rc, _ = daemon.terminate()
            assert rc == 0
            assert "stopping" in [text for _, text in _statuses(sock, 0.5)]
        finally:
            daemon.ensure_dead()


def _wait_inspecting(daemon: Daemon, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = daemon.status() or {}
        if status.get("stations") and all(s["state"] == "inspecting" for s in status["stations"]) \
                and not any(f.startswith("camera:") for f in status.get("failing", [])):
            return
        time.sleep(0.2)
    raise AssertionError(f"never inspecting: {daemon.status()}")
