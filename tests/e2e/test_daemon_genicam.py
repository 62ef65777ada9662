"""The daemon inspecting from a GigE Vision camera on the wire (Aravis' fake camera):
frames through the bundled model, stream statistics on /metrics, and the camera killed
and restarted: the heartbeat status word drops camera_ok, then recovers."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from plc.conveyor import ConveyorSettings
from plc.softplc import SoftPlc
from plc.tags import load_tags
from tests.e2e.genicam_line import genicam_line_config
from tests.e2e.harness import Daemon, wait_until
from tests.support.fake_gige import FakeGigECamera
from tests.support.mosquitto import Mosquitto
from tests.support.ports import free_port

CAMERA_OK = 1 << 1


def metric(text: str, name: str) -> float:
    found = re.search(rf"^{name}{{camera=\"cam1\"}} ([0-9.e+]+)$", text, re.M)
    assert found, f"{name} not in /metrics"
    return float(found.group(1))


async def test_daemon_inspects_a_gige_camera_and_rides_out_its_loss(
        tmp_path: Path, mosquitto: Mosquitto, softplc: SoftPlc) -> None:
    fake = FakeGigECamera(tmp_path, serial="EA0007").start()
    cfg = genicam_line_config(tmp_path, mqtt_port=mosquitto.port,
                              modbus_port=softplc.modbus_port or 0, serial="EA0007")
    raw = yaml.safe_load(cfg.read_text())
    raw["lines"]["line1"]["stations"]["station1"]["fail_safe"] = {"action": "alert", "after_s": 1}
    cfg.write_text(yaml.safe_dump(raw, sort_keys=False))
    daemon = Daemon(cfg)
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
        assert not softplc.state.get("line1.station1.alarm")  # streaming: no fail-safe
        fake.stop()  # the camera is power-cycled
        await wait_until(lambda: not status() & CAMERA_OK, 15, "camera_ok dropped")
        await wait_until(lambda: softplc.state.get("line1.station1.alarm"), 10,
                         "the fail-safe alarm at the PLC")
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


async def test_daemon_fires_the_camera_per_plc_trigger(tmp_path: Path, mosquitto: Mosquitto) -> None:
    """Triggered station, trigger: software: every part the soft PLC raises gets a verdict
    from the frame the agent fired for it (no UNKNOWN), and the camera takes no other."""
    plc = SoftPlc(load_tags(), modbus_port=free_port(), opcua_port=None,
                  settings=ConveyorSettings(part_period_s=0.3, triggered=True, done_timeout_s=3))
    fake = FakeGigECamera(tmp_path, serial="EA0008").start()
    daemon = Daemon(genicam_line_config(tmp_path, mqtt_port=mosquitto.port,
                                        modbus_port=plc.modbus_port or 0, serial="EA0008",
                                        trigger="software", frame_ms=1000))
    try:
        daemon.wait_started()
        await wait_until(lambda: "camera cam1: connecting -> streaming" in daemon.log(), 20,
                         "the camera open and waiting for triggers")
        await plc.start()
        sim = plc.conveyor.stations["line1.station1"]
        await wait_until(lambda: len(sim.results) >= 6, 40, "6 triggered parts")
        results = sim.results[:6]
        assert all(r.result in (1, 2) for r in results), results  # never UNKNOWN
        assert all(r.echoed_part_id == r.part_id for r in results)
        code, body = daemon.get("/metrics")
        completed = metric(body.decode(), "edge_agent_camera_stream_completed_buffers_total")
        assert len(sim.results) <= completed <= len(sim.results) + 1  # one frame per trigger
    finally:
        daemon.ensure_dead()
        await plc.stop()
        fake.stop()
