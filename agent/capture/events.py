"""What a camera reports: state-change / error events and plain counters."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from agent.capture.base import SourceState


@dataclass(frozen=True)
class CameraEvent:
    """A state change (`state != previous`) or an error (`error=True`, state unchanged
    or changed). `message` names the camera and the source, never a URL password."""

    camera: str
    state: SourceState
    previous: SourceState
    message: str
    wall_time: datetime
    error: bool = False


@dataclass(frozen=True)
class CameraStats:
    """Counters of one camera since start.

    captured: frames read from the source; skipped: read but not handed out because
    of the fps target (live sources); dropped: handed out but replaced in a consumer
    slot before that consumer took it (summed over consumers); reconnects: reconnect
    attempts; fps: frames handed out per second over the last couple of seconds.
    """

    captured: int
    dropped: int
    read_errors: int
    reconnects: int
    fps: float
    last_frame_age_s: float | None
    state: SourceState
    skipped: int = 0
    open_errors: int = 0
