"""Read and repair an outbox file from another process (the `edge-agent outbox` command).

SQLite WAL lets this run while the daemon writes: readers never block the writer,
and `retry` waits (busy_timeout) for the daemon's short transactions.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from agent.outbox import queries
from agent.outbox.schema import APPLICATION_ID


class NotAnOutbox(Exception):
    """Missing file, or not an edge-agent outbox."""


@dataclass(frozen=True)
class Row:
    seq: int
    id: str
    sink: str
    kind: str
    line: str | None
    station: str | None
    created: str
    attempts: int
    status: str
    size: int
    reason: str | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def connect(path: Path, write: bool = False) -> sqlite3.Connection:
    if not path.is_file():
        raise NotAnOutbox(f"no outbox at {path} (the daemon creates it when it starts)")
    uri = f"file:{path}?mode={'rw' if write else 'ro'}"
    try:
        conn = sqlite3.connect(uri, uri=True, isolation_level=None)
        conn.execute("PRAGMA busy_timeout = 10000")
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
    except sqlite3.DatabaseError as exc:
        raise NotAnOutbox(f"{path}: {exc}") from exc
    if app_id != APPLICATION_ID:
        conn.close()
        raise NotAnOutbox(f"{path} is not an edge-agent outbox (application_id {app_id:#x})")
    return conn


def sink_stats(conn: sqlite3.Connection, now: float | None = None) -> dict[str, dict[str, Any]]:
    """Per sink: depth, in_flight, dead, bytes, oldest_age_s and the stored counters."""
    now = time.time() if now is None else now
    out: dict[str, dict[str, Any]] = {}
    for sink, status, n, nbytes, oldest in conn.execute(
            "SELECT sink, status, count(*), coalesce(sum(size), 0), min(created_ts) "
            "FROM records GROUP BY sink, status"):
        s = out.setdefault(sink, _empty())
        s["bytes"] += nbytes
        if status == queries.DEAD:
            s["dead"] += n
            continue
        s["depth"] += n
        s["in_flight"] += n if status == queries.INFLIGHT else 0
        s["oldest_age_s"] = max(s["oldest_age_s"], round(now - oldest, 3))
    for (sink, name), value in queries.counters(conn).items():
        out.setdefault(sink, _empty())[name] = value
    return dict(sorted(out.items()))


def _empty() -> dict[str, Any]:
    return {"depth": 0, "in_flight": 0, "dead": 0, "bytes": 0, "oldest_age_s": 0.0,
            "sent": 0, "retried": 0, "evicted": 0, "refused": 0, "dead_lettered": 0}


def rows(conn: sqlite3.Connection, dead: bool, sink: str | None, limit: int) -> list[Row]:
    """Waiting records (ready, in flight) or dead ones, in delivery order."""
    where = "status = 'dead'" if dead else "status != 'dead'"
    args: list[Any] = []
    if sink:
        where += " AND sink = ?"
        args.append(sink)
    sql = (f"SELECT seq, id, sink, kind, line, station, created, attempts, status, size, reason "
           f"FROM records WHERE {where} ORDER BY seq LIMIT ?")
    return [Row(*r) for r in conn.execute(sql, [*args, limit])]


def retry(conn: sqlite3.Connection, sink: str | None, record_id: str | None) -> int:
    """Dead records back to ready (first in line of their sink); returns how many."""
    where, args = "status = 'dead'", []
    if sink:
        where += " AND sink = ?"
        args.append(sink)
    if record_id:
        where += " AND id = ?"
        args.append(record_id)
    conn.execute("BEGIN IMMEDIATE")
    n = conn.execute(f"UPDATE records SET status = 'ready', reason = NULL WHERE {where}",
                     args).rowcount
    conn.execute("COMMIT")
    return int(n)
