"""Capped exponential backoff with jitter for reconnects."""

from __future__ import annotations

import random


class Backoff:
    """Delays initial, 2*initial, 4*initial ... capped at `maximum`, each scaled by a
    random factor in [1 - jitter, 1] so that many cameras do not reconnect in step."""

    def __init__(
        self,
        initial_s: float,
        maximum_s: float,
        jitter: float = 0.2,
        rng: random.Random | None = None,
    ) -> None:
        if initial_s <= 0 or maximum_s < initial_s:
            raise ValueError("need 0 < initial_s <= maximum_s")
        if not 0 <= jitter < 1:
            raise ValueError("jitter must be within [0, 1)")
        self.initial_s = initial_s
        self.maximum_s = maximum_s
        self.jitter = jitter
        self._rng = rng or random.Random()
        self._attempt = 0

    def next_delay(self) -> float:
        """The delay before the next attempt; each call doubles the base delay."""
        base = min(self.maximum_s, self.initial_s * 2.0 ** min(self._attempt, 62))
        self._attempt += 1
        return base * (1.0 - self.jitter * self._rng.random())

    def reset(self) -> None:
        self._attempt = 0

    @property
    def attempts(self) -> int:
        return self._attempt
