"""Capped exponential backoff with jitter: never longer than the cap."""

from __future__ import annotations

import random


class Backoff:
    """Delay n is drawn from [d/2, d] with d = min(cap, initial * 2**n).

    The upper bound never exceeds `cap_s`, so a peer that comes back is tried
    again within the cap.
    """

    def __init__(self, initial_s: float, cap_s: float, rng: random.Random | None = None) -> None:
        self.initial_s = min(initial_s, cap_s)
        self.cap_s = cap_s
        self._rng = rng or random.Random()
        self._failures = 0
        self.current_s = 0.0

    def next(self) -> float:
        ceiling = min(self.cap_s, self.initial_s * 2.0 ** min(self._failures, 60))
        self._failures += 1
        self.current_s = self._rng.uniform(ceiling / 2, ceiling)
        return self.current_s

    def reset(self) -> None:
        self._failures = 0
        self.current_s = 0.0

    @property
    def failures(self) -> int:
        return self._failures
