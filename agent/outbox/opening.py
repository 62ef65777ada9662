"""Opening the outbox file: a corrupt one moved aside, in-flight rows made ready again, and
the records missing since the last run (a damaged WAL, a quarantined file) counted as lost.

Runs in the caller's thread at start, or in the writer thread when the first try found
the disk full (group_commit.py retries it until space returns).
"""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass, replace
from pathlib import Path

from agent.outbox import queries
from agent.outbox.group_commit import flush_counters
from agent.outbox.schema import open_or_replace
from agent.outbox.stats import Changes
from agent.outbox.upkeep import Upkeep
from agent.outbox.watermark import Loss, compare

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Opened:
    conn: sqlite3.Connection
    replay_upto_seq: int  # rows up to this one were stored by an earlier process
    loss: Loss | None


def open_store(path: Path, synchronous: str, upkeep: Upkeep) -> Opened:
    """Open (or create) the store and count what is missing against the high-water mark."""
    conn, aside = open_or_replace(path, synchronous)
    try:
        restored = _restore_inflight(conn)
        if restored:
            log.info("outbox %s: %d record(s) in flight at the last stop are ready again",
                     path, restored)
        upkeep.load(conn)
        moved = str(aside) if aside else None
        loss = compare(upkeep.mark.read(), upkeep.book.held(), queries.last_seq(conn), moved)
        if loss is not None and loss.path is None:
            loss = replace(loss, path=str(path))
        upkeep.book.update_store(moved_aside=moved, opened=True, disk_full=False,
                                 lost_at_start=loss.total if loss else 0)
        if loss is not None:
            _count_lost(conn, upkeep, loss)
        upkeep.note()
        return Opened(conn, queries.max_seq(conn), loss)
    except BaseException:
        conn.close()
        raise


def _restore_inflight(conn: sqlite3.Connection) -> int:
    conn.execute("BEGIN IMMEDIATE")
    n = queries.reset_inflight(conn)
    conn.execute("COMMIT")
    return n


def _count_lost(conn: sqlite3.Connection, upkeep: Upkeep, loss: Loss) -> None:
    """Add the lost records to each sink's persisted `lost` counter (in memory if the file
    cannot take it now)."""
    ch = Changes()
    for sink, n in loss.lost.items():
        ch.count(sink, "lost", n)
    try:
        conn.execute("BEGIN IMMEDIATE")
        flush_counters(conn, ch)
        conn.execute("COMMIT")
    except sqlite3.Error as exc:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        log.error("outbox: the lost-record counts could not be stored (%s); kept in memory", exc)
    upkeep.book.apply(ch, {})
