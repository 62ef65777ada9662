"""UUIDv7 event ids (RFC 9562), strictly increasing within the process.

Layout: 48-bit Unix time in ms | version 7 | 12-bit counter (rand_a, RFC 9562 6.2
method 1) | variant | 62 random bits. The counter starts at a random value below 2048
each new millisecond and counts up, so ids made in the same millisecond still sort in
creation order; only after 4096 ids in one millisecond does the timestamp borrow the
next one (the `uuid6` package borrows a millisecond on every id made within the same
one, so a burst of 30,000 ids a second moved the embedded time ~29 s ahead per second).

The random bits come from os.urandom read 4 KiB at a time: one system call per ~500
ids instead of one per id. That call releases the GIL, and on a busy 2-core box each
release handed the GIL to another thread mid-burst (bench/bench_outbox.py: a third
of the record producers' time went there).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable

_POOL_BYTES = 4096


class EventIds:
    """Callable: a new id per call. Thread-safe."""

    def __init__(self, clock_ns: Callable[[], int] = time.time_ns) -> None:
        self._clock_ns = clock_ns
        self._lock = threading.Lock()
        self._pool = b""
        self._pos = 0
        self._ms = -1
        self._counter = 0

    def _random(self, n: int) -> int:
        if self._pos + n > len(self._pool):
            self._pool, self._pos = os.urandom(_POOL_BYTES), 0
        chunk = self._pool[self._pos:self._pos + n]
        self._pos += n
        return int.from_bytes(chunk, "big")

    def __call__(self) -> str:
        with self._lock:
            ms = self._clock_ns() // 1_000_000
            if ms <= self._ms and self._counter < 0xFFF:  # same ms (or clock stepped back)
                self._counter += 1
            else:  # a new millisecond, or the counter is full: borrow the next one
                self._ms, self._counter = max(ms, self._ms + 1), self._random(2) & 0x7FF
            value = ((self._ms & 0xFFFF_FFFF_FFFF) << 80 | 0x7 << 76 | self._counter << 64
                     | 0b10 << 62 | self._random(8) & 0x3FFF_FFFF_FFFF_FFFF)
        h = f"{value:032x}"
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
