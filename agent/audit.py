"""Audit log: append-only JSON lines, one durable line per event, with rotation.

Every line is `{"time": <UTC ISO 8601>, "event": <name>, ...fields}`, written,
flushed and fsynced before `write` returns, so a line the daemon wrote survives a
power cut: the log proves afterwards why a line was stopped. Audit events are rare
by design (commands and their outcomes, config reloads, operator commands, drift),
so the fsync per line is affordable. When the file would grow past `max_bytes` it is
renamed to `<name>.1` (older ones shift to `.2` ... `.keep`; the oldest is deleted).

Write errors (disk full, read-only file system) never raise into the caller: they are
logged (once, then at debug until recovery) and counted in `stats().failed`.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Protocol

from agent.logutil import RepeatLimiter
from agent.types import Command, CommandOutcome

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True, slots=True)
class AuditStats:
    written: int
    failed: int
    rotations: int
    bytes: int  # size of the current file


def _default(obj: Any) -> Any:
    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, datetime):
        return obj.isoformat()
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
    if hasattr(obj, "item"):  # numpy scalar
        return obj.item()
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    return str(obj)


def command_fields(c: Command) -> dict[str, Any]:
    """A command and its trigger (rule, evidence: frames, scores, model) as audit fields."""
    return {
        "event_id": c.event_id, "kind": c.kind.value, "plc": c.plc, "line": c.line,
        "station": c.station, "part_id": c.part_id, "defect_code": c.defect_code,
        "rule": c.rule, "evidence": c.evidence,
        "deadline_ms": round((c.deadline - c.created) * 1000.0, 3),
    }


def outcome_fields(o: CommandOutcome) -> dict[str, Any]:
    """A command outcome (status, attempts, latency, error) plus its command, as audit fields."""
    return {
        **command_fields(o.command), "status": o.status.value, "attempts": o.attempts,
        "latency_ms": o.latency_ms, "error": o.error,
        "done_after_ms": round((o.t_done - o.command.created) * 1000.0, 3),
    }


class AuditLog:
    """Thread-safe append-only audit log in the state directory."""

    def __init__(self, path: Path, max_bytes: int, keep: int) -> None:
        if max_bytes < 1 or keep < 1:
            raise ValueError("audit max_bytes and keep must be >= 1")
        self.path = path
        self.max_bytes = max_bytes
        self.keep = keep
        self._lock = threading.Lock()
        self._file: IO[bytes] | None = None
        self._closed = False
        self._limiter = RepeatLimiter(log, f"audit log {path}", logging.ERROR)
        self._written = self._failed = self._rotations = 0

    def write(self, event: str, **fields: Any) -> None:
        record = {"time": datetime.now(UTC).isoformat(timespec="microseconds"), "event": event}
        record.update(fields)
        line = json.dumps(record, default=_default, ensure_ascii=False) + "\n"
        with self._lock:
            self._write_locked(line.encode())

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._file is not None:
                self._file.close()
                self._file = None

    def stats(self) -> AuditStats:
        with self._lock:
            size = self._file.tell() if self._file is not None else self._size_on_disk()
            return AuditStats(self._written, self._failed, self._rotations, size)

    def _write_locked(self, data: bytes) -> None:
        if self._closed:
            self._failed += 1
            self._limiter.failure("write after close: event dropped")
            return
        try:
            f = self._open()
            if f.tell() > 0 and f.tell() + len(data) > self.max_bytes:
                f = self._rotate()
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        except OSError as exc:
            self._failed += 1
            self._limiter.failure("cannot write event: %s", exc)
            self._drop_file()
            return
        self._written += 1
        self._limiter.recovered("writing again")

    def _open(self) -> IO[bytes]:
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
            self._file = os.fdopen(fd, "ab")
        return self._file

    def _rotate(self) -> IO[bytes]:
        self._drop_file()
        for i in range(self.keep - 1, 0, -1):
            older = self._numbered(i)
            if older.exists():
                older.replace(self._numbered(i + 1))
        self.path.replace(self._numbered(1))
        self._fsync_dir()
        self._rotations += 1
        return self._open()

    def _numbered(self, i: int) -> Path:
        return self.path.with_name(f"{self.path.name}.{i}")

    def _fsync_dir(self) -> None:
        fd = os.open(self.path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def _drop_file(self) -> None:
        if self._file is not None:
            try:
                self._file.close()
            except OSError:
                pass
            self._file = None

    def _size_on_disk(self) -> int:
        try:
            return self.path.stat().st_size
        except OSError:
            return 0


# -- written off the event loop --------------------------------------------------
# The audit log written off the event loop.
#
# AuditLog fsyncs every line; done on the loop, that fsync would delay the next stop,
# the heartbeat and every other task by milliseconds. One writer thread keeps the
# lines in order; the time of each event is taken when it happens, not when written.


class Audit(Protocol):
    """What a component needs of the audit: one line per event (never blocks)."""

    def write(self, event: str, **fields: Any) -> Any: ...


class AuditWriter:
    def __init__(self, log: AuditLog) -> None:
        self.log = log
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="audit-writer")
        self._closed = False

    def write(self, event: str, **fields: Any) -> None:
        """Queue one line; never blocks the caller (an error is counted by AuditLog)."""
        if self._closed:
            return
        now = datetime.now(UTC).isoformat(timespec="microseconds")
        self._pool.submit(self.log.write, event, time=now, **fields)

    def close(self) -> None:
        """Write every queued line, then close the file."""
        self._closed = True
        self._pool.shutdown(wait=True)
        self.log.close()
