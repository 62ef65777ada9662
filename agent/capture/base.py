"""The Source seam: a camera that yields frames and reports its state."""

from __future__ import annotations

import enum
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


class FrameSource(Protocol):
    """A blocking frame reader driven by one capture thread.

    `open` raises SourceError when the source cannot be opened. `read` returns
    one BGR uint8 image (with optional ground-truth part id and label), or None
    at the end of a finite source; it raises SourceError on a read failure.
    """

    camera_id: str
    description: str  # where the frames come from, for errors (URL without credentials, path)

    def open(self) -> None: ...

    def read(self) -> tuple[np.ndarray, str | None, str | None] | None: ...

    def close(self) -> None: ...
