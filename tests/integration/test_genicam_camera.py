"""GenICam cameras against a real GigE Vision device on the wire: Aravis' fake camera
(arv-fake-gv-camera-0.8) on 127.0.0.1, speaking GVCP/GVSP."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from agent.capture.base import SourceError, SourceState
from agent.capture.camera import Camera
from agent.capture.genicam.config import GenICamCameraConfig
from agent.capture.genicam.source import GenICamSource
from agent.runtime.build import build_camera
from tests.support.fake_gige import FakeGigECamera
from tests.support.waiting import wait_for as _wait

SERIAL = "EA0001"


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[FakeGigECamera]:
    cam = FakeGigECamera(tmp_path, serial=SERIAL).start()
    try:
        yield cam
    finally:
        cam.stop()


def config(**kw: Any) -> GenICamCameraConfig:
    raw: dict[str, Any] = {"type": "genicam", "serial": SERIAL, **kw}
    if "address" in kw or "device_id" in kw:
        raw.pop("serial")
    return GenICamCameraConfig.model_validate(raw)


def started(cfg: GenICamCameraConfig) -> Camera:
    cam = build_camera("gige", cfg, Path("."))
    return cam


def open_error(cfg: GenICamCameraConfig) -> str:
    src = GenICamSource("gige", cfg)
    try:
        with pytest.raises(SourceError) as err:
            src.open()
    finally:
        src.close()
    return str(err.value)


def test_free_run_frames_with_settings_and_camera_timestamps(fake: FakeGigECamera) -> None:
    cam = started(config(pixel_format="BayerRG8", frame_rate=50, exposure_us=2000, gain=3,
                         sensor_roi=(16, 8, 320, 240), packet_size=1500, packet_delay=10,
                         stream_buffers=4))
    slot = cam.subscribe()
    cam.start()
    try:
        frames = [f for f in (slot.get(2.0) for _ in range(40)) if f is not None]
        assert len(frames) == 40
        assert frames[0].pixels.shape == (240, 320, 3) and frames[0].pixels.dtype == np.uint8
        ts = [f.t_capture for f in frames]
        assert ts == sorted(ts)
        assert 0 <= time.monotonic() - ts[-1] < 0.5  # device time mapped to host monotonic
        period = (ts[-1] - ts[0]) / (len(ts) - 1)
        assert period == pytest.approx(1 / 50, rel=0.3)  # the camera runs at frame_rate
        assert cam.state is SourceState.STREAMING
        info = cam.source.info()  # type: ignore[attr-defined]
        assert info["serial"] == SERIAL and info["pixel_format"] == "BayerRG8"
        assert info["exposure_us"] == "2000" and info["region"] == "320x240+16+8"
        stats = cam.source.stream_stats()  # type: ignore[attr-defined]
        assert stats["completed_buffers"] >= 40 and stats["failed_buffers"] == 0
    finally:
        cam.stop()


@pytest.mark.parametrize(("settings", "expected"), [
    ({"exposure_us": 5e8}, "ExposureTime 5e+08 us is out of range: the camera allows 10..1e+07 us"),
    ({"gain": 25}, "Gain 25 is out of range: the camera allows 0..10"),
    ({"frame_rate": 5000}, "AcquisitionFrameRate 5000 fps is out of range: the camera allows 0.1..1000 fps"),
    ({"packet_delay": 5000}, "GevSCPD 5000 ticks is out of range: the camera allows 0..1000 ticks"),
    ({"packet_size": 1401}, "GevSCPSPacketSize 1401 is not a multiple of its increment 4"),
    ({"pixel_format": "Mono12"}, "PixelFormat Mono12 is not offered by the camera (it offers: "
                                 "BayerBG8, BayerGB8, BayerGR8, BayerRG8, Mono8, RGB8, Mono16"),
    ({"sensor_roi": (2000, 0, 512, 512)}, "sensor_roi [2000, 0, 512, 512] ends outside the sensor (2048x2048)"),
    ({"trigger": "hardware", "trigger_source": "Line7"}, "TriggerSource Line7 is not offered by the camera"),
])
def test_settings_out_of_range_name_the_feature_and_range(
        fake: FakeGigECamera, settings: dict[str, Any], expected: str) -> None:
    message = open_error(config(**settings))
    assert expected in message
    assert message.startswith(f"genicam serial {SERIAL}: ")


def test_unknown_camera_lists_the_cameras_found(fake: FakeGigECamera) -> None:
    message = open_error(config(serial="NOPE"))
    assert "no camera with serial NOPE found" in message
    assert f"(serial {SERIAL})" in message


@pytest.mark.parametrize("fmt", ["Mono8", "Mono16", "RGB8", "BayerGR8"])
def test_pixel_formats_arrive_as_bgr(fake: FakeGigECamera, fmt: str) -> None:
    src = GenICamSource("gige", config(address="127.0.0.1", pixel_format=fmt,
                                       sensor_roi=(0, 0, 64, 48)))
    src.open()
    try:
        grab = src.read(time.monotonic)
        assert grab is not None and not isinstance(grab, type(None))
        image = grab.image  # type: ignore[union-attr]
        assert image.shape == (48, 64, 3) and image.dtype == np.uint8
        assert image.any()
        if fmt.startswith("Mono"):  # grey: the three channels are equal
            assert (image[..., 0] == image[..., 1]).all() and (image[..., 1] == image[..., 2]).all()
        assert src.info()["pixel_format"] == fmt
    finally:
        src.close()


def _events(cam: Camera) -> list[tuple[SourceState, str]]:
    seen: list[tuple[SourceState, str]] = []
    cam.add_listener(lambda e: seen.append((e.state, e.message)))
    return seen


def test_camera_killed_and_restarted_reconnects(fake: FakeGigECamera) -> None:
    cam = started(config(frame_rate=30, read_timeout_ms=200, stall_after_ms=500,
                         reconnect_initial_ms=100, reconnect_max_ms=400))
    events = _events(cam)
    slot = cam.subscribe()
    cam.start()
    try:
        assert slot.get(3.0) is not None
        fake.stop()  # power-cycled: the camera is gone
        _wait(lambda: cam.state in (SourceState.STALLED, SourceState.RECONNECTING), 5, "stall")
        _wait(lambda: cam.stats().open_errors >= 1, 10, "a failed reconnect")
        assert cam.state is not SourceState.STREAMING
        captured = cam.stats().captured
        fake.start()
        _wait(lambda: cam.stats().captured > captured + 5, 15, "frames after the restart")
        assert cam.state is SourceState.STREAMING
        assert cam.stats().reconnects >= 1
        states = [s for s, _ in events]
        assert SourceState.STALLED in states and SourceState.RECONNECTING in states
        assert states[-1] is SourceState.STREAMING
    finally:
        cam.stop()


def test_camera_silent_then_back_is_taken_over_again(fake: FakeGigECamera) -> None:
    """The camera process frozen (SIGSTOP: alive, silent, a hung switch port) then resumed:
    the stale handle, which still holds the camera's control channel, is freed before
    reopening, so the new one can write its settings and stream again."""
    import signal

    cam = started(config(frame_rate=30, read_timeout_ms=200, stall_after_ms=400,
                         reconnect_initial_ms=100, reconnect_max_ms=300))
    slot = cam.subscribe()
    cam.start()
    assert fake.proc is not None
    try:
        assert slot.get(3.0) is not None
        fake.proc.send_signal(signal.SIGSTOP)
        _wait(lambda: cam.state is not SourceState.STREAMING, 5, "stall")
        time.sleep(0.5)
        fake.proc.send_signal(signal.SIGCONT)
        captured = cam.stats().captured
        _wait(lambda: cam.stats().captured > captured + 5, 25, "frames after the resume")
        assert cam.state is SourceState.STREAMING
    finally:
        fake.proc.send_signal(signal.SIGCONT)
        cam.stop()
