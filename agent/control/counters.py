"""`defect_count` (per station) and `last_event_seq` (per PLC), monotonic across restarts.

A PLC that watches the sequence for new events must never see it go back, so the
values are kept in `state_dir/plc-<name>.counters.json`: loaded at start, written
before the values are sent (a temporary file renamed over the old one, so a crash
leaves the old or the new file, never half of one). The rename survives a killed
process at once; the file is flushed to disk (fsync) off the command path, in a
worker thread. A file that cannot be read is set aside as `.corrupt` and named in
an error; a file that cannot be written is logged (rate-limited), never delays a
command.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from pathlib import Path

from agent.logutil import RepeatLimiter

log = logging.getLogger(__name__)
StationKey = tuple[str, str]
COUNT_MOD = 0x10000  # defect_count is a u16 on the PLC
SEQ_MOD = 0x100000000  # last_event_seq is a u32


class CommandCounters:
    """The numbers written with each stop / reject; persisted when `path` is set."""

    def __init__(self, path: Path | None = None, seq: int = 0,
                 counts: dict[str, int] | None = None) -> None:
        self.path = path
        self.seq = seq
        self.counts = dict(counts or {})
        self.save_failures = 0
        self._limiter = RepeatLimiter(log, f"command counters {path}")

    @classmethod
    def load(cls, path: Path) -> CommandCounters:
        """The counters kept at `path`; zero when there is no file yet."""
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            seq, counts = int(doc["last_event_seq"]), doc["defect_count"]
            counts = {str(k): int(v) for k, v in counts.items()}
        except FileNotFoundError:
            return cls(path)
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            _set_aside(path, exc)
            return cls(path)
        return cls(path, seq, counts)

    def count(self, key: StationKey, bump: bool) -> int:
        """defect_count of the station, advanced first when `bump` (stop / reject)."""
        name = f"{key[0]}/{key[1]}"
        if bump:
            self.counts[name] = (self.counts.get(name, 0) + 1) % COUNT_MOD
        return self.counts.get(name, 0)

    def next_seq(self) -> int:
        self.seq = (self.seq + 1) % SEQ_MOD
        return self.seq

    def save(self) -> None:
        """Atomically replace the file (no fsync here: see `flush`)."""
        if self.path is None:
            return
        tmp = self.path.with_name(self.path.name + ".tmp")
        body = json.dumps({"last_event_seq": self.seq, "defect_count": self.counts},
                          sort_keys=True)
        try:
            tmp.write_text(body, encoding="utf-8")
            os.replace(tmp, self.path)
        except OSError as exc:
            self.save_failures += 1
            self._limiter.failure("cannot save %s: %s", self.path, exc)
            return
        self._limiter.recovered("saved again")
        try:
            asyncio.get_running_loop().run_in_executor(None, _fsync, self.path)
        except RuntimeError:  # no loop (a tool, a test): flush here
            _fsync(self.path)


def _fsync(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError as exc:
        log.debug("fsync of %s failed: %s", path, exc)


def _set_aside(path: Path, exc: Exception) -> None:
    aside = path.with_name(path.name + ".corrupt")
    log.error("command counters %s unreadable (%s): set aside as %s; defect_count and "
              "last_event_seq start again from 0", path, exc, aside)
    try:
        os.replace(path, aside)
    except OSError as exc2:
        log.error("cannot set aside %s: %s", path, exc2)
