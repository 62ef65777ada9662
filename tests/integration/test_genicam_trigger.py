"""Camera triggers on the fake GigE Vision camera: TriggerSoftware fired per PLC trigger
and exactly the frame it produced inspected; a hardware-triggered camera without a frame
answers UNKNOWN."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.capture.base import SourceState
from agent.capture.camera import Camera
from agent.capture.camera_trigger import camera_arm
from agent.capture.genicam.config import GenICamCameraConfig
from agent.capture.genicam.source import GenICamSource
from agent.config.station import TriggerTimeouts
from agent.control.trigger import TriggerHandshake
from agent.runtime.build import build_camera
from agent.types import Result, Verdict
from plc.conveyor import ConveyorSettings
from plc.softplc import SoftPlc
from tests.integration.plc_helpers import STATION, TAGS, modbus_link, signals, wait_for
from tests.support.fake_gige import FakeGigECamera


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[FakeGigECamera]:
    cam = FakeGigECamera(tmp_path, serial="EA0002").start()
    try:
        yield cam
    finally:
        cam.stop()


def triggered_camera(trigger: str) -> Camera:
    cfg = GenICamCameraConfig.model_validate({
        "type": "genicam", "address": "127.0.0.1", "trigger": trigger, "pixel_format": "Mono8",
        "sensor_roi": [0, 0, 128, 96], "read_timeout_ms": 200, "stall_after_ms": 300})
    return build_camera("gige", cfg, Path("."))


def test_software_trigger_gives_exactly_the_frame_it_fired(fake: FakeGigECamera) -> None:
    cam = triggered_camera("software")
    slot = cam.subscribe()
    cam.start()
    source = cam.source
    assert isinstance(source, GenICamSource)
    try:
        time.sleep(0.8)  # longer than stall_after_ms: waiting for a trigger is not a stall
        assert cam.state is SourceState.STREAMING and cam.stats().captured == 0
        t1 = source.fire()
        # waits of 6 s: a loaded box can stall Aravis' control channel (GVCP retries) for 5 s;
        # what is asserted is which frame arrives, not how fast
        deadline = time.monotonic() + 6
        while not slot.pending and time.monotonic() < deadline:
            time.sleep(0.005)
        assert slot.pending  # the first trigger's frame waits, not taken
        t2 = source.fire()
        frame = slot.get_after(t2, 6.0)
        assert frame is not None and frame.t_capture > t2 > t1
        assert slot.dropped == 1  # the older buffer was discarded, never inspected
        for _ in range(3):
            t = source.fire()
            f = slot.get_after(t, 6.0)
            assert f is not None and t < f.t_capture <= time.monotonic()
        assert cam.stats().captured == 5  # one frame per trigger, none without
        assert source.stream_stats()["completed_buffers"] == 5
    finally:
        cam.stop()


async def _handshakes(tmp_path: Path, port: int, cam: Camera, parts: int,
                      frame_ms: int) -> tuple[list, list[tuple[str, float, float | None]], TriggerHandshake]:  # type: ignore[type-arg]
    plc = SoftPlc(TAGS, modbus_port=port,
                  settings=ConveyorSettings(part_period_s=0.1, triggered=True, done_timeout_s=3))
    slot = cam.subscribe()
    seen: list[tuple[str, float, float | None]] = []

    async def inspect(part_id: str, t_after: float) -> Verdict:
        frame = await asyncio.to_thread(slot.get_after, t_after, frame_ms / 1000)
        seen.append((part_id, t_after, frame.t_capture if frame else None))
        result = Result.OK if frame is not None else Result.UNKNOWN
        return Verdict("line1", "station1", "gige", result, frame.seq if frame else -1,
                       part_id=part_id)

    link = modbus_link(tmp_path, port)
    trig = TriggerHandshake(link, "line1", "station1", signals("modbus"),
                            TriggerTimeouts(frame_ms=frame_ms, clear_ms=2000), inspect, poll_ms=5,
                            arm=camera_arm(cam.source))
    cam.start()
    await wait_for(lambda: cam.state is SourceState.STREAMING, timeout=10, what="camera open")
    await plc.start()
    await link.start()
    try:
        assert await link.wait_connected(5)
        await trig.start()
        sim = plc.conveyor.stations[STATION]
        await wait_for(lambda: len(sim.results) >= parts, timeout=20, what=f"{parts} handshakes")
        return list(sim.results[:parts]), seen, trig
    finally:
        await trig.stop()
        await link.close()
        await plc.stop()
        cam.stop()


async def test_plc_trigger_fires_the_camera_and_judges_its_frame(
        tmp_path: Path, port: int, fake: FakeGigECamera) -> None:
    cam = triggered_camera("software")
    results, seen, trig = await _handshakes(tmp_path, port, cam, parts=5, frame_ms=1000)
    assert [r.result for r in results] == [1] * 5
    assert all(r.echoed_part_id == r.part_id for r in results)
    frames = [(t_after, t_cap) for _, t_after, t_cap in seen[:5]]
    assert all(t_cap is not None and t_cap > t_after for t_after, t_cap in frames)
    # each part its own frame, and the camera took no frame it was not asked for
    assert len({t for _, t in frames}) == 5
    assert cam.stats().captured == trig.stats().triggers


async def test_hardware_trigger_without_a_frame_is_unknown(
        tmp_path: Path, port: int, fake: FakeGigECamera) -> None:
    cam = triggered_camera("hardware")  # Line0: nothing is wired, no frame ever comes
    results, seen, _ = await _handshakes(tmp_path, port, cam, parts=2, frame_ms=150)
    assert [r.result for r in results] == [3, 3]
    assert [t_cap for _, _, t_cap in seen[:2]] == [None, None]
    assert all(t_after < time.monotonic() for _, t_after, _ in seen)
