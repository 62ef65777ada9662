"""Where evidence lives on disk: names derived from the evidence id alone.

    state_dir/evidence/<YYYY-MM-DD>/<id>.jpg             the full frame (privacy mask applied)
                                    <id>.crop<N>.jpg     one crop per finding with a box
                                    <id>.annotated.jpg   boxes and labels drawn on a copy
                                    <id>.json            sidecar; written last: its presence
                                                         means every image above is complete
                                    <id>.wait-<sink>     a sink that still has to deliver it

The id is a UUIDv7 (agent/event_ids.py): the day folder comes from the time in it, so
a URL or a record's `path` finds the files without an index.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

ID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
VARIANT_RE = re.compile(r"^(|\.annotated|\.crop[0-9]{1,3})$")
SIDECAR = ".json"
WAIT = ".wait-"
TMP_SUFFIX = ".tmp"


class BadEvidenceId(ValueError):
    """Not an evidence id (or variant) this store could have written."""


def check_id(eid: str) -> str:
    if not ID_RE.match(eid):
        raise BadEvidenceId(f"{eid!r} is not an evidence id (a UUIDv7)")
    return eid


def id_millis(eid: str) -> int:
    """Unix time in ms embedded in the id."""
    check_id(eid)
    return int(eid[:8] + eid[9:13], 16)


def id_time(eid: str) -> datetime:
    return datetime.fromtimestamp(id_millis(eid) / 1000, UTC)


def day_of(eid: str) -> str:
    return id_time(eid).strftime("%Y-%m-%d")


def image_name(eid: str, variant: str = "") -> str:
    if not VARIANT_RE.match(variant):
        raise BadEvidenceId(f"{variant!r} is not an evidence variant (.annotated, .cropN)")
    return f"{check_id(eid)}{variant}.jpg"


def rel_image(eid: str, variant: str = "") -> str:
    """Path of an image relative to the evidence root, with '/' separators."""
    return f"{day_of(eid)}/{image_name(eid, variant)}"


def rel_sidecar(eid: str) -> str:
    return f"{day_of(eid)}/{check_id(eid)}{SIDECAR}"


def wait_marker(root: Path, eid: str, sink: str) -> Path:
    return root / day_of(eid) / f"{check_id(eid)}{WAIT}{sink}"


def split_name(name: str) -> tuple[str, str] | None:
    """'<id><rest>' -> (id, rest) for a file of this store, else None."""
    if len(name) < 36 or not ID_RE.match(name[:36]):
        return None
    return name[:36], name[36:]
