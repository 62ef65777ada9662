"""A camera listener for tests: records every CameraEvent, waits for conditions."""

from __future__ import annotations

import threading
from collections.abc import Callable

from agent.capture.base import SourceState
from agent.capture.events import CameraEvent


class Events:
    def __init__(self) -> None:
        self.items: list[CameraEvent] = []
        self._cond = threading.Condition()

    def __call__(self, ev: CameraEvent) -> None:
        with self._cond:
            self.items.append(ev)
            self._cond.notify_all()

    def transitions(self) -> list[tuple[SourceState, SourceState]]:
        with self._cond:
            return [(e.previous, e.state) for e in self.items if e.previous is not e.state]

    def wait(self, pred: Callable[[list[CameraEvent]], bool], timeout: float = 15.0) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: pred(self.items), timeout)
