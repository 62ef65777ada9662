"""The SQL of the outbox, one function per operation; all run inside a writer transaction."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from agent.outbox.codec import Encoded, Leased, decode, insert_row, insert_rows
from agent.outbox.stats import COUNTERS, Changes
from agent.protocols.outbox_policy import OutboxPolicy

READY, INFLIGHT, DEAD = "ready", "inflight", "dead"
_HEAD = 64


def insert(conn: sqlite3.Connection, ch: Changes, e: Encoded, policy: OutboxPolicy,
           held_bytes: int) -> bool:
    """Store one record within the sink's byte bound; False if refused (counted)."""
    if e.size > policy.max_bytes:
        ch.count(e.sink, "refused")
        return False
    held = held_bytes + ch.pending_bytes(e.sink)
    if held + e.size > policy.max_bytes:
        if policy.on_full == "refuse_new":
            ch.count(e.sink, "refused")
            return False
        evict_oldest(conn, ch, e.sink, held + e.size - policy.max_bytes)
    insert_row(conn, e, e.created_ts + policy.max_age_s)
    ch.add(e.sink, depth=1, nbytes=e.size)
    return True


def insert_many(conn: sqlite3.Connection, ch: Changes, encoded: Sequence[Encoded],
                policy: OutboxPolicy, held_bytes: int) -> list[bool]:
    """`insert` for each (all of one sink), in order; one statement for all when they fit the
    bound as they are."""
    if not encoded:
        return []
    sink = encoded[0].sink
    total = sum(e.size for e in encoded)
    if held_bytes + ch.pending_bytes(sink) + total > policy.max_bytes:
        return [insert(conn, ch, e, policy, held_bytes) for e in encoded]
    insert_rows(conn, encoded, policy.max_age_s)
    ch.add(sink, depth=len(encoded), nbytes=total)
    return [True] * len(encoded)


def _heads(conn: sqlite3.Connection, sink: str, status: str) -> list[tuple[int, int, float]]:
    return conn.execute(
        "SELECT seq, size, expiry FROM records WHERE sink = ? AND status = ? ORDER BY seq LIMIT ?",
        (sink, status, _HEAD)).fetchall()


def _delete(conn: sqlite3.Connection, ch: Changes, sink: str, status: str,
            rows: Sequence[tuple[int, int, float]]) -> None:
    conn.executemany("DELETE FROM records WHERE seq = ?", [(r[0],) for r in rows])
    n, nbytes = len(rows), sum(r[1] for r in rows)
    if status == DEAD:
        ch.add(sink, nbytes=-nbytes, dead=-n)
    else:
        ch.add(sink, depth=-n, nbytes=-nbytes)
    ch.count(sink, "evicted", n)


def evict_oldest(conn: sqlite3.Connection, ch: Changes, sink: str, need: int) -> None:
    """Delete the oldest ready or dead rows (never in-flight ones) until `need` bytes are free."""
    while need > 0:
        ready, dead = _heads(conn, sink, READY), _heads(conn, sink, DEAD)
        merged = sorted([(r, READY) for r in ready] + [(r, DEAD) for r in dead])
        if not merged:
            return
        full = [h[-1][0] for h in (ready, dead) if len(h) == _HEAD]
        horizon = min(full) if full else merged[-1][0][0]  # beyond it a head may hide older rows
        for row, status in merged:
            if row[0] > horizon:
                break
            _delete(conn, ch, sink, status, [row])
            need -= row[1]
            if need <= 0:
                return


def evict_expired(conn: sqlite3.Connection, ch: Changes, sink: str, now: float) -> None:
    """Delete rows past their expiry from the head of the sink's ready and dead queues."""
    for status in (READY, DEAD):
        while True:
            head = _heads(conn, sink, status)
            expired = [r for r in head if r[2] < now]
            if expired:
                _delete(conn, ch, sink, status, expired)
            if len(expired) < len(head) or not head:
                break


def lease(conn: sqlite3.Connection, ch: Changes, sink: str, limit: int,
          replay_upto_seq: int, decode_payload: bool = True) -> list[Leased]:
    rows = conn.execute(
        "UPDATE records SET status = 'inflight', attempts = attempts + 1 WHERE seq IN "
        "(SELECT seq FROM records WHERE sink = ? AND status = 'ready' ORDER BY seq LIMIT ?) "
        "RETURNING seq, id, kind, line, station, created, payload, attempts - 1",
        (sink, limit)).fetchall()
    rows.sort()  # RETURNING does not promise an order
    return [decode(r, r[7] > 0 or r[0] <= replay_upto_seq, decode_payload) for r in rows]


