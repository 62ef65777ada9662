"""What the writer thread does around transactions: keep the stats and the high-water mark
true, log trouble once."""

from __future__ import annotations

import logging
import sqlite3
import time

from agent.logutil import RepeatLimiter
from agent.outbox import queries
from agent.outbox.group_commit import is_disk_full
from agent.outbox.stats import Changes, StatsBook
from agent.outbox.watermark import Watermark

log = logging.getLogger(__name__)


class Upkeep:
    """Writer-thread hooks: after a commit, after a failure, when idle, at close."""

    def __init__(self, book: StatsBook, mark: Watermark) -> None:
        self.book = book
        self.mark = mark
        self._max_seq = 0
        self._disk = RepeatLimiter(log, "outbox disk full", logging.ERROR)
        self._errors = RepeatLimiter(log, "outbox write failed", logging.ERROR)
        self._evicting = RepeatLimiter(log, "outbox evicting")
        self._data_version: int | None = None

    def load(self, conn: sqlite3.Connection) -> None:
        """Read depth, bytes, dead, counters and oldest ages from the database."""
        rows = queries.census(conn)
        counters = queries.counters(conn)
        names = set(rows) | {s for s, _ in counters}
        self.book.reset(rows, counters, {s: queries.oldest_ts(conn, s) for s in names})
        self._data_version = _data_version(conn)
        self._max_seq = queries.last_seq(conn)

    def note(self) -> None:
        """Write the high-water mark from what the book holds now."""
        self.mark.write(self._max_seq, self.book.held())

    def after_commit(self, conn: sqlite3.Connection, tx: Changes, records: int) -> None:
        oldest = {s: queries.oldest_ts(conn, s) for s in tx.touched}
        self.book.apply(tx, oldest)
        if any(tx.depth.get(s, 0) + tx.dead.get(s, 0) > 0 for s in tx.touched):
            self._max_seq = queries.last_seq(conn)  # rows were inserted
        if tx.touched:
            self.note()
        for (sink, name), n in tx.counters.items():
            if name == "evicted":
                self._evicting.failure("sink %s: %d oldest record(s) evicted to stay within "
                                       "max_bytes / max_age (counted in stats)", sink, n)
        store = self.book.store
        changes: dict[str, object] = {"commits": store.commits + 1,
                                      "records_committed": store.records_committed + records}
        if store.disk_full:
            changes["disk_full"] = False
            self._disk.recovered("writes succeed again")
        self._errors.recovered("writes succeed again")
        self.book.update_store(**changes)  # (our own commits leave data_version as it is)

    def after_failure(self, exc: BaseException) -> None:
        store = self.book.store
        if is_disk_full(exc):
            self.book.update_store(disk_full=True, disk_full_events=store.disk_full_events + 1)
            self._disk.failure("%s: records are lost (counted) until space is freed; "
                               "inspection and PLC commands continue", exc)
        else:
            self.book.update_store(errors=store.errors + 1)
            self._errors.failure("%s: %s", type(exc).__name__, exc)

    def when_idle(self, conn: sqlite3.Connection) -> None:
        """Another process (`edge-agent outbox retry`) changed the file: count again."""
        if _data_version(conn) != self._data_version:
            self.load(conn)
            self.note()
        self.mark.sync()

    def on_close(self, conn: sqlite3.Connection) -> None:
        t0 = time.monotonic()
        try:
            busy, wal_pages, done = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        finally:
            self.mark.close()
        log.info("outbox checkpointed (%s/%s pages, busy=%s) in %.0f ms", done, wal_pages, busy,
                 (time.monotonic() - t0) * 1000)


def _data_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA data_version").fetchone()[0])
