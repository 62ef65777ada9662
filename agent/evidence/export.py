"""Read the evidence store for people and for retraining: filter, list, export.

Read-only and lock-free: it lists folders and opens files by name, so it runs beside
the daemon without ever making the writer wait. An item retention deletes while an
export runs is skipped (counted), never half-copied: images are copied under a
temporary name and renamed.

Formats:
- imagefolder: <out>/<class>/<id>.jpg, one folder per class (ok, unknown, or the defect
  class), as torchvision's ImageFolder and Ultralytics' classification trainer read it;
- yolo: <out>/images/{train,val}/<id>.jpg, <out>/labels/{train,val}/<id>.txt (one
  `class cx cy w h` line per stored box, normalised) and <out>/data.yaml (path, train,
  val, names), loadable by Ultralytics as it is. OK frames get an empty label file
  (background). Findings without a box (classification models) are left out unless
  `whole_frame` labels them with the whole frame.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from agent.evidence.store import EvidenceStore

OK_LABELS = frozenset({"ok", "good", "background", "normal"})


@dataclass(frozen=True)
class Filters:
    station: str | None = None  # "line/station" or "station"
    cls: str | None = None
    verdict: str | None = None
    since: datetime | None = None
    until: datetime | None = None


@dataclass
class ExportReport:
    images: int = 0
    labels: int = 0
    skipped_no_box: int = 0
    vanished: int = 0  # deleted by retention while exporting
    classes: dict[str, int] = field(default_factory=dict)


def label_of(meta: dict[str, Any]) -> str:
    """The class of a stored frame: ok, unknown, or the defect class."""
    verdict = meta.get("verdict")
    if verdict == "OK":
        return "ok"
    if meta.get("defect_class"):
        return str(meta["defect_class"])
    if verdict == "UNKNOWN":
        return "unknown"
    found = [f["label"] for f in meta.get("findings", []) if f["label"].lower() not in OK_LABELS]
    return found[0] if found else "ok"


def captured(meta: dict[str, Any]) -> datetime | None:
    try:
        return datetime.fromisoformat(meta["capture_time"])
    except (KeyError, TypeError, ValueError):
        return None


def matches(meta: dict[str, Any], f: Filters) -> bool:
    key = f"{meta.get('line')}/{meta.get('station')}"
    if f.station is not None and f.station not in (key, meta.get("station")):
        return False
    if f.verdict is not None and (meta.get("verdict") or "") != f.verdict.upper():
        return False
    if f.cls is not None and f.cls != label_of(meta) and f.cls not in {
            x["label"] for x in meta.get("findings", []) if x.get("box")}:
        return False
    t = captured(meta)
    if f.since is not None and (t is None or t < f.since):
        return False
    return not (f.until is not None and (t is None or t >= f.until))


def select(store: EvidenceStore, f: Filters) -> Iterator[dict[str, Any]]:
    return (m for m in store.sidecars() if matches(m, f))


def _copy(src: Path, dst: Path) -> bool:
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.part")
    try:
        shutil.copyfile(src, tmp)
    except FileNotFoundError:
        return False
    os.replace(tmp, dst)
    return True


def export_imagefolder(store: EvidenceStore, items: Iterable[dict[str, Any]],
                       out: Path) -> ExportReport:
    rep = ExportReport()
    for meta in items:
        eid, cls = meta["evidence"]["id"], label_of(meta)
        if not _copy(store.image_path(eid), out / cls / f"{eid}.jpg"):
            rep.vanished += 1
            continue
        rep.images += 1
        rep.classes[cls] = rep.classes.get(cls, 0) + 1
    return rep


def _split(eid: str, val_fraction: float) -> str:
    h = int.from_bytes(hashlib.sha256(eid.encode()).digest()[:4], "big") / 2**32
    return "val" if h < val_fraction else "train"


def yolo_lines(meta: dict[str, Any], names: dict[str, int], whole_frame: bool) -> list[str] | None:
    """Label lines of one frame; None when it shows a defect without any box to give."""
    if meta.get("verdict") == "OK":
        return []
    w, h = meta["evidence"]["width"], meta["evidence"]["height"]
    out = []
    for f in meta.get("findings", []):
        label = f["label"]
        if label.lower() in OK_LABELS or label not in names:
            continue
        box = f.get("box")
        if box is None:
            if not whole_frame or label != label_of(meta):
                continue
            box = [0, 0, w, h]
        x1, y1 = max(0.0, box[0]), max(0.0, box[1])
        x2, y2 = min(float(w), box[2]), min(float(h), box[3])
        if x2 <= x1 or y2 <= y1:
            continue
        out.append(f"{names[label]} {(x1 + x2) / 2 / w:.6f} {(y1 + y2) / 2 / h:.6f} "
                   f"{(x2 - x1) / w:.6f} {(y2 - y1) / h:.6f}")
    return out or None


def export_yolo(store: EvidenceStore, items: Iterable[dict[str, Any]], out: Path, *,
                val_fraction: float = 0.2, whole_frame: bool = False) -> ExportReport:
    metas = list(items)
    labels = sorted({f["label"] for m in metas for f in m.get("findings", [])
                     if f["label"].lower() not in OK_LABELS and (f.get("box") or whole_frame)})
    names = {name: i for i, name in enumerate(labels)}
    rep = ExportReport()
    splits = set()
    for meta in metas:
        lines = yolo_lines(meta, names, whole_frame)
        if lines is None:
            rep.skipped_no_box += 1
            continue
        eid = meta["evidence"]["id"]
        split = _split(eid, val_fraction)
        if not _copy(store.image_path(eid), out / "images" / split / f"{eid}.jpg"):
            rep.vanished += 1
            continue
        (out / "labels" / split).mkdir(parents=True, exist_ok=True)
        (out / "labels" / split / f"{eid}.txt").write_text("".join(x + "\n" for x in lines))
        splits.add(split)
        rep.images += 1
        rep.labels += len(lines)
        for line in lines:
            cls = labels[int(line.split()[0])]
            rep.classes[cls] = rep.classes.get(cls, 0) + 1
    val = "images/val" if "val" in splits else "images/train"
    out.mkdir(parents=True, exist_ok=True)
    data = {"path": str(out.resolve()), "train": "images/train", "val": val, "nc": len(labels),
            "names": dict(enumerate(labels))}
    (out / "data.yaml").write_text("# exported by edge-agent evidence export --format yolo\n"
                                   + yaml.safe_dump(data, sort_keys=False))
    return rep
