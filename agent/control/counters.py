"""`defect_count` (per station) and `last_event_seq` (per PLC), monotonic across restarts.

A PLC that watches the sequence for new events must never see it go back or
repeat, so both live in `state_dir/plc-<name>.counters.json`, written atomically
(a temporary file, fsynced, renamed over the old one: a crash leaves the old or
the new file, never half of one). Writing a file costs about a millisecond, so
the stop path does not wait for it:

- `last_event_seq` is reserved in blocks: the file holds a high-water mark at
  least as high as any number sent. Half-way through a block the next one is
  reserved by the write-behind thread; the loop writes the mark itself only if
  that write has not landed by the end of the block (a disk slower than
  `RESERVE / 2` commands), and at start. `reserved` rises only once the mark is
  on disk. After a restart the sequence continues above the mark: it may skip
  numbers, it never repeats one.
- `defect_count` is exact: written by a background task after each change. Only
  a crash within that millisecond can make the next run repeat the last count.

A file that cannot be read is set aside as `.corrupt` and named in an error; a
file that cannot be written is logged (rate-limited), never delays a command.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import threading
from pathlib import Path

from agent.logutil import RepeatLimiter

log = logging.getLogger(__name__)
StationKey = tuple[str, str]
COUNT_MOD = 0x10000  # defect_count is a u16 on the PLC
SEQ_MOD = 0x100000000  # last_event_seq is a u32
RESERVE = 1000  # sequence numbers reserved per write of the high-water mark


class CommandCounters:
    """The numbers written with each command; persisted when `path` is set."""

    def __init__(self, path: Path | None = None, seq: int = 0,
                 counts: dict[str, int] | None = None) -> None:
        self.path = path
        self.seq = seq  # last number handed out
        self.reserved = seq  # the high-water mark on disk
        self._mark = seq  # the mark the next write puts on disk (>= reserved)
        self.counts = dict(counts or {})
        self.save_failures = 0
        self._dirty = False
        self._writer: asyncio.Task[None] | None = None
        self._version = 0  # of the last snapshot taken
        self._written = 0  # of the snapshot on disk: an older one never replaces it
        self._io = threading.Lock()  # the write-behind thread and a reserve on the loop
        self._limiter = RepeatLimiter(log, f"command counters {path}")

    @classmethod
    def load(cls, path: Path) -> CommandCounters:
        """The counters kept at `path` (zero without a file); the next block reserved."""
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            counters = cls(path, int(doc["last_event_seq"]) % SEQ_MOD,
                           {str(k): int(v) for k, v in doc["defect_count"].items()})
        except FileNotFoundError:
            counters = cls(path)
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            _set_aside(path, exc)
            counters = cls(path)
        counters._reserve()
        return counters

    def count(self, key: StationKey, bump: bool) -> int:
        """defect_count of the station, advanced first when `bump` (stop / reject)."""
        name = f"{key[0]}/{key[1]}"
        if bump:
            self.counts[name] = (self.counts.get(name, 0) + 1) % COUNT_MOD
            self._save_soon()
        return self.counts.get(name, 0)

    def next_seq(self) -> int:
        self.seq = (self.seq + 1) % SEQ_MOD
        if self.seq > self.reserved or self.seq == 0:
            self._reserve()  # the block is used up: the loop waits for the disk, rarely
        elif self.seq > self.reserved - RESERVE // 2 and self._mark <= self.reserved:
            self._mark = min(self.seq + RESERVE, SEQ_MOD - 1)  # the next block, behind
            self._save_soon()
        return self.seq

    async def close(self) -> None:
        """Write what is not written yet."""
        if self._writer is not None:
            with contextlib.suppress(Exception):
                await self._writer
        if self._dirty:
            self._dirty = False
            await self._write_off_loop()

    # -- persistence --------------------------------------------------------------------
    def _reserve(self) -> None:
        self._mark = max(self._mark, min(self.seq + RESERVE, SEQ_MOD - 1))
        body, version, mark = self._snapshot()
        if self._write(body, version):
            self.reserved = max(self.reserved, mark)
        elif self.path is None:
            self.reserved = mark  # nothing to persist (tests, tools)

    def _save_soon(self) -> None:
        if self.path is None:
            return
        self._dirty = True
        if self._writer is None or self._writer.done():
            try:
                self._writer = asyncio.get_running_loop().create_task(
                    self._write_behind(), name=f"counters-{self.path.name}")
            except RuntimeError:  # no loop (a tool, a test): write here
                self._dirty = False
                body, version, mark = self._snapshot()
                if self._write(body, version):
                    self.reserved = max(self.reserved, mark)

    async def _write_behind(self) -> None:
        while self._dirty:
            self._dirty = False
            await self._write_off_loop()

    async def _write_off_loop(self) -> None:
        body, version, mark = self._snapshot()
        if await asyncio.to_thread(self._write, body, version):
            self.reserved = max(self.reserved, mark)  # on the loop, once the mark is on disk

    def _snapshot(self) -> tuple[str, int, int]:
        """Taken on the loop thread: (file body, its version, the mark it holds)."""
        self._version += 1
        mark = max(self._mark, self.reserved)
        body = json.dumps({"last_event_seq": mark, "defect_count": self.counts},
                          sort_keys=True)
        return body, self._version, mark

    def _write(self, body: str, version: int) -> bool:
        """True when this snapshot (or a newer one) is on disk."""
        if self.path is None:
            return False
        with self._io:
            if version <= self._written:
                return True
            if self._replace(self.path, body):
                self._written = version
                return True
            return False

    def _replace(self, path: Path, body: str) -> bool:
        tmp = path.with_name(path.name + ".tmp")
        try:
            with open(tmp, "w", encoding="utf-8") as f:
                f.write(body)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except OSError as exc:
            self.save_failures += 1
            self._limiter.failure("cannot save %s: %s", path, exc)
            return False
        self._limiter.recovered("saved again")
        return True


def _set_aside(path: Path, exc: Exception) -> None:
    aside = path.with_name(path.name + ".corrupt")
    log.error("command counters %s unreadable (%s): set aside as %s; defect_count and "
              "last_event_seq start again from 0", path, exc, aside)
    try:
        os.replace(path, aside)
    except OSError as exc2:
        log.error("cannot set aside %s: %s", path, exc2)
