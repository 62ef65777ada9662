"""Plain statistics of the outbox, read by the health module at scrape time."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, replace

# Counters persisted in the `counters` table, updated in the transaction that causes them.
COUNTERS = ("sent", "retried", "evicted", "refused", "dead_lettered", "lost")


@dataclass(frozen=True)
class SinkOutboxStats:
    """One sink's share of the outbox.

    depth: records waiting (ready or in flight), dead rows excluded.
    bytes: payload bytes held for the sink, dead rows included (what max_bytes bounds).
    oldest_age_s: age of the oldest waiting record (0 when empty).
    sent, retried, evicted, refused, dead_lettered: counters since the store was created.
    refused: not taken by the bound (on_full=refuse_new, larger than max_bytes) or not
    encodable; lost: taken but gone by a fault - the store could not write them (full disk,
    I/O error) or they were missing from the database at a start (watermark.py).
    dead: dead-lettered rows held now (`edge-agent outbox retry` sends them again).
    """

    depth: int = 0
    bytes: int = 0
    oldest_age_s: float = 0.0
    sent: int = 0
    retried: int = 0
    evicted: int = 0
    refused: int = 0
    dead: int = 0
    dead_lettered: int = 0
    lost: int = 0


@dataclass(frozen=True)
class StoreStats:
    """The store as a whole: where it lives and whether it can still write."""

    path: str
    disk_full: bool = False
    disk_full_events: int = 0  # transactions that failed with a full disk
    errors: int = 0  # other failed transactions (I/O error, corruption, bugs)
    moved_aside: str | None = None  # where a corrupt or foreign file was moved at open
    opened: bool = True  # False while the file cannot be opened (full disk at start)
    lost_at_start: int = 0  # committed records found missing (or quarantined) at open
    commits: int = 0
    records_committed: int = 0


@dataclass
class _SinkBook:
    depth: int = 0
    bytes: int = 0
    dead: int = 0
    oldest_ts: float | None = None
    counters: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTERS, 0))


@dataclass
class Changes:
    """What one operation changed; applied to the book only after its commit."""

    depth: dict[str, int] = field(default_factory=dict)
    bytes: dict[str, int] = field(default_factory=dict)
    dead: dict[str, int] = field(default_factory=dict)
    counters: dict[tuple[str, str], int] = field(default_factory=dict)
    touched: set[str] = field(default_factory=set)
    parent: Changes | None = None  # the transaction this operation runs in

    def pending_bytes(self, sink: str) -> int:
        """Bytes this operation and the earlier ones of its transaction added (not yet committed)."""
        up = self.parent.pending_bytes(sink) if self.parent is not None else 0
        return up + self.bytes.get(sink, 0)

    def add(self, sink: str, *, depth: int = 0, nbytes: int = 0, dead: int = 0) -> None:
        self.touched.add(sink)
        self.depth[sink] = self.depth.get(sink, 0) + depth
        self.bytes[sink] = self.bytes.get(sink, 0) + nbytes
        self.dead[sink] = self.dead.get(sink, 0) + dead

    def count(self, sink: str, name: str, n: int = 1) -> None:
        if n:
            self.touched.add(sink)
            self.counters[(sink, name)] = self.counters.get((sink, name), 0) + n

    def merge(self, other: Changes) -> None:
        for s in other.touched:
            self.add(s, depth=other.depth.get(s, 0), nbytes=other.bytes.get(s, 0),
                     dead=other.dead.get(s, 0))
        for (s, name), n in other.counters.items():
            self.count(s, name, n)


class StatsBook:
    """Thread-safe per-sink figures: written by the writer thread, read by the loop."""

    def __init__(self, path: str) -> None:
        self._lock = threading.Lock()
        self._sinks: dict[str, _SinkBook] = {}
        self.store = StoreStats(path=path)

    def _sink(self, sink: str) -> _SinkBook:
        return self._sinks.setdefault(sink, _SinkBook())

    def reset(self, rows: dict[str, tuple[int, int, int]], counters: dict[tuple[str, str], int],
              oldest: dict[str, float | None]) -> None:
        """Replace everything with what the database says (at open, after another process wrote)."""
        with self._lock:
            memory = {s: b.counters for s, b in self._sinks.items()}
            self._sinks = {}
            for sink, (depth, nbytes, dead) in rows.items():
                self._sinks[sink] = _SinkBook(depth, nbytes, dead, oldest.get(sink))
            for (sink, name), value in counters.items():
                book = self._sink(sink)
                book.counters[name] = max(value, memory.get(sink, {}).get(name, 0))
            for sink, counted in memory.items():  # counts the file never took (full disk)
                book = self._sink(sink)
                for name, value in counted.items():
                    book.counters[name] = max(book.counters[name], value)

    def apply(self, ch: Changes, oldest: dict[str, float | None]) -> None:
        with self._lock:
            for s in ch.touched:
                b = self._sink(s)
                b.depth += ch.depth.get(s, 0)
                b.bytes += ch.bytes.get(s, 0)
                b.dead += ch.dead.get(s, 0)
            for (s, name), n in ch.counters.items():
                self._sink(s).counters[name] += n
            for s, ts in oldest.items():
                self._sink(s).oldest_ts = ts

    def count(self, sink: str, name: str, n: int = 1) -> None:
        """A count that could not be written to the database (full disk)."""
        with self._lock:
            self._sink(sink).counters[name] += n

    def bytes_of(self, sink: str) -> int:
        with self._lock:
            return self._sink(sink).bytes

    def update_store(self, **changes: object) -> None:
        with self._lock:
            self.store = replace(self.store, **changes)  # type: ignore[arg-type]

    def held(self) -> dict[str, int]:
        """sink -> rows held (waiting + dead): what the high-water mark notes."""
        with self._lock:
            return {s: b.depth + b.dead for s, b in self._sinks.items()}

    def snapshot(self, now: float) -> dict[str, SinkOutboxStats]:
        with self._lock:
            return {s: _freeze(b, now) for s, b in self._sinks.items()}


def _freeze(b: _SinkBook, now: float) -> SinkOutboxStats:
    age = max(0.0, now - b.oldest_ts) if b.oldest_ts is not None and b.depth else 0.0
    return SinkOutboxStats(depth=b.depth, bytes=b.bytes, oldest_age_s=age, dead=b.dead,
                           **b.counters)
