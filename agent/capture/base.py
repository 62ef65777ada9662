"""The Source seam: a camera that yields frames and reports its state."""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np


class SourceState(enum.StrEnum):
    CONNECTING = "connecting"
    STREAMING = "streaming"
    STALLED = "stalled"
    RECONNECTING = "reconnecting"
    FAILED = "failed"
    STOPPED = "stopped"


class SourceError(Exception):
    """Opening or reading a source failed; the message names the camera and the source."""


@dataclass(frozen=True, slots=True, eq=False)
class Grab:
    """One image read from a source, with the monotonic time it was grabbed (before decode)."""

    image: np.ndarray  # HxWx3 BGR uint8
    t_grab: float
    part_id: str | None = None  # ground truth where the source knows it (synthetic)
    truth: str | None = None


class FrameSource(Protocol):
    """A blocking frame reader driven by one capture thread.

    `open` raises SourceError when the source cannot be opened. `read(clock)` returns
    one `Grab` (its `t_grab` taken with `clock` right at grab), None at the end of
    a finite source, or IDLE when a healthy triggered source had no frame to give;
    it raises SourceError on a read failure. `live` sources (devices,
    network streams) deliver at their own rate and are never slowed down by the
    reader; the others (files, folders, synthetic) are paced to the target fps.
    """

    camera_id: str
    description: str  # where the frames come from, for errors (URL without credentials, path)
    live: bool

    def open(self) -> None: ...

    def read(self, clock: Callable[[], float]) -> Grab | Idle | None: ...

    def close(self) -> None: ...


class Idle:
    """`read()` result of a healthy source that had no frame to give: a triggered camera
    waiting for its trigger. The camera counts it as a sign of life, not as a frame."""

    def __repr__(self) -> str:
        return "IDLE"


IDLE = Idle()
