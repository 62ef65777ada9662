"""The durable outbox: an SQLite WAL store of records per sink, written before any send.

`enqueue` returns once the record is committed (fsynced with synchronous=FULL).
Concurrent callers share one commit (group_commit.py). Forwarders lease batches
in order, then ack (delete), release (back to ready, counted as retried) or bury
(dead, with the reason). Records stored by an earlier process, or leased before,
come back with `replayed=True`.

Lost data is never silent: records committed in an earlier run and missing now (a
damaged WAL, a quarantined file; watermark.py) and records the store could not write
(full disk) are counted per sink as `lost` and reported as a `Loss` to the listener
(`set_loss_listener`: the daemon raises an alarm record, an audit line and a log). A
full disk at start does not stop the daemon: the store starts closed, counts what it
cannot take, and opens itself once space returns.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from agent.config.models import OutboxSettings
from agent.logutil import RepeatLimiter
from agent.outbox import queries
from agent.outbox.codec import Encoded, Leased, encode
from agent.outbox.group_commit import (
    GroupCommitWriter,
    StoreUnavailable,
    WriterHooks,
    flush_counters,
    is_disk_full,
)
from agent.outbox.opening import open_store
from agent.outbox.stats import Changes, SinkOutboxStats, StatsBook, StoreStats
from agent.outbox.upkeep import Upkeep
from agent.outbox.watermark import Loss, Watermark
from agent.protocols.outbox_policy import OutboxPolicy
from agent.types import Record

log = logging.getLogger(__name__)

FILE_NAME = "outbox.sqlite3"
SWEEP_EVERY_S = 1.0


class Outbox:
    def __init__(self, upkeep: Upkeep, policies: Mapping[str, OutboxPolicy]) -> None:
        """Use `Outbox.open`."""
        self._writer: GroupCommitWriter  # set by `open`, once the first try to open is made
        self._upkeep = upkeep
        self._book = upkeep.book
        self._policies = dict(policies)
        self._replay_upto = 0
        self._last_sweep: dict[str, float] = {}  # writer thread only
        self._listeners: dict[str, list[Callable[[], None]]] = {}
        self._refusing = RepeatLimiter(log, "outbox refused a record")
        self._loss_lock = threading.Lock()
        self._on_loss: tuple[asyncio.AbstractEventLoop, Callable[[Loss], None]] | None = None
        self._losses: list[Loss] = []  # reported before a listener was set
        self._unstored: dict[str, int] = {}  # sink -> records not stored in this episode

    @classmethod
    def open(cls, path: Path, settings: OutboxSettings,
             policies: Mapping[str, OutboxPolicy]) -> Outbox:
        """Open (or create) the store; in-flight rows of an earlier process become ready.
        On a full disk it starts closed (records counted as lost) and keeps trying."""
        path = Path(path)
        upkeep = Upkeep(StatsBook(str(path)), Watermark(path))
        box = cls(upkeep, policies)
        try:
            conn: sqlite3.Connection | None = box._open_now(path, settings.synchronous)
        except Exception as exc:
            if not is_disk_full(exc):
                raise
            log.error("OUTBOX %s CANNOT BE OPENED (%s): records are counted as lost until "
                      "space is freed; tried again every second; inspection and PLC commands "
                      "continue", path, exc)
            upkeep.book.update_store(opened=False, disk_full=True, disk_full_events=1)
            conn = None
        hooks = WriterHooks(upkeep.after_commit, upkeep.after_failure, upkeep.when_idle,
                            upkeep.on_close)
        box._writer = GroupCommitWriter(conn, settings.synchronous,
                                        settings.group_commit_ms / 1000.0, hooks,
                                        opener=partial(box._open_now, path, settings.synchronous))
        box._writer.start()
        return box

    def _open_now(self, path: Path, synchronous: str) -> sqlite3.Connection:
        opened = open_store(path, synchronous, self._upkeep)
        self._replay_upto = opened.replay_upto_seq
        if opened.loss is not None:
            self._report_loss(opened.loss)
        return opened.conn

    # --- losses --------------------------------------------------------------

    def set_loss_listener(self, callback: Callable[[Loss], None]) -> None:
        """`callback(loss)` runs on this loop for every loss, those found at open included."""
        loop = asyncio.get_running_loop()
        with self._loss_lock:
            self._on_loss = (loop, callback)
            early, self._losses = self._losses, []
        for loss in early:
            loop.call_soon(callback, loss)

    def _report_loss(self, loss: Loss) -> None:
        """Log it, and hand it to the listener (any thread)."""
        if not loss.ongoing:
            log.error("OUTBOX LOST %s RECORD(S) (%s, by sink: %s): %s",
                      loss.total if loss.lost or loss.cause != "quarantined" else "AN UNKNOWN "
                      "NUMBER OF", loss.cause, loss.lost, loss.detail)
        with self._loss_lock:
            if self._on_loss is None:
                self._losses.append(loss)
                return
            loop, callback = self._on_loss
        try:
            loop.call_soon_threadsafe(callback, loss)
        except RuntimeError:
            log.debug("loss reported after the loop closed: %s", loss)

    def _not_stored(self, sink: str, n: int, exc: Exception) -> None:
        """Records the store could not write: lost (counted); the first one starts an episode."""
        self._book.count(sink, "lost", n)
        first = not self._unstored
        self._unstored[sink] = self._unstored.get(sink, 0) + n
        if first:
            self._report_loss(Loss("not_stored", {sink: n}, f"the outbox cannot store "
                                   f"records: {exc}", self._book.store.path, ongoing=True))

    def _stored_again(self) -> None:
        if self._unstored:
            lost, self._unstored = self._unstored, {}
            self._writer.submit(partial(_persist_lost, lost), durable=False)
            self._report_loss(Loss("not_stored", lost, "records could not be stored (full "
                                   "disk or write errors) until now; they will not be "
                                   "delivered", self._book.store.path))

    def policy(self, sink: str) -> OutboxPolicy:
        return self._policies.get(sink) or self._policies.setdefault(sink, OutboxPolicy())

    def add_listener(self, sink: str, callback: Callable[[], None]) -> None:
        """`callback()` runs on the loop after each record committed for `sink` (Forwarder.wake)."""
        self._listeners.setdefault(sink, []).append(callback)

    def remove_listener(self, sink: str, callback: Callable[[], None]) -> None:
        if callback in self._listeners.get(sink, []):
            self._listeners[sink].remove(callback)

    # --- producers -----------------------------------------------------------

    async def enqueue(self, sink: str, record: Record) -> bool:
        """Commit `record` for `sink`; True once durable, False if refused (always counted)."""
        return (await self.enqueue_many(sink, [record]))[0]

    async def enqueue_many(self, sink: str, records: Sequence[Record]) -> list[bool]:
        """Commit `records` for `sink`, in this order, in one transaction; for each: True once
        durable, False if refused (always counted). A caller holding several records at once
        (the record router after a burst) pays one commit for all of them."""
        return await self.enqueue_many_queued(sink, records)

    def enqueue_many_queued(self, sink: str,
                            records: Sequence[Record]) -> Coroutine[Any, Any, list[bool]]:
        """`enqueue_many`, but the records are encoded and queued for the writer before this
        returns: calls made one after another commit in that order. Await the result."""
        encoded: list[tuple[int, Encoded]] = []
        for i, record in enumerate(records):
            try:
                encoded.append((i, encode(sink, record)))
            except Exception:  # noqa: BLE001 - a record problem must not stop inspection
                log.exception("outbox: cannot store record %s for sink %s", record.id, sink)
                self._book.count(sink, "refused")
                self._book.update_store(errors=self._book.store.errors + 1)
        fut = None
        if encoded:
            fut = self._writer.submit(partial(self._insert_all, [e for _, e in encoded]),
                                      durable=True, records=len(encoded))
        return self._stored(sink, records, encoded, fut)

    async def _stored(self, sink: str, records: Sequence[Record],
                      encoded: list[tuple[int, Encoded]],
                      fut: asyncio.Future[list[bool]] | None) -> list[bool]:
        stored = [False] * len(records)
        if fut is None:
            return stored
        try:
            done = await fut
        except StoreUnavailable as exc:
            self._not_stored(sink, len(encoded), exc)
            self._refusing.failure("%d record(s) for sink %s, first %s: %s", len(encoded),
                                   sink, records[encoded[0][0]].id, exc)
            return stored
        for (i, _), ok in zip(encoded, done, strict=True):
            stored[i] = ok
        if all(done):
            self._refusing.recovered("records are stored again")
        else:
            first = records[encoded[done.index(False)][0]].id
            self._refusing.failure("%s for sink %s: outbox bound reached (on_full=%s)",
                                   first, sink, self.policy(sink).on_full)
        if any(done):
            self._stored_again()
            for wake in self._listeners.get(sink, ()):
                wake()
        return stored

    def _insert_all(self, encoded: list[Encoded], conn: sqlite3.Connection,
                    ch: Changes) -> list[bool]:
        sink = encoded[0].sink
        policy = self.policy(sink)
        self._maybe_sweep(conn, ch, sink, policy)
        return queries.insert_many(conn, ch, encoded, policy, self._book.bytes_of(sink))

    def _maybe_sweep(self, conn: sqlite3.Connection, ch: Changes, sink: str,
                     policy: OutboxPolicy) -> None:
        now = time.monotonic()
        if now - self._last_sweep.get(sink, -SWEEP_EVERY_S) >= SWEEP_EVERY_S:
            self._last_sweep[sink] = now
            queries.evict_expired(conn, ch, sink, time.time())

    # --- forwarders ----------------------------------------------------------

    async def lease(self, sink: str, limit: int, decode_payload: bool = True) -> list[Leased]:
        """The next `limit` ready records of `sink`, in order, now in flight. With
        `decode_payload=False` the payloads are left as the stored JSON (`payload_json`)."""
        def op(conn: sqlite3.Connection, ch: Changes) -> list[Leased]:
            self._maybe_sweep(conn, ch, sink, self.policy(sink))
            return queries.lease(conn, ch, sink, limit, self._replay_upto, decode_payload)
        result: list[Leased] = await self._writer.submit(op, durable=False)
        return result

    async def ack(self, sink: str, seqs: Sequence[int]) -> int:
        """The sink acknowledged these: delete them (counted as sent)."""
        n: int = await self.ack_nowait(sink, seqs)
        return n

    def ack_nowait(self, sink: str, seqs: Sequence[int]) -> asyncio.Future[int]:
        """Queue the delete and return at once; operations queued later see it done."""
        return self._writer.submit(partial(_call, queries.ack, sink, list(seqs)), durable=False)

    async def release(self, sink: str, seqs: Sequence[int]) -> int:
        """The send failed: back to ready, first in line (counted as retried)."""
        n: int = await self._writer.submit(partial(_call, queries.release, sink, seqs),
                                           durable=False)
        return n

    async def unlease(self, sink: str, seqs: Sequence[int]) -> int:
        """Leased but never sent (a forwarder's read-ahead): back to ready as they were."""
        n: int = await self._writer.submit(partial(_call, queries.unlease, sink, seqs),
                                           durable=False)
        return n

    async def bury(self, sink: str, seqs: Sequence[int], reason: str) -> int:
        """The sink rejected these for good: dead, with the reason (counted)."""
        def op(conn: sqlite3.Connection, ch: Changes) -> int:
            return queries.bury(conn, ch, sink, seqs, reason)
        n: int = await self._writer.submit(op, durable=True)
        return n

    # --- health --------------------------------------------------------------

    def stats(self) -> dict[str, SinkOutboxStats]:
        snap = self._book.snapshot(time.time())
        for sink in self._policies:
            snap.setdefault(sink, SinkOutboxStats())
        return snap

    def store_stats(self) -> StoreStats:
        return self._book.store

    async def close(self) -> None:
        """Finish queued writes, checkpoint the WAL into the database file, close."""
        await self._writer.close()


def _call(fn: Callable[..., int], sink: str, seqs: Sequence[int],
          conn: sqlite3.Connection, ch: Changes) -> int:
    return fn(conn, ch, sink, seqs)


def _persist_lost(lost: dict[str, int], conn: sqlite3.Connection, _: Changes) -> None:
    """Add records counted as lost in memory only (the file could not take them) to the
    persisted counters; the book has them already."""
    ch = Changes()
    for sink, n in lost.items():
        ch.count(sink, "lost", n)
    flush_counters(conn, ch)
