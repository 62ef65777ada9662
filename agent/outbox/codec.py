"""Record <-> database row."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from agent.types import Record, RecordKind

COLUMNS = "seq, id, kind, line, station, created, payload, attempts, status, reason"


@dataclass(slots=True)
class Encoded:
    """A record ready to insert: the JSON is built on the caller's thread."""

    sink: str
    record: Record
    payload: str
    size: int
    created_ts: float
    created_iso: str


@dataclass(frozen=True)
class Leased:
    """A record taken for one send; `seq` is its place in the sink's queue."""

    seq: int
    record: Record
    attempts: int  # sends started before this one


# json.dumps(payload, separators=(",", ":"), ensure_ascii=False, default=str), without
# building an encoder per call (a third of the cost for a typical record): CPython's C
# encoder made once with the same settings (arguments: markers, default, encoder, indent,
# key and item separators, sort_keys, skipkeys, allow_nan; markers None = no cycle check:
# a cycle is a RecursionError and the record is refused like any that cannot be encoded)
_MAKE_C = getattr(json.encoder, "c_make_encoder", None)  # None outside CPython
_C_ENCODE = (_MAKE_C(None, str, json.encoder.encode_basestring, None, ":", ",", False, False,
                     True) if _MAKE_C is not None else None)
_PY_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=str)


def to_json(payload: Any) -> str:
    if _C_ENCODE is None:
        return _PY_ENCODER.encode(payload)
    return "".join(_C_ENCODE(payload, 0))


def encode(sink: str, record: Record) -> Encoded:
    payload = to_json(record.payload)
    created = _aware(record.created)
    return Encoded(sink, record, payload, len(payload.encode("utf-8")), created.timestamp(),
                   created.isoformat())


_INSERT = ("INSERT INTO records (id, sink, kind, line, station, created, created_ts, expiry, "
           "payload, size) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")


def insert_row(conn: sqlite3.Connection, e: Encoded, expiry: float) -> None:
    conn.execute(_INSERT, _row(e, expiry))


def insert_rows(conn: sqlite3.Connection, encoded: Sequence[Encoded], max_age_s: float) -> None:
    """Several records in one statement; each expires `max_age_s` after its creation."""
    conn.executemany(_INSERT, [_row(e, e.created_ts + max_age_s) for e in encoded])


def _row(e: Encoded, expiry: float) -> tuple[Any, ...]:
    r = e.record
    return (r.id, e.sink, str(r.kind), r.line, r.station, e.created_iso, e.created_ts, expiry,
            e.payload, e.size)


def decode(row: tuple[Any, ...], replayed: bool, decode_payload: bool = True) -> Leased:
    """The leased record; with `decode_payload=False` its payload stays in `payload_json` only
    (for a sink that sends the stored JSON: `agent.protocols.base.wire_bytes`)."""
    seq, rid, kind, line, station, created, payload, attempts = row[:8]
    text = str(payload)
    record = Record(id=str(rid), kind=_kind(str(kind)),
                    payload=json.loads(text) if decode_payload else {},
                    line=_opt(line), station=_opt(station),
                    created=datetime.fromisoformat(str(created)), replayed=replayed,
                    payload_json=text)
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
