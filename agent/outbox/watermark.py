"""The outbox's high-water mark, kept outside the database: what a damaged file cannot hide.

SQLite drops, without a word, every WAL frame from the first damaged one on: records
whose enqueue was committed are gone, and the store opens as if they never existed.
A quarantined main file loses all of them. So after every commit the writer thread
notes here, per sink, how many rows the store holds, and the highest sequence number
it gave out. At the next open the database is compared with this note; what is
missing is counted as lost, loudly (see `Loss`).

The file `<outbox>.hwm` holds two fixed slots written in turn with `pwrite` (one
system call, no rename), each with a generation number and a CRC-32: a write torn by
a power cut leaves the other slot valid. Writes go to the page cache (a killed process
loses none of them); `sync` fsyncs at most about once a second, when the writer is
idle. The note is written after the commit: it can be behind the database (a kill
between the two), never ahead of it. So a loss is reported only when the database
came back *older* than the note (its highest sequence number below the noted one):
then transactions were certainly lost, and the rows noted but missing are counted.
"""

from __future__ import annotations

import json
import logging
import os
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from agent.logutil import RepeatLimiter

log = logging.getLogger(__name__)

SUFFIX = ".hwm"
SLOT = 4096
_MAGIC = b"EAHW"
_HEAD = struct.Struct("<4sQI")  # magic, generation, body length
_CRC = struct.Struct("<I")


@dataclass(frozen=True)
class Mark:
    """What the store held after its last commit, as noted outside the database."""

    generation: int
    max_seq: int  # highest sequence number given out (sqlite_sequence of `records`)
    held: dict[str, int] = field(default_factory=dict)  # sink -> rows held (waiting + dead)


@dataclass(frozen=True)
class Loss:
    """Committed records the store no longer holds.

    cause: `missing_at_start` (the database came back with fewer rows or an older
    sequence than noted: a damaged or lost WAL), `quarantined` (the file was corrupt or
    foreign and was moved aside: every record in it), or `not_stored` (records the store
    could not write: full disk, I/O error; reported when it starts, `ongoing`, and with
    the whole count when records are stored again). `lost`: sink -> records (empty when
    unknown).
    """

    cause: str
    lost: dict[str, int]
    detail: str
    path: str | None = None
    ongoing: bool = False

    @property
    def total(self) -> int:
        return sum(self.lost.values())


def mark_path(db: Path) -> Path:
    return db.with_name(db.name + SUFFIX)


def _encode(mark: Mark) -> bytes:
    body = json.dumps({"max_seq": mark.max_seq, "held": mark.held}, separators=(",", ":"),
                      sort_keys=True).encode()
    blob = _HEAD.pack(_MAGIC, mark.generation, len(body)) + body
    return blob + _CRC.pack(zlib.crc32(blob))


def _decode(slot: bytes) -> Mark | None:
    if len(slot) < _HEAD.size + _CRC.size:
        return None
    magic, gen, size = _HEAD.unpack_from(slot)
    end = _HEAD.size + size
    if magic != _MAGIC or end + _CRC.size > len(slot):
        return None
    if _CRC.unpack_from(slot, end)[0] != zlib.crc32(slot[:end]):
        return None
    try:
        doc = json.loads(slot[_HEAD.size:end])
        held = {str(k): int(v) for k, v in doc["held"].items()}
        return Mark(int(gen), int(doc["max_seq"]), held)
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


class Watermark:
    """The side file of one outbox; used by the writer thread only (and at open)."""

    def __init__(self, db: Path) -> None:
        self.path = mark_path(db)
        self._fd: int | None = None
        self._generation = 0
        self._dirty = False
        self._last: tuple[int, dict[str, int]] | None = None
        self._failing = RepeatLimiter(log, "outbox high-water mark not written", logging.ERROR)

    def read(self) -> Mark | None:
        """The newest valid slot; None when there is no file or no valid slot."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.error("outbox high-water mark %s unreadable: %s", self.path, exc)
            return None
        marks = [m for m in (_decode(data[i:i + SLOT]) for i in (0, SLOT)) if m is not None]
        if not marks:
            if data:
                log.error("outbox high-water mark %s is damaged (both slots): losses since "
                          "the last start cannot be counted", self.path)
            return None
        best = max(marks, key=lambda m: m.generation)
        self._generation = max(self._generation, best.generation)
        return best

    def write(self, max_seq: int, held: dict[str, int]) -> None:
        """Note the store's state after a commit (page cache; `sync` makes it durable)."""
        held = {s: n for s, n in held.items() if n}
        if self._last == (max_seq, held):
            return
        try:
            fd = self._open()
            self._generation += 1
            blob = _encode(Mark(self._generation, max_seq, held))
            if len(blob) > SLOT:
                raise OSError(f"{len(held)} sinks do not fit in {SLOT} bytes")
            os.pwrite(fd, blob.ljust(SLOT, b"\0"), (self._generation % 2) * SLOT)
        except OSError as exc:
            self._failing.failure("%s: %s", self.path, exc)
            return
        self._failing.recovered("written again")
        self._last = (max_seq, held)
        self._dirty = True

    def sync(self) -> None:
        if self._dirty and self._fd is not None:
            try:
                os.fsync(self._fd)
                self._dirty = False
            except OSError as exc:
                self._failing.failure("%s: fsync: %s", self.path, exc)

    def close(self) -> None:
        self.sync()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _open(self) -> int:
        if self._fd is None:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                if os.fstat(fd).st_size < 2 * SLOT:  # both slots allocated once, up front
                    os.pwrite(fd, b"\0" * (2 * SLOT - os.fstat(fd).st_size),
                              os.fstat(fd).st_size)
            except OSError:
                os.close(fd)
                raise
            self._fd = fd
        return self._fd


def compare(mark: Mark | None, held: dict[str, int], max_seq: int,
            moved_aside: str | None) -> Loss | None:
    """The loss between the note and the database as opened (None when nothing is missing)."""
    if moved_aside is not None:
        lost = dict(mark.held) if mark is not None else {}
        known = f"{sum(lost.values())} record(s)" if mark is not None else "an unknown number of records"
        return Loss("quarantined", lost, f"the outbox file was not usable and was moved aside "
                    f"to {moved_aside}: {known} in it were not delivered", moved_aside)
    if mark is None or max_seq >= mark.max_seq:
        return None  # every record the note knew of was committed before the database's state
    # The database is in a state older than the note: the transactions after it are gone.
    # Rows noted and missing now were lost; records those transactions had removed (sent)
    # come back and are sent again, so they can hide as many losses: "at least".
    lost = {s: n - held.get(s, 0) for s, n in mark.held.items() if n > held.get(s, 0)}
    detail = (f"the outbox came back holding records up to sequence {max_seq}, but "
              f"{mark.max_seq} had been committed (a damaged or lost write-ahead log): "
              f"at least {sum(lost.values())} waiting record(s) are gone")
    return Loss("missing_at_start", lost, detail)
