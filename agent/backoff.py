"""The one capped exponential backoff: camera reconnects, PLC link supervisors, outbox retries.

Delay n is min(cap, initial * 2**n), scaled by a random factor drawn from
[1 - jitter, 1]: jitter spreads many cameras or sinks that failed together, and
because it only ever shortens a delay, no delay exceeds the cap. `jitter=0` is the
switch for tests that want exact delays (or pass a seeded `rng`).
"""

from __future__ import annotations

import random


class Backoff:
    def __init__(self, initial_s: float, cap_s: float, jitter: float = 0.2,
                 rng: random.Random | None = None) -> None:
        if initial_s <= 0 or cap_s <= 0:
            raise ValueError("backoff delays must be > 0")
        if not 0 <= jitter < 1:
            raise ValueError("jitter must be within [0, 1)")
        self.cap_s = cap_s
        self.initial_s = min(initial_s, cap_s)  # a first delay above the cap is clamped to it
        self.jitter = jitter
        self._rng = rng or random.Random()
        self._attempt = 0
        self.current_s = 0.0  # the last delay handed out (0 after a reset)

    def next_delay(self) -> float:
        """The delay before the next attempt; each call doubles the base, up to the cap."""
        base = min(self.cap_s, self.initial_s * 2.0 ** min(self._attempt, 62))
        self._attempt += 1
        self.current_s = base * (1.0 - self.jitter * self._rng.random())
        return self.current_s

    def reset(self) -> None:
        self._attempt = 0
        self.current_s = 0.0

    @property
    def attempts(self) -> int:
        return self._attempt
