"""The daemon inspecting from a GigE Vision camera on the wire (Aravis' fake camera):
frames through the bundled model, stream statistics on /metrics, and the camera killed
and restarted: the heartbeat status word drops camera_ok, then recovers."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import yaml

from plc.softplc import SoftPlc
from plc.tags import load_tags
from tests.e2e.harness import Daemon, write_config
from tests.e2e.test_daemon_line import wait_until
from tests.support.fake_gige import FakeGigECamera
from tests.support.mosquitto import Mosquitto
from tests.support.ports import free_port

CAMERA_OK = 1 << 1


@pytest.fixture
async def softplc() -> AsyncIterator[SoftPlc]:
    plc = SoftPlc(load_tags(), modbus_port=free_port(), opcua_port=None)
    await plc.start()
    try:
        yield plc
    finally:
        await plc.stop()


def genicam_config(tmp: Path, mqtt_port: int, modbus_port: int) -> Path:
    path = write_config(tmp, mqtt_port=mqtt_port, modbus_port=modbus_port)
    cfg = yaml.safe_load(path.read_text())
    cfg["cameras"]["cam1"] = {
        "type": "genicam", "serial": "EA0007", "pixel_format": "BayerRG8", "frame_rate": 20,
        "sensor_roi": [0, 0, 320, 240], "read_timeout_ms": 300, "stall_after_ms": 800,
        "reconnect_initial_ms": 100, "reconnect_max_ms": 500}
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def metric(text: str, name: str) -> float:
    found = re.search(rf"^{name}{{camera=\"cam1\"}} ([0-9.e+]+)$", text, re.M)
    assert found, f"{name} not in /metrics"
    return float(found.group(1))


async def test_daemon_inspects_a_gige_camera_and_rides_out_its_loss(
        tmp_path: Path, mosquitto: Mosquitto, softplc: SoftPlc) -> None:
    fake = FakeGigECamera(tmp_path, serial="EA0007").start()
    daemon = Daemon(genicam_config(tmp_path, mosquitto.port, softplc.modbus_port or 0))
    status = lambda: int(softplc.state.get("agent.status") or 0)  # noqa: E731
    try:
        daemon.wait_started()
        await wait_until(lambda: _inspected(daemon) >= 10, 40, "10 inspections of GigE frames")
        await wait_until(lambda: status() & CAMERA_OK, 10, "camera_ok in the heartbeat status")
        code, body = daemon.get("/metrics")
        assert code == 200
        text = body.decode()
        assert metric(text, "edge_agent_camera_stream_completed_buffers_total") >= 10
        assert metric(text, "edge_agent_camera_stream_failed_buffers_total") == 0
        fake.stop()  # the camera is power-cycled
        await wait_until(lambda: not status() & CAMERA_OK, 15, "camera_ok dropped")
        assert (daemon.status() or {}) != {}
        fake.start()
        before = _inspected(daemon)
        await wait_until(lambda: status() & CAMERA_OK, 30, "camera_ok back after the restart")
        await wait_until(lambda: _inspected(daemon) > before + 5, 20, "inspections again")
        rc, _ = daemon.terminate()
        assert rc == 0
    finally:
        daemon.ensure_dead()
        fake.stop()
    log = daemon.log_path.read_text()
    assert "camera 'cam1' (genicam serial EA0007): streaming -> stalled" in log
    assert "reconnecting -> streaming" in log


def _inspected(daemon: Daemon) -> float:
    code, body = daemon.get("/metrics")
    if code != 200:
        return 0
    found = re.search(r'^edge_agent_worker_inspected_total{[^}]*} ([0-9.e+]+)$', body.decode(), re.M)
    return float(found.group(1)) if found else 0
