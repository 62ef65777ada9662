"""The audit log written off the event loop.

AuditLog fsyncs every line; done on the loop, that fsync would delay the next stop,
the heartbeat and every other task by milliseconds. One writer thread keeps the
lines in order; the time of each event is taken when it happens, not when written.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, Protocol

from agent.audit import AuditLog


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
