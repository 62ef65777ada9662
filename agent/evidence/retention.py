"""Retention: the evidence store never grows past max_bytes, max_age, or min free disk.

Oldest first. Evidence still waiting for a sink (a `.wait-<sink>` marker) outlives the
age limit and is evicted only when the byte cap or the free-space floor forces it
out: then it is counted in `evicted_pending`, never silently. Runs on the writer
thread only (after each write and once a minute), from an in-memory index built by
one scan at start.
"""

from __future__ import annotations

import shutil
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from agent.evidence import layout
from agent.evidence.store import EvidenceStore


@dataclass
class RetentionStats:
    items: int = 0  # evidence items stored now
    bytes: int = 0  # bytes they take
    evicted: int = 0  # every item deleted by retention
    evicted_pending: int = 0  # of those: still waiting for a sink
    free_bytes: int = -1  # free space on the evidence file system (-1: unknown)


def free_bytes(path: str) -> int:
    try:
        return shutil.disk_usage(path).free
    except OSError:
        return -1


class Retention:
    def __init__(self, store: EvidenceStore, max_bytes: int, max_age_s: float,
                 min_free_bytes: int, *, clock: Callable[[], float] = time.time,
                 free: Callable[[str], int] = free_bytes) -> None:
        self.store = store
        self.max_bytes = max_bytes
        self.max_age_s = max_age_s
        self.min_free_bytes = min_free_bytes
        self._clock = clock
        self._free = free
        self._items: OrderedDict[str, int] = OrderedDict()  # id -> bytes, oldest first
        self._waits: dict[str, tuple[str, ...]] = {}  # id -> sinks it was written for
        self._total = 0
        self.stats = RetentionStats()

    def load(self) -> None:
        usage = self.store.usage()
        self._items = OrderedDict((eid, n) for eid, (n, _) in usage.items())
        self._waits = {eid: w for eid, (_, w) in usage.items() if w}
        self._total = sum(self._items.values())
        self._count()

    def add(self, eid: str, nbytes: int, waits: tuple[str, ...] = ()) -> None:
        if waits:
            self._waits[eid] = waits
        self._total += nbytes - self._items.get(eid, 0)
        self._items[eid] = nbytes
        self._items.move_to_end(eid)
        self._count()

    def room_for(self, nbytes: int) -> bool:
        """Make room for `nbytes` more; False when the disk stays below the floor anyway."""
        self.enforce(extra=nbytes)
        free = self._free(str(self.store.root))
        return free < 0 or free - nbytes >= self.min_free_bytes

    def enforce(self, extra: int = 0) -> list[str]:
        """Delete until every limit holds (with `extra` bytes about to be written)."""
        evicted = self._expire()
        while self._items and self._over(extra):
            eid = self._victim()
            self._evict(eid, pending=bool(self._pending(eid)))
            evicted.append(eid)
        self._count()
        return evicted

    def _expire(self) -> list[str]:
        cutoff_ms = (self._clock() - self.max_age_s) * 1000
        old = []
        for eid in list(self._items):
            if layout.id_millis(eid) >= cutoff_ms:
                break
            if not self._pending(eid):
                self._evict(eid, pending=False)
                old.append(eid)
        return old

    def _over(self, extra: int) -> bool:
        if self._total + extra > self.max_bytes:
            return True
        free = self._free(str(self.store.root))
        return 0 <= free and free - extra < self.min_free_bytes

    def _victim(self) -> str:
        """The oldest item no sink waits for; else the oldest item."""
        for eid in self._items:
            if not self._pending(eid):
                return eid
        return next(iter(self._items))

    def _pending(self, eid: str) -> bool:
        waits = self._waits.get(eid)
        if waits and not self.store.is_waited(eid, waits):
            del self._waits[eid]  # every sink delivered it
            return False
        return bool(waits)

    def _evict(self, eid: str, pending: bool) -> None:
        self._waits.pop(eid, None)
        self.store.delete(eid)
        self._total -= self._items.pop(eid, 0)
        self.stats.evicted += 1
        if pending:
            self.stats.evicted_pending += 1

    def _count(self) -> None:
        self.stats.items = len(self._items)
        self.stats.bytes = self._total
        self.stats.free_bytes = self._free(str(self.store.root))
