"""k-of-n confirmation over the last n frames of one defect class."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Mark:
    """One frame in the window: did it show the class, and with what evidence."""

    seq: int
    hit: bool
    score: float = 0.0


class KofN:
    """A sliding window of the last `n` frames; confirmed when `k` of them hit."""

    def __init__(self, k: int, n: int) -> None:
        self.k = k
        self.window: deque[Mark] = deque(maxlen=n)

    @property
    def n(self) -> int:
        return self.window.maxlen or 0

    def push(self, mark: Mark) -> None:
        self.window.append(mark)

    def hits(self) -> list[Mark]:
        return [m for m in self.window if m.hit]

    def confirmed(self) -> bool:
        return len(self.hits()) >= self.k

    def clear(self) -> None:
        self.window.clear()

    def resize(self, k: int, n: int) -> None:
        """New k and n (config reload), keeping the most recent frames."""
        self.k = k
        self.window = deque(self.window, maxlen=n)
