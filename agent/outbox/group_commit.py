"""Group commit: one writer thread runs every store operation; concurrent callers share a commit.

The asyncio loop never blocks on fsync: `submit` hands an operation to the
thread and returns a future. The thread takes every waiting operation; when a
durable one is among them it waits up to `window_s` for as many durable callers
as the previous commit carried (they are usually about to come back), runs them
all in ONE transaction with a savepoint each, commits once (one fsync), then
settles every future. A failed commit (full disk, I/O error) fails
every operation of the transaction; a bug in one operation fails only that one.

A store that could not be opened (a full disk at start) is given to the writer as
an `opener` instead of a connection: the thread tries it again at most once per
`idle_s`, and fails every operation at once (StoreUnavailable) until it succeeds.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from agent.outbox.stats import Changes

log = logging.getLogger(__name__)

Op = Callable[[sqlite3.Connection, Changes], Any]
MAX_OPS_PER_COMMIT = 2000
SQLITE_FULL = 13


class StoreUnavailable(Exception):
    """The transaction holding the operation did not commit."""


class DiskFull(StoreUnavailable):
    """SQLite said "database or disk is full", or the OS said ENOSPC."""


def is_disk_full(exc: BaseException) -> bool:
    if isinstance(exc, sqlite3.Error):
        return getattr(exc, "sqlite_errorcode", None) == SQLITE_FULL or "full" in str(exc)
    return isinstance(exc, OSError) and exc.errno == errno.ENOSPC


@dataclass
class _Job:
    op: Op
    durable: bool
    future: asyncio.Future[Any]
    loop: asyncio.AbstractEventLoop
    records: int  # records it stores (for the records-per-commit figure)
    changes: Changes = field(default_factory=Changes)


@dataclass
class WriterHooks:
    """What the store does around transactions, all called in the writer thread."""

    after_commit: Callable[[sqlite3.Connection, Changes, int], None]  # changes, records
    after_failure: Callable[[BaseException], None]
    when_idle: Callable[[sqlite3.Connection], None]
    on_close: Callable[[sqlite3.Connection], None]


_STOP = object()


Opener = Callable[[], sqlite3.Connection]


class GroupCommitWriter:
    def __init__(self, conn: sqlite3.Connection | None, synchronous: str, window_s: float,
                 hooks: WriterHooks, idle_s: float = 1.0, opener: Opener | None = None) -> None:
        """`hooks.when_idle` runs when no operation came for `idle_s`, and at least that often.
        With `conn` None, `opener()` makes the connection (retried; see the module doc)."""
        self._conn = conn
        self._opener = opener
        self._open_error: BaseException | None = None
        self._next_open = 0.0
        self._synchronous = synchronous
        self._current_sync = synchronous
        self._window_s = window_s
        self._hooks = hooks
        self._idle_s = idle_s
        self._queue: queue.SimpleQueue[_Job | object] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._main, name="outbox-writer", daemon=True)
        self._closed = False
        self._last_idle = time.monotonic()
        self._expect = 2  # durable jobs the next commit waits for (adapts to the last commit)

    def start(self) -> None:
        self._thread.start()

    @property
    def closed(self) -> bool:
        return self._closed

    def submit(self, op: Op, durable: bool, records: int | None = None) -> asyncio.Future[Any]:
        """Queue `op(conn, changes)`; the future resolves after its transaction committed.
        `records`: how many records it stores (statistics only; default 1 if durable)."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        if self._closed:
            fut.set_exception(StoreUnavailable("outbox is closed"))
        else:
            self._queue.put(_Job(op, durable, fut, loop,
                                 int(durable) if records is None else records))
        return fut

    async def close(self) -> None:
        """Run what is queued, call on_close (checkpoint), close the connection, end the thread."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(_STOP)
        while self._thread.is_alive():
            await asyncio.sleep(0.01)

    # --- writer thread -------------------------------------------------------

    def _main(self) -> None:
        try:
            while self._cycle():
                pass
        finally:
            self._finish()

    def _cycle(self) -> bool:
        self._try_open()
        try:
            first = self._queue.get(timeout=self._idle_s)
        except queue.Empty:
            first = None
        if self._conn is not None and (
                first is None or time.monotonic() - self._last_idle >= self._idle_s):
            self._last_idle = time.monotonic()  # at least once per idle_s, busy or not
            self._guarded(self._hooks.when_idle)
        if first is None:
            return True
        if first is _STOP:
            return False
        assert isinstance(first, _Job)
        jobs, stop = self._collect(first)
        self._transaction(jobs)
        return not stop

    def _collect(self, first: _Job) -> tuple[list[_Job], bool]:
        """Everything queued now; then, while fewer durable jobs than the last commit carried
        are here (that many callers are probably about to come back), wait up to the window."""
        jobs = [first]
        durable = int(first.durable)
        deadline = time.monotonic() + self._window_s
        while len(jobs) < MAX_OPS_PER_COMMIT:
            wait = deadline - time.monotonic()
            try:
                if wait > 0 and 0 < durable < self._expect:
                    item = self._queue.get(timeout=wait)
                else:
                    item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is _STOP:
                return jobs, True
            assert isinstance(item, _Job)
            jobs.append(item)
            durable += item.durable
        if durable:
            self._expect = durable
        return jobs, False

    def _try_open(self) -> None:
        now = time.monotonic()
        if self._conn is not None or self._opener is None or now < self._next_open:
            return
        self._next_open = now + self._idle_s
        try:
            self._conn = self._opener()
        except Exception as exc:  # noqa: BLE001 - the writer thread must survive
            self._open_error = exc
            self._hooks.after_failure(exc)

    def _not_open(self, jobs: list[_Job]) -> None:
        exc = self._open_error or StoreUnavailable("not open")
        self._hooks.after_failure(exc)
        err = (DiskFull if is_disk_full(exc) else StoreUnavailable)(f"outbox not open: {exc}")
        _settle_all([(job, None, err) for job in jobs])

    def _transaction(self, jobs: list[_Job]) -> None:
        tx = Changes()
        results: list[Outcome] = []
        conn = self._conn
        if conn is None:
            self._not_open(jobs)
            return
        try:
            self._set_sync(any(j.durable for j in jobs))
            conn.execute("BEGIN IMMEDIATE")
            for job in jobs:
                results.append(self._run_one(job, tx))
            flush_counters(conn, tx)
            conn.execute("COMMIT")
        except Exception as exc:  # noqa: BLE001 - every failure is reported to every caller
            self._rollback()
            self._hooks.after_failure(exc)
            err: StoreUnavailable = (DiskFull if is_disk_full(exc) else StoreUnavailable)(str(exc))
            _settle_all([(job, None, err) for job in jobs])
            return
        records = sum(j.records for j in jobs)
        self._guarded(lambda c: self._hooks.after_commit(c, tx, records))
        _settle_all(results)

    def _run_one(self, job: _Job, tx: Changes) -> Outcome:
        conn = self._conn
        assert conn is not None
        conn.execute("SAVEPOINT op")
        job.changes.parent = tx
        try:
            result = job.op(conn, job.changes)
        except Exception as exc:
            if isinstance(exc, sqlite3.Error | OSError) and not isinstance(
                    exc, sqlite3.IntegrityError):
                raise  # the transaction as a whole is in trouble
            conn.execute("ROLLBACK TO op")
            conn.execute("RELEASE op")
            log.exception("outbox operation failed")
            return job, None, exc
        conn.execute("RELEASE op")
        job.changes.parent = None
        tx.merge(job.changes)
        return job, result, None

    def _set_sync(self, durable: bool) -> None:
        wanted = self._synchronous if durable else "NORMAL"
        if wanted != self._current_sync and self._conn is not None:
            self._conn.execute(f"PRAGMA synchronous = {wanted}")
            self._current_sync = wanted

    def _rollback(self) -> None:
        try:
            if self._conn is not None and self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
        except sqlite3.Error:
            log.debug("rollback failed", exc_info=True)

    def _guarded(self, fn: Callable[[sqlite3.Connection], None]) -> None:
        if self._conn is None:
            return
        try:
            fn(self._conn)
        except Exception as exc:  # noqa: BLE001 - the writer thread must survive
            self._hooks.after_failure(exc)

    def _finish(self) -> None:
        self._closed = True
        while True:  # fail anything that raced with close
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if isinstance(item, _Job):
                _settle_all([(item, None, StoreUnavailable("outbox is closed"))])
        self._guarded(self._hooks.on_close)
        if self._conn is not None:
            self._conn.close()


def flush_counters(conn: sqlite3.Connection, tx: Changes) -> None:
    rows = [(s, name, n) for (s, name), n in tx.counters.items()]
    if rows:
        conn.executemany(
            "INSERT INTO counters (sink, name, value) VALUES (?, ?, ?) "
            "ON CONFLICT (sink, name) DO UPDATE SET value = value + excluded.value", rows)


Outcome = tuple[_Job, Any, BaseException | None]


def _settle_all(outcomes: list[Outcome]) -> None:
    """Resolve the futures of a transaction: one wake-up of each loop, not one per caller."""
    by_loop: dict[asyncio.AbstractEventLoop, list[Outcome]] = {}
    for outcome in outcomes:
        by_loop.setdefault(outcome[0].loop, []).append(outcome)
    for loop, part in by_loop.items():
        try:
            loop.call_soon_threadsafe(_resolve, part)
        except RuntimeError:
            pass  # the loop is gone (shutdown): nobody is waiting any more


def _resolve(outcomes: list[Outcome]) -> None:
    for job, result, error in outcomes:
        if job.future.done():
            continue
        if error is not None:
            job.future.set_exception(error)
        else:
            job.future.set_result(result)
