"""Export read back: imagefolder per class, YOLO labels from stored boxes, filters."""

from __future__ import annotations

import queue
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from agent.config.evidence import EvidenceConfig
from agent.event_ids import EventIds
from agent.evidence import export as ex
from agent.evidence.retention import Retention
from agent.evidence.store import EvidenceStore
from agent.evidence.writer import EvidenceJob, EvidenceWriter

W, H = 200, 100


def fill(root: Path) -> tuple[EvidenceStore, dict[str, dict[str, Any]]]:
    store = EvidenceStore(root)
    writer = EvidenceWriter(store, Retention(store, 10**9, 1e9, 0), EvidenceConfig(), "")
    done: queue.Queue[dict[str, Any] | None] = queue.Queue()
    writer.start()
    items = [  # verdict, class, station, findings
        ("NG", "scratch", "s1", (("scratch", 0.9, (20.0, 10.0, 60.0, 50.0)),
                                 ("spot", 0.8, (100.0, 50.0, 200.0, 100.0)))),
        ("NG", "spot", "s2", (("spot", 0.7, (0.0, 0.0, 50.0, 25.0)),)),
        ("NG", "dent", "s1", (("dent", 0.95, None),)),  # classification: no box
        ("OK", None, "s1", (("ok", 0.99, None),)),
        ("UNKNOWN", None, "s2", ()),
    ]
    metas = {}
    for i, (verdict, cls, st, findings) in enumerate(items):
        t = datetime(2026, 11, 29, 8, i, tzinfo=UTC)
        meta = {"line": "l1", "station": st, "verdict": verdict, "defect_class": cls,
                "capture_time": t.isoformat()}
        eid = EventIds()()
        writer.submit(EvidenceJob(eid, np.zeros((H, W, 3), np.uint8), findings, meta, (),
                                  lambda job, ref, err: done.put(ref)))
        assert done.get(timeout=10) is not None
        metas[eid] = meta
    writer.stop()
    return store, metas


def test_imagefolder_one_folder_per_class(tmp_path: Path) -> None:
    store, _ = fill(tmp_path / "ev")
    rep = ex.export_imagefolder(store, ex.select(store, ex.Filters()), tmp_path / "out")
    got = sorted(str(p.relative_to(tmp_path / "out").parent) for p in (tmp_path / "out").rglob("*.jpg"))
    assert got == ["dent", "ok", "scratch", "spot", "unknown"] and rep.images == 5


def test_yolo_labels_from_stored_boxes(tmp_path: Path) -> None:
    store, metas = fill(tmp_path / "ev")
    out = tmp_path / "yolo"
    rep = ex.export_yolo(store, ex.select(store, ex.Filters()), out, val_fraction=0.0)
    data = yaml.safe_load((out / "data.yaml").read_text())
    assert data["names"] == {0: "scratch", 1: "spot"} and data["nc"] == 2
    assert data["path"] == str(out.resolve()) and data["val"] == "images/train"
    assert rep.skipped_no_box == 2  # the dent has no box (use --whole-frame), UNKNOWN none
    labels = {p.stem: p.read_text().splitlines() for p in (out / "labels" / "train").glob("*.txt")}
    by_cls = {metas[k]["defect_class"] or metas[k]["verdict"]: v for k, v in labels.items()}
    assert by_cls["scratch"] == ["0 0.200000 0.300000 0.200000 0.400000",
                                 "1 0.750000 0.750000 0.500000 0.500000"]
    assert by_cls["spot"] == ["1 0.125000 0.125000 0.250000 0.250000"]
    assert by_cls["OK"] == []  # background image
    assert "UNKNOWN" not in by_cls  # nothing to label
    for stem in labels:
        assert (out / "images" / "train" / f"{stem}.jpg").exists()
    whole = ex.export_yolo(store, ex.select(store, ex.Filters(cls="dent")), tmp_path / "w",
                           whole_frame=True, val_fraction=0.0)
    assert whole.images == 1 and whole.classes == {"dent": 1}
    assert next((tmp_path / "w" / "labels" / "train").glob("*.txt")).read_text() == \
        "0 0.500000 0.500000 1.000000 1.000000\n"


def test_filters(tmp_path: Path) -> None:
    store, _ = fill(tmp_path / "ev")

    def n(**kw: Any) -> int:
        return len(list(ex.select(store, ex.Filters(**kw))))

    assert n() == 5 and n(station="s2") == 2 and n(station="l1/s1") == 3
    assert n(verdict="ng") == 3 and n(cls="spot") == 2 and n(cls="ok") == 1
    assert n(since=datetime(2026, 11, 29, 8, 3, tzinfo=UTC)) == 2
    assert n(until=datetime(2026, 11, 29, 8, 1, tzinfo=UTC)) == 1
