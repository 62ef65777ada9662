"""The daemon as a real process: config writer, process wrapper, ground truth, file-drop reader."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import REPO
from tests.support.ports import free_port

RULES = [
    {"class": "crack", "min_score": 0.6, "k": 2, "n": 3, "action": "stop", "defect_code": 301},
    {"class": "scratch", "min_score": 0.6, "k": 2, "n": 3, "action": "reject", "defect_code": 101},
    {"class": "spot", "min_score": 0.6, "k": 2, "n": 3, "action": "alert", "defect_code": 201},
    {"class": "dent", "min_score": 0.6, "k": 2, "n": 3, "action": "alert", "defect_code": 401},
]


def write_config(tmp: Path, *, mqtt_port: int, modbus_port: int, seed: int = 11,
                 schedule: list[str | None] | None = None, fps: float = 20,
                 max_frames: int | None = None, mqtt_outbox: dict[str, Any] | None = None,
                 rules: list[dict[str, Any]] | None = None,
                 mqtt_extra: dict[str, Any] | None = None) -> Path:
    """A one-station line on the synthetic camera, the bundled model, the soft PLC's
    tag-map addresses, MQTT and a file drop."""
    camera: dict[str, Any] = {"type": "synthetic", "seed": seed, "width": 320, "height": 240,
                              "fps": fps, "frames_per_part": 8}
    if schedule is not None:
        camera["schedule"] = schedule
    if max_frames is not None:
        camera["max_frames"] = max_frames
    cfg = {
        "site": "e2e", "agent_id": "edge-e2e", "state_dir": str(tmp / "state"),
        "health": {"listen": f"127.0.0.1:{free_port()}"},
        "cameras": {"cam1": camera},
        "models": {"defect": {"path": str(REPO / "models" / "defect-cnn")}},
        "plcs": {"softplc": {
            "type": "modbus", "host": "127.0.0.1", "port": modbus_port, "device_id": 1,
            "reset": "coil:8", "heartbeat": {"counter": "hr:0", "status": "hr:1",
                                             "interval_ms": 200}}},
        "sinks": {
            "mqtt": {"type": "mqtt", "host": "127.0.0.1", "port": mqtt_port,
                     "reconnect_max_s": 1.0, "status_interval_s": 1.0,
                     "outbox": mqtt_outbox or {"retry_initial_ms": 100, "retry_cap_s": 2.0},
                     **(mqtt_extra or {})},
            "drop": {"type": "file", "dir": str(tmp / "drop"), "rotate_s": 3600},
        },
        "lines": {"line1": {"stations": {"station1": {
            "camera": "cam1", "model": "defect", "latency_budget_ms": 500,
            "plc": "softplc", "sinks": ["mqtt", "drop"], "stop_deadline_ms": 500,
            "signals": {"stop_request": "coil:0", "reject": "coil:1", "alarm": "coil:2",
                        "defect_code": "hr:10", "defect_count": "hr:11",
                        "last_event_seq": "hr:12:u32"},
            "rules": rules or RULES,
            "fail_safe": {"action": "alert", "after_s": 30},
        }}}},
    }
    path = tmp / "agent.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


class Daemon:
    """`edge-agent run` as a child process with JSON logs in a file."""

    def __init__(self, config: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.config = config
        self.log_path = config.parent / f"daemon-{time.monotonic_ns()}.log"
        self._log = self.log_path.open("wb")
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "agent", "run", "--config", str(config), "--log-format",
             "json", *args], cwd=REPO, stdout=self._log, stderr=subprocess.STDOUT, env=env)
        health = yaml.safe_load(config.read_text())["health"]
        self.health_port = int(health["listen"].rsplit(":", 1)[1])
        self.token: str | None = health.get("token")

    def _request(self, path: str) -> urllib.request.Request:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        return urllib.request.Request(f"http://127.0.0.1:{self.health_port}{path}",
                                      headers=headers)

    def status(self) -> dict[str, Any] | None:
        try:
            with urllib.request.urlopen(self._request("/status"), timeout=1) as resp:
                return dict(json.load(resp))
        except OSError:
            return None

    def get(self, path: str) -> tuple[int, bytes]:
        """(HTTP status, body) of a health-server path."""
        try:
            with urllib.request.urlopen(self._request(path), timeout=2) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as err:
            return err.code, err.read()

    def audit(self) -> list[dict[str, Any]]:
        state = Path(yaml.safe_load(self.config.read_text())["state_dir"])
        path = state / "audit.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def wait_started(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"daemon exited {self.proc.returncode}: {self.log()[-3000:]}")
            if self.status() is not None:
                return
            time.sleep(0.1)
        raise AssertionError(f"daemon did not start: {self.log()[-3000:]}")

    def terminate(self, timeout: float = 10) -> tuple[int, float]:
        """SIGTERM; returns (exit code, seconds until exit)."""
        t0 = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.send_signal(signal.SIGUSR2)  # stack dump of every thread into the log
            time.sleep(1)
            raise AssertionError(f"no exit {timeout}s after SIGTERM:\n{self.log()[-6000:]}") from None
        self._log.close()
        return rc, time.monotonic() - t0

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(10)
        self._log.close()

    def ensure_dead(self) -> None:
        if self.proc.poll() is None:
            self.kill()
        if not self._log.closed:
            self._log.close()

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")


def dropped_records(folder: Path, kind: str = "defect") -> list[dict[str, Any]]:
    """Every record of `kind` in the file drop (final and still-open files), in write order."""
    files = sorted(p for p in folder.glob("*") if p.is_file() and f"_{kind}_" in p.name)
    out = []
    for f in sorted(files, key=lambda p: p.stat().st_mtime_ns):
        for line in f.read_text().splitlines():
            if line.strip():
                out.append(json.loads(line))
    return out


def truth_defect_parts(seed: int, frames: int, schedule: list[str | None] | None) -> list[str]:
    """Defect classes of the parts whose defect was in view during the first `frames` frames."""
    from agent.capture.synthetic_scene import ConveyorScene

    scene = ConveyorScene(seed=seed, width=320, height=240, frames_per_part=8, schedule=schedule)
    seen: dict[str, str] = {}
    for _ in range(frames):
        f = scene.next_frame()
        if f.part_id is not None and f.label != "ok":
            seen.setdefault(f.part_id, f.label)
    return list(seen.values())


async def wait_until(cond: Any, timeout: float, what: str) -> None:
    """Poll `cond` every 50 ms until it is true; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
