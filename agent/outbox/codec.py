"""Record <-> database row."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from agent.types import Record, RecordKind

COLUMNS = "seq, id, kind, line, station, created, payload, attempts, status, reason"


@dataclass(frozen=True)
class Encoded:
    """A record ready to insert: the JSON is built on the caller's thread."""

    sink: str
    record: Record
    payload: str
    size: int
    created_ts: float


@dataclass(frozen=True)
class Leased:
    """A record taken for one send; `seq` is its place in the sink's queue."""

    seq: int
    record: Record
    attempts: int  # sends started before this one


def encode(sink: str, record: Record) -> Encoded:
    payload = json.dumps(record.payload, separators=(",", ":"), ensure_ascii=False, default=str)
    created = _aware(record.created)
    return Encoded(sink, record, payload, len(payload.encode("utf-8")), created.timestamp())


def insert_row(conn: sqlite3.Connection, e: Encoded, expiry: float) -> None:
    r = e.record
    conn.execute(
        "INSERT INTO records (id, sink, kind, line, station, created, created_ts, expiry, "
        "payload, size) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (r.id, e.sink, str(r.kind), r.line, r.station, _aware(r.created).isoformat(),
         e.created_ts, expiry, e.payload, e.size))


def decode(row: tuple[Any, ...], replayed: bool) -> Leased:
    seq, rid, kind, line, station, created, payload, attempts = row[:8]
    record = Record(id=str(rid), kind=_kind(str(kind)), payload=json.loads(str(payload)),
                    line=_opt(line), station=_opt(station),
                    created=datetime.fromisoformat(str(created)), replayed=replayed)
    return Leased(int(seq), record, int(attempts))


def _kind(value: str) -> RecordKind:
    try:
        return RecordKind(value)
    except ValueError:
        return value  # type: ignore[return-value]  # a kind added by a newer agent: pass it on


def _opt(v: object) -> str | None:
    return None if v is None else str(v)


def _aware(t: datetime) -> datetime:
    return t if t.tzinfo is not None else t.replace(tzinfo=UTC)
