"""Group commit writer: one thread, one transaction per group, a bad operation fails alone."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

import pytest

from agent.outbox.group_commit import GroupCommitWriter, StoreUnavailable, WriterHooks
from agent.outbox.schema import open_or_replace
from agent.outbox.stats import Changes


class Hooks:
    def __init__(self) -> None:
        self.commits: list[int] = []
        self.failures: list[BaseException] = []
        self.closed = False

    def writer_hooks(self) -> WriterHooks:
        return WriterHooks(lambda c, tx, n: self.commits.append(n), self.failures.append,
                           lambda c: None, lambda c: setattr(self, "closed", True))


def make(tmp_path: Path, window_s: float = 0.02) -> tuple[GroupCommitWriter, Hooks]:
    conn, _ = open_or_replace(tmp_path / "o.sqlite3", "FULL")
    conn.execute("CREATE TABLE t (v INTEGER)")
    hooks = Hooks()
    writer = GroupCommitWriter(conn, "FULL", window_s, hooks.writer_hooks())
    writer.start()
    return writer, hooks


def insert(v: int):  # type: ignore[no-untyped-def]
    def op(conn: sqlite3.Connection, ch: Changes) -> str:
        conn.execute("INSERT INTO t VALUES (?)", (v,))
        return threading.current_thread().name
    return op


async def test_concurrent_ops_share_one_commit_in_the_writer_thread(tmp_path: Path) -> None:
    writer, hooks = make(tmp_path)
    try:
        names = await asyncio.gather(*(writer.submit(insert(i), durable=True) for i in range(10)))
        assert set(names) == {"outbox-writer"}  # never on the event loop's thread
        assert sum(hooks.commits) == 10 and len(hooks.commits) < 10
    finally:
        await writer.close()
    assert hooks.closed


async def test_a_failing_op_fails_alone(tmp_path: Path) -> None:
    writer, hooks = make(tmp_path)

    def bug(conn: sqlite3.Connection, ch: Changes) -> None:
        conn.execute("INSERT INTO t VALUES (99)")
        raise ValueError("bug")

    def count(conn: sqlite3.Connection, ch: Changes) -> list[int]:
        return [r[0] for r in conn.execute("SELECT v FROM t ORDER BY v")]
    try:
        futs = [writer.submit(insert(1), True), writer.submit(bug, True),
                writer.submit(insert(2), True)]
        results = await asyncio.gather(*futs, return_exceptions=True)
        assert isinstance(results[1], ValueError)
        assert await writer.submit(count, False) == [1, 2]  # the bug's insert rolled back
    finally:
        await writer.close()


async def test_submit_after_close_fails_cleanly(tmp_path: Path) -> None:
    writer, _ = make(tmp_path)
    await writer.close()
    with pytest.raises(StoreUnavailable):
        await writer.submit(insert(1), True)
