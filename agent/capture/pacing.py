"""Frame rate: pacing a source to a target fps, and measuring the rate delivered."""

from __future__ import annotations

from collections import deque


class Pacer:
    """Schedules frames at `fps` on a monotonic timeline.

    Paced sources (files, folders, synthetic) ask `delay(now)` how long to wait before
    the next read. Live sources are read as fast as they deliver (so nothing queues up
    inside the driver) and `admit(t)` drops frames that come too early for the target.
    Without a target fps every frame goes at once.
    """

    def __init__(self, fps: float | None) -> None:
        self.period = 1.0 / fps if fps else 0.0
        self._next: float | None = None

    def delay(self, now: float) -> float:
        """Seconds to wait before reading the next frame (0 when due or late)."""
        if not self.period or self._next is None:
            return 0.0
        return max(0.0, self._next - now)

    def admit(self, t: float) -> bool:
        """Whether a frame at time `t` is due; if so, the next slot is booked."""
        if not self.period:
            return True
        if self._next is not None and t < self._next - 0.25 * self.period:
            return False
        # Stay on the grid, but never schedule into the past after a pause.
        nxt = (self._next or t) + self.period
        self._next = nxt if nxt > t else t + self.period
        return True

    def reset(self) -> None:
        self._next = None


class FpsMeter:
    """Frames per second over the last `window_s` seconds."""

    def __init__(self, window_s: float = 2.0) -> None:
        self.window_s = window_s
        self._times: deque[float] = deque()

    def tick(self, t: float) -> None:
        self._times.append(t)
        self._trim(t)

    def rate(self, now: float) -> float:
        self._trim(now)
        if len(self._times) < 2:
            return 0.0
        span = self._times[-1] - self._times[0]
        return (len(self._times) - 1) / span if span > 0 else 0.0

    def _trim(self, now: float) -> None:
        while self._times and self._times[0] < now - self.window_s:
            self._times.popleft()
