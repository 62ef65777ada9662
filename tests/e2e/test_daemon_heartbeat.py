"""The PLC heartbeat means "inspecting now" (issue 16): the daemon as a process, the soft
PLC on the other end of Modbus. A frozen folder camera (identical frames, or the same
picture with a running clock burned in) stops the counter for the whole frozen time,
across the camera's reconnects, and the fail-safe counts that whole time; an operator
`pause` stops it too and /healthz, /status and the MQTT status say why."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import yaml

from agent.capture.synthetic_scene import ConveyorScene
from plc.conveyor import ConveyorSettings
from plc.softplc import SoftPlc
from plc.tags import load_tags
from tests.e2e.harness import Daemon, dropped_records, wait_until, write_config
from tests.support.mosquitto import Mosquitto
from tests.support.mqtt_collector import Collector
from tests.support.ports import free_port

WATCHDOG_S = 1.5


@pytest.fixture
async def softplc() -> AsyncIterator[SoftPlc]:
    plc = SoftPlc(load_tags(), modbus_port=free_port(), opcua_port=None,
                  settings=ConveyorSettings(watchdog_ms=int(WATCHDOG_S * 1000)))
    await plc.start()
    try:
        yield plc
    finally:
        await plc.stop()


def counter(plc: SoftPlc) -> int:
    return int(plc.state.get("agent.heartbeat"))


async def counting(plc: SoftPlc, what: str, timeout: float = 30) -> None:
    start = counter(plc)
    await wait_until(lambda: counter(plc) >= start + 3, timeout, what)


async def held_for(plc: SoftPlc, seconds: float) -> int:
    """Sample the PLC's counter for `seconds`; it must not move."""
    held = counter(plc)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        assert counter(plc) == held, "the heartbeat moved"
        await asyncio.sleep(0.05)
    return held


def write_frames(folder: Path, images: list[np.ndarray]) -> Path:
    folder.mkdir()
    for i, img in enumerate(images):
        cv2.imwrite(str(folder / f"f{i:03d}.png"), img)
    return folder


def point(link: Path, target: Path) -> None:
    """Swap what the camera's folder shows, atomically (a symlink replaced)."""
    tmp = link.with_name(link.name + ".new")
    os.symlink(target, tmp)
    os.replace(tmp, link)


def metric(daemon: Daemon, name: str) -> float:
    code, body = daemon.get("/metrics")
    assert code == 200
    for line in body.decode().splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no {name} in /metrics")


def healthz(daemon: Daemon) -> tuple[int, dict[str, Any]]:
    code, body = daemon.get("/healthz")
    return code, json.loads(body)


def folder_config(tmp: Path, modbus_port: int, folder: Path) -> Path:
    path = write_config(tmp, mqtt_port=free_port(), modbus_port=modbus_port)
    cfg = yaml.safe_load(path.read_text())
    cfg["cameras"]["cam1"] = {"type": "folder", "path": str(folder), "pattern": "*.png",
                              "loop": True, "fps": 20, "frozen_after_s": 0.8,
                              "reconnect_initial_ms": 200, "reconnect_max_ms": 400}
    del cfg["sinks"]["mqtt"]
    station = cfg["lines"]["line1"]["stations"]["station1"]
    station["sinks"] = ["drop"]
    station["fail_safe"] = {"action": "alert", "after_s": 2.5}
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def frozen_pictures(kind: str, base: np.ndarray) -> list[np.ndarray]:
    if kind == "identical":
        return [base.copy() for _ in range(20)]
    out = []
    for i in range(20):  # the same picture, a clock running in the bottom-left corner
        img = base.copy()
        cv2.putText(img, f"2026-11-29 12:00:{i // 10:02d}.{i % 10}00", (4, 232),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1)
        out.append(img)
    return out


