"""The evidence store: atomic writes, read-only lookups, deletion (layout.py has the names).

Every file is written under a temporary name, fsynced and renamed; the sidecar is
written last and the folder fsynced after it, so an id whose sidecar exists has every
image complete on disk. A crash (SIGKILL, power loss) in the middle leaves temporary
files or images without a sidecar: `sweep()` at start deletes them. Records are handed
to the outbox only after `write()` returned, so no record ever references a half-written
image.

Readers (the health server's /evidence route, `edge-agent evidence`) only open files
by name: they take no lock the daemon's writer could wait on.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from agent.evidence import layout

log = logging.getLogger(__name__)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}{layout.TMP_SUFFIX}")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


class EvidenceStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    # ------------------------------------------------------------------ write (writer thread)
    def write(self, eid: str, images: Mapping[str, bytes], sidecar: dict[str, Any],
              waits: tuple[str, ...] = ()) -> int:
        """Store the images (variant -> JPEG bytes), the wait markers, then the sidecar.

        Returns the bytes written. On any error (disk full, ...) whatever was written of
        this id is removed again and the error raised."""
        folder = self.root / layout.day_of(eid)
        folder.mkdir(parents=True, exist_ok=True)
        written = 0
        try:
            for variant, data in images.items():
                _write_atomic(folder / layout.image_name(eid, variant), data)
                written += len(data)
            for sink in waits:
                layout.wait_marker(self.root, eid, sink).touch()
            text = json.dumps(sidecar, indent=1, sort_keys=True).encode()
            _write_atomic(folder / f"{eid}{layout.SIDECAR}", text)
            written += len(text)
            fsync_dir(folder)
        except BaseException:
            self.delete(eid)
            raise
        return written

    # ------------------------------------------------------------------ read (any thread/process)
    def image_path(self, eid: str, variant: str = "") -> Path:
        """Path of a stored image; raises layout.BadEvidenceId for a malformed id/variant."""
        return self.root / layout.rel_image(eid, variant)

    def sidecar(self, eid: str) -> dict[str, Any] | None:
        try:
            text = (self.root / layout.rel_sidecar(eid)).read_text()
        except OSError:
            return None
        try:
            return dict(json.loads(text))
        except ValueError:
            return None

    def complete(self, eid: str) -> bool:
        return (self.root / layout.rel_sidecar(eid)).exists()

    def ids(self) -> Iterator[str]:
        """Ids with a sidecar, oldest first (ids sort by time)."""
        if not self.root.is_dir():
            return
        for day in sorted(p for p in self.root.iterdir() if p.is_dir()):
            names = []
            with contextlib.suppress(OSError):
                names = sorted(n[:-len(layout.SIDECAR)] for n in os.listdir(day)
                               if n.endswith(layout.SIDECAR))
            for name in names:
                if layout.ID_RE.match(name):
                    yield name

    def sidecars(self) -> Iterator[dict[str, Any]]:
        for eid in self.ids():
            meta = self.sidecar(eid)
            if meta is not None:  # deleted by retention meanwhile
                yield meta

    def files_of(self, eid: str) -> list[Path]:
        folder = self.root / layout.day_of(eid)
        try:
            names = os.listdir(folder)
        except OSError:
            return []
        return [folder / n for n in names if n.startswith(eid)]

    def waiting(self, eid: str) -> list[str]:
        """Sinks that still have to deliver this id."""
        return [p.name.split(layout.WAIT, 1)[1] for p in self.files_of(eid)
                if layout.WAIT in p.name]

    def delivered(self, eid: str, sink: str) -> None:
        """A sink delivered the images of `eid` (called from the sink's thread)."""
        with contextlib.suppress(OSError, layout.BadEvidenceId):
            layout.wait_marker(self.root, eid, sink).unlink()

    # ------------------------------------------------------------------ delete
    def delete(self, eid: str) -> int:
        """Remove every file of `eid`, sidecar first; returns the bytes freed."""
        freed = 0
        files = sorted(self.files_of(eid), key=lambda p: not p.name.endswith(layout.SIDECAR))
        for path in files:
            with contextlib.suppress(OSError):
                freed += path.stat().st_size
                path.unlink()
        return freed

    def sweep(self) -> int:
        """At start: delete temporary files and images without a sidecar (a crash mid-write);
        remove empty day folders. Returns the files deleted."""
        if not self.root.is_dir():
            return 0
        removed = 0
        for day in [p for p in self.root.iterdir() if p.is_dir()]:
            names = set(os.listdir(day))
            complete = {n[:36] for n in names if n.endswith(layout.SIDECAR)}
            for name in names:
                parts = layout.split_name(name)
                if name.startswith(".") and name.endswith(layout.TMP_SUFFIX) or (
                        parts is not None and parts[0] not in complete):
                    with contextlib.suppress(OSError):
                        (day / name).unlink()
                        removed += 1
            with contextlib.suppress(OSError):
                day.rmdir()  # only when empty
        if removed:
            log.warning("evidence: removed %d incomplete file(s) left by an earlier run", removed)
        return removed

    def usage(self) -> dict[str, tuple[int, tuple[str, ...]]]:
        """id -> (bytes of its files, sinks still waiting), oldest first: one listing per day
        folder (for retention at start)."""
        out: dict[str, tuple[int, tuple[str, ...]]] = {}
        if not self.root.is_dir():
            return out
        for day in sorted(p for p in self.root.iterdir() if p.is_dir()):
            sizes: dict[str, int] = {}
            waits: dict[str, list[str]] = {}
            complete: set[str] = set()
            with contextlib.suppress(OSError):
                for entry in os.scandir(day):
                    parts = layout.split_name(entry.name)
                    if parts is None:
                        continue
                    eid, rest = parts
                    with contextlib.suppress(OSError):
                        sizes[eid] = sizes.get(eid, 0) + entry.stat().st_size
                    if rest == layout.SIDECAR:
                        complete.add(eid)
                    elif rest.startswith(layout.WAIT):
                        waits.setdefault(eid, []).append(rest[len(layout.WAIT):])
            for eid in sorted(complete):
                out[eid] = (sizes.get(eid, 0), tuple(waits.get(eid, ())))
        return out

    def is_waited(self, eid: str, sinks: tuple[str, ...]) -> bool:
        """Whether any of `sinks` still has to deliver `eid` (one stat per sink)."""
        return any(layout.wait_marker(self.root, eid, s).exists() for s in sinks)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0
