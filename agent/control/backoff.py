"""Capped exponential backoff with jitter for reconnect supervisors."""

from __future__ import annotations

import random


class Backoff:
    def __init__(self, initial_s: float, max_s: float, jitter: float = 0.2) -> None:
        self.initial_s = initial_s
        self.max_s = max(max_s, initial_s)
        self.jitter = jitter
        self._next = initial_s

    def next_delay(self) -> float:
        delay = self._next
        self._next = min(self._next * 2, self.max_s)
        return delay * (1 + random.uniform(-self.jitter, self.jitter))

    def reset(self) -> None:
        self._next = self.initial_s
