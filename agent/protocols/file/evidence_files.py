"""Sink side of evidence: the image files a record's `evidence` reference names.

The agent attaches its evidence store to every sink that takes files
(`attach_evidence(store)`, duck-typed: sinks do not import agent.evidence). A record
carries `evidence.path` and `evidence.files` (paths relative to the store's root);
this module resolves them safely, encodes multipart bodies, and tells the store when
a sink has delivered them (so retention may delete them).
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

log = logging.getLogger(__name__)


class EvidenceSource(Protocol):
    root: Path

    def delivered(self, eid: str, sink: str) -> None: ...


@dataclass(frozen=True)
class EvidenceFile:
    name: str  # file name, e.g. <id>.jpg, <id>.crop0.jpg, <id>.annotated.jpg
    path: Path  # in the agent's evidence store
    main: bool  # the full frame (the others are crops and the annotated copy)


def reference(body: dict[str, Any]) -> dict[str, Any] | None:
    ev = body.get("evidence")
    return ev if isinstance(ev, dict) and isinstance(ev.get("id"), str) else None


def files_of(store: EvidenceSource, ev: dict[str, Any]) -> Iterator[EvidenceFile]:
    """The files of a reference that are inside the store (a path leaving it is skipped)."""
    rels = [ev.get("path")] + list(ev.get("files") or [])
    for i, rel in enumerate(rels):
        if not isinstance(rel, str):
            continue
        p = PurePosixPath(rel)
        if p.is_absolute() or ".." in p.parts or not p.name.endswith(".jpg"):
            log.warning("evidence %s: path %r refused", ev.get("id"), rel)
            continue
        yield EvidenceFile(p.name, store.root.joinpath(*p.parts), i == 0)


def copy_into(src: Path, folder: Path) -> bool:
    """Copy `src` into `folder` atomically (temp name, fsync, rename); False when missing."""
    dst = folder / src.name
    if dst.exists():
        return True
    tmp = folder / f".{src.name}.part"
    try:
        data = src.read_bytes()
    except FileNotFoundError:
        return False
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, dst)
    return True


def multipart(record: dict[str, Any], files: list[tuple[EvidenceFile, bytes]],
              default: Any = None) -> tuple[bytes, str]:
    """(body, content type) of a multipart/form-data request: part `record` (the JSON
    object), part `image` (the full frame), parts `file` (crops, annotated copy)."""
    boundary = f"edge-agent-{uuid.uuid4().hex}"
    out = [_part(boundary, 'name="record"', "application/json",
                 json.dumps(record, separators=(",", ":"), default=default).encode())]
    for f, data in files:
        field = "image" if f.main else "file"
        out.append(_part(boundary, f'name="{field}"; filename="{f.name}"', "image/jpeg", data))
    out.append(f"--{boundary}--\r\n".encode())
    return b"".join(out), f"multipart/form-data; boundary={boundary}"


def _part(boundary: str, disposition: str, ctype: str, data: bytes) -> bytes:
    head = (f"--{boundary}\r\nContent-Disposition: form-data; {disposition}\r\n"
            f"Content-Type: {ctype}\r\n\r\n")
    return head.encode() + data + b"\r\n"
