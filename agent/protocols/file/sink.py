"""File-drop sink (legacy MES): JSON lines or CSV files in a folder, one file per record kind.

A file is written under a hidden temporary name (`.<name>.part`) and renamed to
its final name (`<sink>_<kind>_<UTC time>_<seq>.jsonl|csv`) when it is rotated
(by size or age, checked on every send and by a timer) or when the sink closes,
so a reader polling for `*.jsonl` / `*.csv` never sees half a file. `send`
returns after the bytes are fsynced; a rename is followed by an fsync of the
folder. Temporary files left by a crash are completed at start: a torn last
line (written, never acknowledged, so still in the outbox) is cut off and the
file renamed.

Evidence: with `evidence: true` (the default) the images a record references (full
frame, crops, annotated copy) are copied into the same folder (`<evidence id>.jpg`,
`.cropN.jpg`, `.annotated.jpg`), fsynced, before the record's line is written; an
image retention already deleted is counted (`evidence_missing`) and the record
written anyway.

CSV: one header row (the keys of the file's first record); a record with other
keys starts a new file. Nested values are JSON text; a string holding a line
break is written as JSON text too, so every row is exactly one line.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.logutil import RepeatLimiter
from agent.protocols.base import SinkRejected, SinkState, SinkUnavailable, wire_payload
from agent.protocols.file import evidence_files
from agent.types import Record

if TYPE_CHECKING:
    from agent.protocols.file.config import FileSinkConfig

log = logging.getLogger(__name__)


@dataclass
class FileSinkStats:
    records_written: int = 0  # fsynced
    bytes_written: int = 0
    files_finalized: int = 0  # renamed to their final name
    files_recovered: int = 0  # temporary files completed at start
    write_errors: int = 0  # sends that raised SinkUnavailable
    evidence_copied: int = 0  # image files copied beside the records
    evidence_missing: int = 0  # referenced images no longer in the store (retention)
    rejected: int = 0
    last_error: str | None = None


@dataclass
class _Open:
    kind: str
    tmp: Path
    final: Path
    fh: io.BufferedWriter
    opened: float  # monotonic
    size: int = 0
    columns: tuple[str, ...] | None = None  # CSV header


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value) if ("\n" in value or "\r" in value) else value
    if isinstance(value, int | float):
        return json.dumps(value)
    return json.dumps(value, separators=(",", ":"), default=str)


def csv_line(cells: Sequence[str]) -> bytes:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(cells)
    return buf.getvalue().encode("utf-8")


class FileSink:
    def __init__(self, name: str, cfg: FileSinkConfig, folder: Path) -> None:
        self.name = name
        self.cfg = cfg
        self.folder = folder
        self.where = f"file sink {name!r} ({folder})"
        self.ext = cfg.format
        self._state = SinkState.STARTING
        self._stats = FileSinkStats()
        self._open: dict[str, _Open] = {}
        self._seq = 0
        self._prepared = False
        self._lock = asyncio.Lock()
        self._timer: asyncio.Task[None] | None = None
        self._lim = RepeatLimiter(log, self.where)
        self._evidence: evidence_files.EvidenceSource | None = None

    def attach_evidence(self, store: evidence_files.EvidenceSource) -> None:
        self._evidence = store

    @property
    def takes_evidence(self) -> bool:
        return self._evidence is not None and self.cfg.evidence

    @property
    def state(self) -> SinkState:
        return self._state

    def stats(self) -> FileSinkStats:
        return replace(self._stats)

    async def start(self) -> None:
        try:
            await asyncio.to_thread(self._prepare)
        except OSError as exc:
            self._fail(f"cannot use the folder: {exc.strerror or exc}", SinkState.FAILED)
        else:
            self._state = SinkState.CONNECTED
        self._timer = asyncio.create_task(self._rotate_on_time(), name=f"file-sink-{self.name}")

    async def send(self, batch: Sequence[Record]) -> None:
        if self._state is SinkState.CLOSED:
            raise SinkUnavailable(f"{self.where}: closed")
        rows, refused = self._encode(batch)
        async with self._lock:
            try:
                await asyncio.to_thread(self._write_all, rows)
            except OSError as exc:
                self._stats.write_errors += 1
                self._fail(f"write failed: {exc.strerror or exc}", SinkState.DISCONNECTED)
                raise SinkUnavailable(f"{self.where}: write failed: {exc}") from exc
        self._state = SinkState.CONNECTED
        self._lim.recovered("writing again")
        if refused:
            self._stats.rejected += len(refused)
            raise SinkRejected(f"{self.where}: {next(iter(refused.values()))}", list(refused))

    async def close(self) -> None:
        if self._state is SinkState.CLOSED:
            return
        self._state = SinkState.CLOSED
        if self._timer is not None:
            self._timer.cancel()
            await asyncio.gather(self._timer, return_exceptions=True)
        async with self._lock:
            try:
                await asyncio.to_thread(self._finalize_all, lambda f: True)
            except OSError as exc:
                log.error("%s: could not finalize files at close (%s); they are completed "
                          "at the next start", self.where, exc)

    # ---- encoding (on the loop, pure) ------------------------------------------------

    def _encode(self, batch: Sequence[Record]) -> tuple[list[tuple[str, dict[str, Any]]],
                                                         dict[str, str]]:
        rows: list[tuple[str, dict[str, Any]]] = []
        refused: dict[str, str] = {}
        for r in batch:
            body = wire_payload(r)
            try:
                json.dumps(body, allow_nan=False, default=_iso)
            except (TypeError, ValueError) as exc:
                refused[r.id] = f"record {r.id} is not JSON-serialisable: {exc}"
                continue
            rows.append((str(r.kind), body))
        return rows, refused

    def _line(self, f: _Open, body: dict[str, Any]) -> bytes:
        if self.ext == "jsonl":
            return (json.dumps(body, separators=(",", ":"), default=_iso) + "\n").encode()
        assert f.columns is not None
        return csv_line([csv_cell(body.get(c)) for c in f.columns])

    # ---- files (worker thread, under the lock) ---------------------------------------

    def _prepare(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        for tmp in sorted(self.folder.glob(f".{self.name}_*.part")):
            self._recover(tmp)
        self._prepared = True

    def _recover(self, tmp: Path) -> None:
        data = tmp.read_bytes()
        keep = data[:data.rfind(b"\n") + 1]
        lines = keep.count(b"\n") - (1 if self.ext == "csv" else 0)
        if lines <= 0:
            tmp.unlink()
        else:
            with tmp.open("r+b") as fh:
                fh.truncate(len(keep))
                os.fsync(fh.fileno())
            os.rename(tmp, tmp.with_name(tmp.name[1:-len(".part")]))
            self._stats.files_recovered += 1
            log.warning("%s: completed %s left by an earlier run (%d record(s))",
                        self.where, tmp.name, lines)
        fsync_dir(self.folder)

    def _write_all(self, rows: list[tuple[str, dict[str, Any]]]) -> None:
        if not self._prepared:  # the folder was unusable at start (not mounted yet, ...)
            self._prepare()
        delivered = self._copy_evidence(rows)
        touched: dict[str, tuple[_Open, int]] = {}
        try:
            for kind, body in rows:
                f = self._file_for(kind, body, touched)
                touched.setdefault(f.tmp.name, (f, f.size))
                data = self._line(f, body)
                f.fh.write(data)
                f.size += len(data)
            for f, _ in touched.values():
                f.fh.flush()
                os.fsync(f.fh.fileno())
        except OSError:
            self._undo(touched)
            raise
        self._stats.records_written += len(rows)
        self._stats.bytes_written += sum(f.size - s for f, s in touched.values())
        if self._evidence is not None:
            for eid in delivered:
                self._evidence.delivered(eid, self.name)

    def _copy_evidence(self, rows: list[tuple[str, dict[str, Any]]]) -> list[str]:
        """Copy every referenced image beside the records (before their lines are written)."""
        store = self._evidence
        if store is None or not self.cfg.evidence:
            return []
        ids = []
        copied = False
        for _kind, body in rows:
            ev = evidence_files.reference(body)
            if ev is None:
                continue
            for f in evidence_files.files_of(store, ev):
                if evidence_files.copy_into(f.path, self.folder):
                    self._stats.evidence_copied += 1
                    copied = True
                else:
                    self._stats.evidence_missing += 1
                    log.warning("%s: evidence %s no longer stored (retention); record "
                                "written without it", self.where, f.name)
            ids.append(ev["id"])
        if copied:
            fsync_dir(self.folder)
        return ids

    def _undo(self, touched: dict[str, tuple[_Open, int]]) -> None:
        """Cut every file back to its size before this send (the records stay in the outbox)."""
        for f, size in touched.values():
            try:
                f.fh.truncate(size)
                f.fh.seek(size)
                f.size = size
            except (OSError, ValueError):
                self._drop(f)

    def _drop(self, f: _Open) -> None:
        self._open.pop(f.kind, None)
        try:
            f.fh.close()
        except OSError:
            pass

    def _file_for(self, kind: str, body: dict[str, Any],
                  touched: dict[str, tuple[_Open, int]]) -> _Open:
        f = self._open.get(kind)
        if f is not None and (self._due(f) or not self._fits(f, body)):
            self._finalize(f)  # fsynced and renamed: durable, nothing left to undo there
            touched.pop(f.tmp.name, None)
            f = None
        return f or self._new_file(kind, body)

    def _due(self, f: _Open) -> bool:
        return (f.size >= self.cfg.rotate_bytes
                or time.monotonic() - f.opened >= self.cfg.rotate_s)

    def _fits(self, f: _Open, body: dict[str, Any]) -> bool:
        return f.columns is None or set(body) <= set(f.columns)

    def _new_file(self, kind: str, body: dict[str, Any]) -> _Open:
        self._seq += 1
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        final = self.folder / f"{self.name}_{kind}_{stamp}_{self._seq:04d}.{self.ext}"
        tmp = self.folder / f".{final.name}.part"
        fh = open(tmp, "xb")  # noqa: SIM115  (kept open across sends, closed in _finalize)
        f = _Open(kind, tmp, final, fh, time.monotonic())
        if self.ext == "csv":
            f.columns = tuple(body)
            header = csv_line(f.columns)
            fh.write(header)
            f.size = len(header)
        fh.flush()
        os.fsync(fh.fileno())
        fsync_dir(self.folder)
        self._open[kind] = f
        return f

    def _finalize(self, f: _Open) -> None:
        f.fh.flush()
        os.fsync(f.fh.fileno())
        f.fh.close()
        self._open.pop(f.kind, None)
        os.rename(f.tmp, f.final)
        fsync_dir(self.folder)
        self._stats.files_finalized += 1

    def _finalize_all(self, which: Any) -> None:
        for f in [f for f in self._open.values() if which(f)]:
            self._finalize(f)

    # ---- time rotation ----------------------------------------------------------------

    async def _rotate_on_time(self) -> None:
        period = max(0.05, min(self.cfg.rotate_s / 4, 1.0))
        while True:
            await asyncio.sleep(period)
            if not any(self._due(f) for f in self._open.values()):
                continue
            async with self._lock:
                try:
                    await asyncio.to_thread(self._finalize_all, self._due)
                except OSError as exc:
                    self._fail(f"rotation failed: {exc.strerror or exc}", SinkState.DISCONNECTED)

    def _fail(self, why: str, state: SinkState) -> None:
        self._state = state
        self._stats.last_error = why
        self._lim.failure("%s; records stay in the outbox", why)


def _iso(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")
