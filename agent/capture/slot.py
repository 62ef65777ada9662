"""Newest-frame slot: the hand-off from one capture thread to one consumer.

The capture thread never waits for the consumer. A frame the consumer has not
taken yet is replaced by the next one and counted in `dropped`, so the consumer
always gets the newest frame and every frame is accounted for:

    put_count == delivered + dropped + (1 if a frame is pending else 0)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from agent.types import Frame


class LatestFrame:
    """One slot per consumer; thread-safe.

    After `close()` no call waits any more: `get` hands out a frame still pending
    (so the last frame of a finite source is not lost), then returns None; frames
    put after close are counted as dropped.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._frame: Frame | None = None
        self._closed = False
        self.put_count = 0
        self.delivered = 0
        self.dropped = 0

    def put(self, frame: Frame) -> None:
        """Store `frame` as the newest; never blocks (beyond the lock)."""
        with self._cond:
            self.put_count += 1
            if self._closed:
                self.dropped += 1
                return
            if self._frame is not None:
                self.dropped += 1
            self._frame = frame
            self._cond.notify_all()

    def get(self, timeout: float | None = None) -> Frame | None:
        """The newest unconsumed frame; waits up to `timeout` seconds (None = forever).

        Returns None on timeout, or once the slot is closed and empty.
        """
        with self._cond:
            self._wait(lambda: self._frame is not None, timeout)
            return self._take()

    def get_after(self, t: float, timeout: float) -> Frame | None:
        """The newest frame captured after monotonic time `t` (triggered mode).

        A pending frame captured at or before `t` is discarded and counted as
        dropped. Returns None on timeout, or once the slot is closed.
        """

        def fresh() -> bool:
            self._discard_older_than(t)
            return self._frame is not None

        with self._cond:
            self._wait(fresh, timeout)
            self._discard_older_than(t)
            return self._take()

    def close(self) -> None:
        """Wake every waiter; no call waits after this."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def pending(self) -> bool:
        """A frame is waiting to be taken."""
        return self._frame is not None

    def _wait(self, ready: Callable[[], bool], timeout: float | None) -> None:
        deadline = None if timeout is None else time.monotonic() + timeout
        while not ready() and not self._closed:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return
            self._cond.wait(remaining)

    def _discard_older_than(self, t: float) -> None:
        if self._frame is not None and self._frame.t_capture <= t:
            self._frame = None
            self.dropped += 1

    def wait_taken(self, timeout: float) -> bool:
        """Wait until no frame is pending (the consumer took it); False on timeout."""
        with self._cond:
            self._wait(lambda: self._frame is None, timeout)
            return self._frame is None

    def _take(self) -> Frame | None:
        frame, self._frame = self._frame, None
        if frame is not None:
            self.delivered += 1
            self._cond.notify_all()  # a producer may wait in wait_taken
        return frame