@pytest.mark.parametrize("kind", ["identical", "clock"])
async def test_a_frozen_camera_stops_the_heartbeat_across_reconnects(
        tmp_path: Path, softplc: SoftPlc, kind: str) -> None:
    scene = ConveyorScene(seed=3, width=320, height=240, schedule=[None])
    moving = write_frames(tmp_path / "moving", [scene.next_frame().image for _ in range(20)])
    frozen = write_frames(tmp_path / "frozen", frozen_pictures(kind, scene.next_frame().image))
    link = tmp_path / "camera"
    os.symlink(moving, link)
    daemon = Daemon(folder_config(tmp_path, softplc.modbus_port or 0, link))
    try:
        daemon.wait_started()
        await counting(softplc, "heartbeat counting on moving frames")
        point(link, frozen)
        await wait_until(lambda: metric(daemon, "edge_agent_camera_streaming") == 0.0, 10,
                         "the freeze found")
        reconnects = metric(daemon, "edge_agent_camera_reconnects_total")
        await held_for(softplc, 2 * WATCHDOG_S + 0.5)  # across reconnects: never counting
        assert metric(daemon, "edge_agent_camera_reconnects_total") >= reconnects + 2
        assert softplc.conveyor.watchdog_tripped
        assert healthz(daemon)[0] == 503
        # the fail-safe counted the whole frozen time, not one reconnect cycle
        await wait_until(lambda: dropped_records(tmp_path / "drop", "alarm"), 5, "alarm")
        alarms = dropped_records(tmp_path / "drop", "alarm")
        assert [a["event"] for a in alarms] == ["raised"] and alarms[0]["duration_s"] >= 2.5
        point(link, moving)  # the picture really changes: inspecting again
        await counting(softplc, "heartbeat counting after the freeze", 10)
        await wait_until(lambda: len(dropped_records(tmp_path / "drop", "alarm")) == 2, 10,
                         "alarm cleared")
        rc, _ = await asyncio.to_thread(daemon.terminate)
        assert rc == 0
    finally:
        daemon.ensure_dead()


async def test_pause_from_the_operator_stops_the_heartbeat(
        tmp_path: Path, mosquitto: Mosquitto, softplc: SoftPlc) -> None:
    (tmp_path / "cmd-key").write_text("9c1f0e7a2b3d4c5e6f708192a3b4c5d6\n")
    cfg = write_config(tmp_path, mqtt_port=mosquitto.port, modbus_port=softplc.modbus_port or 0,
                       schedule=[None], mqtt_extra={"commands": {
                           "enabled": True, "key": "${file:cmd-key}"}})
    collector = Collector("127.0.0.1", mosquitto.port)
    daemon = Daemon(cfg)

    def operator(action: str) -> None:
        done = subprocess.run([sys.executable, "-m", "agent", "reset", "--config", str(cfg),
                               "--line", "line1", "--station", "station1", "--action", action],
                              capture_output=True, text=True, timeout=30)
        assert done.returncode == 0 and "accepted" in done.stdout, done

    try:
        daemon.wait_started()
        await counting(softplc, "heartbeat counting")
        before = len(collector.on_topic("/agent/edge-e2e/status"))
        await asyncio.to_thread(operator, "pause")
        await wait_until(lambda: softplc.state.get("agent.status") & 0b10001 == 0b10000, 5,
                         "status word: paused, not healthy")
        await held_for(softplc, 2 * WATCHDOG_S)
        assert softplc.conveyor.watchdog_tripped
        code, body = healthz(daemon)
        assert code == 503, body
        assert body["failing"]["station:line1/station1"] == "paused by operator"
        assert "paused by operator" in body["failing"]["heartbeat:softplc"]
        status = daemon.status()
        assert status is not None and status["stations"][0]["state"] == "paused"
        published = [m.json() for m in collector.on_topic("/agent/edge-e2e/status")[before:]]
        paused = [p for p in published if p["stations"][0]["state"] == "paused"]
        assert paused and paused[0]["healthy"] is False
        assert any(f.startswith("heartbeat:softplc: held") for f in paused[0]["failing"])
        await asyncio.to_thread(operator, "resume")
        await counting(softplc, "heartbeat counting after resume", 10)
        assert "heartbeat:softplc" not in healthz(daemon)[1].get("failing", {})
        rc, _ = await asyncio.to_thread(daemon.terminate)
        assert rc == 0
    finally:
        daemon.ensure_dead()
        collector.close()
