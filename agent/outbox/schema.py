"""The outbox database file: schema, pragmas, and what to do with a corrupt or foreign file."""

from __future__ import annotations

import logging
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

log = logging.getLogger(__name__)

APPLICATION_ID = 0x45414F42  # "EAOB": marks the file as an edge-agent outbox
SCHEMA_VERSION = 1

DDL = """
CREATE TABLE IF NOT EXISTS records (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,  -- enqueue order, the delivery order per sink
    id         TEXT    NOT NULL,                   -- Record.id (UUIDv7), the MES de-duplication key
    sink       TEXT    NOT NULL,
    kind       TEXT    NOT NULL,
    line       TEXT,
    station    TEXT,
    created    TEXT    NOT NULL,                   -- ISO 8601 UTC, the record's original time
    created_ts REAL    NOT NULL,                   -- same, epoch seconds
    expiry     REAL    NOT NULL,                   -- epoch seconds after which it is evicted
    payload    TEXT    NOT NULL,                   -- JSON
    size       INTEGER NOT NULL,                   -- payload bytes
    attempts   INTEGER NOT NULL DEFAULT 0,         -- sends started
    status     TEXT    NOT NULL DEFAULT 'ready',   -- ready | inflight | dead
    reason     TEXT                                -- why it is dead
);
CREATE INDEX IF NOT EXISTS records_queue ON records (sink, status, seq);
CREATE TABLE IF NOT EXISTS counters (
    sink  TEXT    NOT NULL,
    name  TEXT    NOT NULL,
    value INTEGER NOT NULL,
    PRIMARY KEY (sink, name)
) WITHOUT ROWID;
"""

SIDE_FILES = ("-wal", "-shm", "-journal")
_NOT_OURS = {11, 26}  # SQLITE_CORRUPT, SQLITE_NOTADB


class ForeignDatabase(Exception):
    """The file is not an edge-agent outbox (or not an SQLite database at all)."""


def connect(path: Path, synchronous: str) -> sqlite3.Connection:
    """Open (creating if needed) and check an outbox; raise ForeignDatabase if it is not one."""
    conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
    try:
        _configure(conn, synchronous)
        _check_or_create(conn)
    except sqlite3.DatabaseError as exc:
        conn.close()
        if getattr(exc, "sqlite_errorcode", None) in _NOT_OURS:
            raise ForeignDatabase(str(exc)) from exc
        raise  # locked, busy, permission, I/O: not a reason to move the file aside
    except ForeignDatabase:
        conn.close()
        raise
    return conn


def _configure(conn: sqlite3.Connection, synchronous: str) -> None:
    conn.execute("PRAGMA busy_timeout = 5000")
    mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    if str(mode).lower() != "wal":
        raise ForeignDatabase(f"cannot switch to WAL mode (got {mode!r})")
    conn.execute(f"PRAGMA synchronous = {synchronous}")


def _check_or_create(conn: sqlite3.Connection) -> None:
    app_id = conn.execute("PRAGMA application_id").fetchone()[0]
    tables = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
    if app_id == 0 and tables == 0:
        _create(conn)
        return
    if app_id != APPLICATION_ID:
        raise ForeignDatabase(f"application_id is {app_id:#x}, not an edge-agent outbox")
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version != SCHEMA_VERSION:
        raise ForeignDatabase(f"schema version {version}, this agent reads {SCHEMA_VERSION}")
    check = conn.execute("PRAGMA quick_check").fetchone()[0]
    if check != "ok":
        raise ForeignDatabase(f"integrity check failed: {check}")


def _create(conn: sqlite3.Connection) -> None:
    conn.execute("BEGIN IMMEDIATE")
    for stmt in DDL.split(";"):
        if stmt.strip():
            conn.execute(stmt)
    conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    conn.execute("COMMIT")


def move_aside(path: Path, why: str) -> Path:
    """Rename the file (and its -wal/-shm) with a timestamp; never delete evidence."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    path.rename(target)
    for suffix in SIDE_FILES:
        side = path.with_name(path.name + suffix)
        if side.exists():
            side.rename(target.with_name(target.name + suffix))
    log.error("OUTBOX FILE %s IS NOT USABLE (%s): moved aside to %s and a new empty outbox "
              "was created; the records in the old file were NOT delivered - inspect it with "
              "sqlite3", path, why, target)
    return target


MIN_SQLITE = (3, 35, 0)  # UPDATE/DELETE ... RETURNING (Debian 12: 3.40)


def open_or_replace(path: Path, synchronous: str) -> tuple[sqlite3.Connection, Path | None]:
    """Open the outbox; a corrupt or foreign file is moved aside and a new store created."""
    if sqlite3.sqlite_version_info < MIN_SQLITE:
        raise RuntimeError(f"outbox {path}: SQLite {sqlite3.sqlite_version} is too old; "
                           f"{'.'.join(map(str, MIN_SQLITE))} or newer is needed (RETURNING)")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        return connect(path, synchronous), None
    except ForeignDatabase as exc:
        aside = move_aside(path, str(exc))
        return connect(path, synchronous), aside
