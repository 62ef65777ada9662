"""The durable outbox: an SQLite WAL store of records per sink, written before any send.

`enqueue` returns once the record is committed (fsynced with synchronous=FULL).
Concurrent callers share one commit (group_commit.py). Forwarders lease batches
in order, then ack (delete), release (back to ready, counted as retried) or bury
(dead, with the reason). Records stored by an earlier process, or leased before,
come back with `replayed=True`.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from agent.config.models import OutboxSettings
from agent.logutil import RepeatLimiter
from agent.outbox import queries
from agent.outbox.codec import Encoded, Leased, encode
from agent.outbox.group_commit import GroupCommitWriter, StoreUnavailable, WriterHooks
from agent.outbox.schema import open_or_replace
from agent.outbox.stats import Changes, SinkOutboxStats, StatsBook, StoreStats
from agent.outbox.upkeep import Upkeep
from agent.sinks.outbox_policy import OutboxPolicy
from agent.types import Record

log = logging.getLogger(__name__)

FILE_NAME = "outbox.sqlite3"
SWEEP_EVERY_S = 1.0


class Outbox:
    def __init__(self, writer: GroupCommitWriter, upkeep: Upkeep,
                 policies: Mapping[str, OutboxPolicy], replay_upto_seq: int) -> None:
        self._writer = writer
        self._upkeep = upkeep
        self._book = upkeep.book
        self._policies = dict(policies)
        self._replay_upto = replay_upto_seq
        self._last_sweep: dict[str, float] = {}  # writer thread only
        self._listeners: dict[str, list[Callable[[], None]]] = {}
        self._refusing = RepeatLimiter(log, "outbox refused a record")

    @classmethod
    def open(cls, path: Path, settings: OutboxSettings,
             policies: Mapping[str, OutboxPolicy]) -> Outbox:
        """Open (or create) the store; in-flight rows of an earlier process become ready."""
        conn, aside = open_or_replace(Path(path), settings.synchronous)
        restored = _restore_inflight(conn)
        if restored:
            log.info("outbox %s: %d record(s) in flight at the last stop are ready again",
                     path, restored)
        upkeep = Upkeep(StatsBook(str(path)))
        upkeep.load(conn)
        upkeep.book.update_store(moved_aside=str(aside) if aside else None)
        hooks = WriterHooks(upkeep.after_commit, upkeep.after_failure, upkeep.when_idle,
                            upkeep.on_close)
        writer = GroupCommitWriter(conn, settings.synchronous,
                                   settings.group_commit_ms / 1000.0, hooks)
        writer.start()
        return cls(writer, upkeep, policies, queries.max_seq(conn))

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
            self._book.count(sink, "refused", len(encoded))
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


def _restore_inflight(conn: sqlite3.Connection) -> int:
    conn.execute("BEGIN IMMEDIATE")
    n = queries.reset_inflight(conn)
    conn.execute("COMMIT")
    return n