def _take(conn: sqlite3.Connection, seqs: Sequence[int]) -> list[tuple[int, int]]:
    """(seq, size) of the rows of `seqs` that are still in flight."""
    out: list[tuple[int, int]] = []
    for i in range(0, len(seqs), 500):
        part = list(seqs[i:i + 500])
        marks = ",".join("?" * len(part))
        out += conn.execute(f"SELECT seq, size FROM records WHERE status = 'inflight' "
                            f"AND seq IN ({marks})", part).fetchall()
    return out


def ack(conn: sqlite3.Connection, ch: Changes, sink: str, seqs: Sequence[int]) -> int:
    n = nbytes = 0
    for i in range(0, len(seqs), 500):
        part = list(seqs[i:i + 500])
        marks = ",".join("?" * len(part))
        for (size,) in conn.execute(f"DELETE FROM records WHERE status = 'inflight' "
                                    f"AND seq IN ({marks}) RETURNING size", part):
            n += 1
            nbytes += size
    ch.add(sink, depth=-n, nbytes=-nbytes)
    ch.count(sink, "sent", n)
    return n


def release(conn: sqlite3.Connection, ch: Changes, sink: str, seqs: Sequence[int]) -> int:
    rows = _take(conn, seqs)
    conn.executemany("UPDATE records SET status = 'ready' WHERE seq = ?", [(r[0],) for r in rows])
    ch.count(sink, "retried", len(rows))
    return len(rows)


def unlease(conn: sqlite3.Connection, ch: Changes, sink: str, seqs: Sequence[int]) -> int:
    """Undo the lease of records that were never sent: ready again, the attempt not counted."""
    rows = _take(conn, seqs)
    conn.executemany("UPDATE records SET status = 'ready', attempts = attempts - 1 WHERE seq = ?",
                     [(r[0],) for r in rows])
    return len(rows)


def bury(conn: sqlite3.Connection, ch: Changes, sink: str, seqs: Sequence[int],
         reason: str) -> int:
    rows = _take(conn, seqs)
    conn.executemany("UPDATE records SET status = 'dead', reason = ? WHERE seq = ?",
                     [(reason, r[0]) for r in rows])
    ch.add(sink, depth=-len(rows), dead=len(rows))
    ch.count(sink, "dead_lettered", len(rows))
    return len(rows)


def reset_inflight(conn: sqlite3.Connection) -> int:
    return conn.execute("UPDATE records SET status = 'ready' WHERE status = 'inflight'").rowcount


def max_seq(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT coalesce(max(seq), 0) FROM records").fetchone()[0])


def last_seq(conn: sqlite3.Connection) -> int:
    """The highest sequence number ever given out (AUTOINCREMENT keeps it after deletes)."""
    row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'records'").fetchone()
    return int(row[0]) if row else 0


def oldest_ts(conn: sqlite3.Connection, sink: str) -> float | None:
    """created_ts of the oldest waiting record (the heads of in-flight and ready)."""
    heads = [conn.execute("SELECT created_ts FROM records WHERE sink = ? AND status = ? "
                          "ORDER BY seq LIMIT 1", (sink, s)).fetchone() for s in (INFLIGHT, READY)]
    times = [h[0] for h in heads if h is not None]
    return min(times) if times else None


def census(conn: sqlite3.Connection) -> dict[str, tuple[int, int, int]]:
    """sink -> (depth, bytes, dead) counted from the rows."""
    out: dict[str, list[int]] = {}
    for sink, status, n, nbytes in conn.execute(
            "SELECT sink, status, count(*), coalesce(sum(size), 0) FROM records "
            "GROUP BY sink, status"):
        d = out.setdefault(sink, [0, 0, 0])
        d[1] += nbytes
        d[2 if status == DEAD else 0] += n
    return {s: (v[0], v[1], v[2]) for s, v in out.items()}


def counters(conn: sqlite3.Connection) -> dict[tuple[str, str], int]:
    return {(s, n): int(v) for s, n, v in conn.execute("SELECT sink, name, value FROM counters")
            if n in COUNTERS}


def sinks(conn: sqlite3.Connection) -> list[str]:
    rows = conn.execute("SELECT DISTINCT sink FROM records UNION SELECT sink FROM counters")
    return sorted(r[0] for r in rows)
