"""Operations of the running daemon: sd_notify READY/WATCHDOG, /healthz, /metrics, /status,
SIGHUP reload (valid and invalid), the audit log (issue 10)."""

from __future__ import annotations

import json
import signal
import socket
import time
from pathlib import Path

import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.harness import Daemon, write_config
from tests.support.ports import free_port
from tests.support.waiting import wait_for as _wait


class NotifySocket:
    """The service manager's side of sd_notify: a real Unix datagram socket."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)
        self.messages: list[tuple[float, str]] = []

    def pump(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            for line in data.decode().splitlines():
                self.messages.append((time.monotonic(), line))

    def wait_for(self, text: str, timeout: float) -> float:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            for t, m in self.messages:
                if m == text:
                    return t
            self.pump(0.2)
        raise AssertionError(f"no {text!r} within {timeout}s: {self.messages[-10:]}")

    def pings(self, since: float) -> int:
        return sum(1 for t, m in self.messages if m == "WATCHDOG=1" and t >= since)

    def close(self) -> None:
        self.sock.close()


def test_notify_health_metrics_reload_audit(tmp_path: Path) -> None:
    # no broker and no PLC: the inspection that works must go on, degraded
    frames = 200
    cfg = write_config(tmp_path, mqtt_port=free_port(), modbus_port=free_port(), fps=25,
                       max_frames=frames)
    notify = NotifySocket(tmp_path / "notify.sock")
    daemon = Daemon(cfg, env={"NOTIFY_SOCKET": str(notify.path), "WATCHDOG_USEC": "1000000"})
    try:
        notify.wait_for("READY=1", 60)
        t_ready = time.monotonic()
        notify.pump(2.0)
        assert notify.pings(t_ready) >= 2, notify.messages
        assert any(m.startswith("STATUS=") for _, m in notify.messages)

        # broker and PLC down: /healthz says so, but the inspection goes on (READY, pings)
        code, body = daemon.get("/healthz")
        failing = json.loads(body)["failing"]
        assert code == 503 and set(failing) == {"sink:mqtt", "plc:softplc"}, body
        code, body = daemon.get("/metrics")
        families = {f.name: f for f in text_string_to_metric_families(body.decode())}
        stage = families["edge_agent_stage_seconds"]
        assert {s.labels.get("stage") for s in stage.samples} >= {"pre", "infer", "post"}
        assert families["edge_agent_camera_streaming"].samples[0].value == 1.0
        assert families["edge_agent_sink_connected"].samples[0].value == 0.0
        status = daemon.status()
        assert status is not None and status["state"] == "online"
        assert any("sink:mqtt" in f for f in status["failing"])
        assert daemon.get("/nope")[0] == 404

        # SIGHUP with a valid change: applied
        doc = yaml.safe_load(cfg.read_text())
        doc["lines"]["line1"]["stations"]["station1"]["rules"][0]["min_score"] = 0.65
        cfg.write_text(yaml.safe_dump(doc, sort_keys=False))
        daemon.proc.send_signal(signal.SIGHUP)
        _wait(lambda: any(a["event"] == "config_reload" for a in daemon.audit()), 10)
        assert [a["ok"] for a in daemon.audit() if a["event"] == "config_reload"] == [True]
        # SIGHUP with a broken file: refused, running config kept, reported in status
        cfg.write_text(cfg.read_text().replace("min_score: 0.65", "min_scor: 0.65"))
        daemon.proc.send_signal(signal.SIGHUP)
        _wait(lambda: len([a for a in daemon.audit() if a["event"] == "config_reload"]) == 2, 10)
        refused = [a for a in daemon.audit() if a["event"] == "config_reload"][-1]
        assert refused["ok"] is False and "min_scor" in refused["error"]
        _wait(lambda: any("config" in f for f in (daemon.status() or {}).get("failing", [])), 5)
        assert daemon.proc.poll() is None

        # the finite camera ends: no progress -> no WATCHDOG pings, /healthz names it
        try:
            _wait(lambda: "camera:cam1" in json.loads(daemon.get("/healthz")[1])["failing"], 30)
        except Exception:
            daemon.proc.send_signal(signal.SIGUSR2)
            time.sleep(1)
            raise AssertionError(daemon.log()[-8000:]) from None
        notify.pump(3.0)  # the watchdog notices the stall within max(2 s, 4 intervals)
        t_stalled = time.monotonic()
        notify.pump(2.5)
        assert notify.pings(t_stalled) == 0, "pings must stop when inference makes no progress"

        rc, seconds = daemon.terminate()
        notify.pump(0.5)
        assert rc == 0 and seconds < 5
        assert any(m == "STOPPING=1" for _, m in notify.messages)
        events = [a["event"] for a in daemon.audit()]
        assert events[0] == "start" and "ready" in events and events[-1] == "stop"
    finally:
        daemon.ensure_dead()
        notify.close()
