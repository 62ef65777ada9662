"""A triggered source waiting for its trigger (IDLE reads) is streaming, not stalled;
once its reads fail it stalls as any other source does."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from agent.capture.base import IDLE, Grab, Idle, SourceError, SourceState
from agent.capture.camera import Camera
from agent.capture.sources.synthetic_source import SyntheticCameraConfig


class WaitingSource:
    """IDLE every 20 ms; one frame when `fire` is set; read errors once `dead` is set."""

    camera_id = "trig"
    description = "triggered fake"
    live = True

    def __init__(self) -> None:
        self.fire = False
        self.dead = False

    def open(self) -> None:
        if self.dead:
            raise SourceError("camera gone")

    def read(self, clock: Callable[[], float]) -> Grab | Idle | None:
        time.sleep(0.02)
        if self.dead:
            raise SourceError("does not answer")
        if self.fire:
            self.fire = False
            return Grab(np.full((4, 4, 3), 7, np.uint8), clock())
        return IDLE

    def close(self) -> None:
        pass


def test_idle_reads_keep_a_triggered_camera_streaming() -> None:
    opts = SyntheticCameraConfig.model_validate({
        "type": "synthetic", "stall_after_ms": 150, "reconnect_initial_ms": 20,
        "reconnect_max_ms": 100})
    src = WaitingSource()
    cam = Camera("trig", src, opts)
    slot = cam.subscribe()
    cam.start()
    try:
        time.sleep(0.5)  # three stall periods without a frame
        assert cam.state is SourceState.STREAMING and cam.stats().captured == 0
        assert cam.stats().read_errors == 0
        t = time.monotonic()
        src.fire = True
        frame = slot.get_after(t, 1.0)
        assert frame is not None and cam.stats().captured == 1
        src.dead = True
        deadline = time.monotonic() + 2
        while cam.state is SourceState.STREAMING and time.monotonic() < deadline:
            time.sleep(0.01)
        assert cam.state in (SourceState.STALLED, SourceState.RECONNECTING)
    finally:
        cam.stop()
