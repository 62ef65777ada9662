"""Seen operator command ids, kept across restarts: a command id is executed once.

A command is only accepted while its `time` is inside the age window, so an id has to
be remembered for that long and no longer. The ids (with the command's time) live in
memory and in a small JSON file in `state_dir`, written atomically (temporary file,
fsync, rename, fsync of the folder) before the command is executed.

A file that cannot be read (corrupt, unreadable) is not trusted to be empty: until the
window has passed, commands dated before the load are refused (they might be replays).
The store is bounded: when full, new commands are refused rather than old ids forgotten.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Mapping
from pathlib import Path

log = logging.getLogger(__name__)
FILE_VERSION = 1
MAX_IDS = 10_000


class SeenIds:
    def __init__(self, path: Path, window_s: float, max_ids: int = MAX_IDS) -> None:
        self.path = path
        self.window_s = window_s
        self.max_ids = max_ids
        self._ids: dict[str, float] = {}  # id -> command time (epoch s)
        self._not_before: float | None = None  # commands dated before this are refused
        self._write_lock = threading.Lock()

    def load(self, now: float) -> None:
        """Read the file (if any); on a bad file, refuse commands dated before `now`."""
        try:
            doc = json.loads(self.path.read_bytes())
            ids = doc["ids"] if isinstance(doc, dict) and doc.get("version") == FILE_VERSION \
                else None
            if not isinstance(ids, dict):
                raise ValueError("not a command id file of version 1")
            self._ids = {str(k): float(v) for k, v in ids.items()}
        except FileNotFoundError:
            return
        except (OSError, ValueError, TypeError) as exc:
            self._not_before = now
            log.error("operator command ids %s cannot be read (%s): commands dated before "
                      "now are refused for %g s (they could be replays)",
                      self.path, exc, self.window_s)
        self.prune(now)

    def prune(self, now: float) -> None:
        old = now - self.window_s
        self._ids = {k: t for k, t in self._ids.items() if t >= old}
        if self._not_before is not None and self._not_before < old:
            self._not_before = None

    def check_and_add(self, cmd_id: str, cmd_time: float, now: float) -> str | None:
        """Remember `cmd_id`; None when it is new, else why the command is refused."""
        self.prune(now)
        if cmd_id in self._ids:
            return f"replayed: command id {cmd_id!r} was seen before"
        if self._not_before is not None and cmd_time < self._not_before:
            return "dated before the agent's command id file was lost: could be a replay"
        if len(self._ids) >= self.max_ids:
            return f"more than {self.max_ids} commands within {self.window_s:g} s: refused"
        self._ids[cmd_id] = cmd_time
        return None

    def snapshot(self) -> dict[str, float]:
        return dict(self._ids)

    def save(self, ids: Mapping[str, float]) -> None:
        """Write `ids` atomically (call off the event loop). Raises OSError."""
        data = json.dumps({"version": FILE_VERSION, "ids": ids}, separators=(",", ":")).encode()
        tmp = self.path.with_name(self.path.name + ".tmp")
        with self._write_lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
            dfd = os.open(self.path.parent, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
