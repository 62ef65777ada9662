"""Offline evaluation of a candidate model over a folder of images (a batch job).

Images come from a folder or from the evidence store (`--evidence`). Each image gets one
label per model: with a station's rules, the highest-scoring class
that passes them (score, ROI) or `ok`; without rules, the model's top finding (or `ok`).
Ground truth comes from the image's subfolder name (`folder/crack/0001.png`) or a JSON
sidecar (`0001.json` with `truth`); a verdict recorded at the time comes from the
sidecar too (`production.classes`, as shadow mode saves its disagreements, or
`verdict` + `defect_class`). The report holds per class: images, agreement of the
candidate with the truth (recall and precision), with the recorded verdicts and with
the reference model (`--against`); the confusion matrix truth x candidate; and every
image where the candidate disagrees with any of them.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cv2

from agent.config.station import DefectRule
from agent.inference.runner import ModelRunner
from agent.runtime.model_guard import frame_classes
from agent.types import Frame, Inspection

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}
OK = "ok"


@dataclass(frozen=True)
class Sample:
    path: Path
    truth: str | None
    recorded: str | None


def label_of(insp: Inspection, rules: list[DefectRule] | None) -> str:
    if insp.error is not None:
        return "error"
    if rules:
        passing = frame_classes(insp, rules)
        best = max((f for f in insp.findings if f.label in passing), key=lambda f: f.score,
                   default=None)
        return best.label if best is not None else OK
    best = max(insp.findings, key=lambda f: f.score, default=None)
    return best.label if best is not None else OK


def _sidecar(path: Path) -> dict[str, Any]:
    side = path.with_suffix(".json")
    if not side.is_file():
        return {}
    try:
        doc = json.loads(side.read_text())
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def _recorded(doc: dict[str, Any]) -> str | None:
    prod = doc.get("production")
    if isinstance(prod, dict) and isinstance(prod.get("classes"), list):
        return str(prod["classes"][0]) if prod["classes"] else OK
    if doc.get("verdict") in ("OK", "NG"):
        return OK if doc["verdict"] == "OK" else str(doc.get("defect_class") or "NG")
    return None


def samples(folder: Path, labels: set[str]) -> list[Sample]:
    """Every image under `folder` (sorted); truth from the subfolder name when it is one
    of the model's labels, else from the sidecar."""
    out = []
    for path in sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES):
        doc = _sidecar(path)
        parent = path.parent.name if path.parent != folder else None
        truth = parent if parent in labels else doc.get("truth")
        out.append(Sample(path, str(truth) if truth else None, _recorded(doc)))
    return out


def evidence_samples(root: Path, station: str | None) -> list[Sample]:
    """Every stored evidence image (agent/evidence) of `station` (or all): the truth from
    its sidecar, the verdict recorded at the time (for a shadow disagreement, the
    production model's)."""
    from agent.evidence.export import Filters, label_of, select
    from agent.evidence.store import EvidenceStore

    store = EvidenceStore(root)
    out = []
    for meta in select(store, Filters(station=station)):
        eid = (meta.get("evidence") or {}).get("id")
        if not eid:
            continue
        recorded = _recorded(meta) if meta.get("role") == "shadow" else label_of(meta)
        truth = meta.get("truth")
        out.append(Sample(store.image_path(eid), str(truth) if truth else None, recorded))
    return sorted(out, key=lambda x: str(x.path))


@dataclass
class Report:
    model: dict[str, str]
    against: dict[str, str] | None
    folder: str
    images: int = 0
    unreadable: list[str] = field(default_factory=list)
    per_class: dict[str, Counter[str]] = field(default_factory=dict)
    confusion: dict[str, Counter[str]] = field(default_factory=dict)
    disagreements: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0

    def count(self, cls: str, key: str) -> None:
        self.per_class.setdefault(cls, Counter())[key] += 1

    def to_json(self) -> dict[str, Any]:
        classes = {c: _class_figures(n) for c, n in sorted(self.per_class.items())}
        return {"model": self.model, "against": self.against, "folder": self.folder,
                "images": self.images, "seconds": round(self.seconds, 2),
                "unreadable": self.unreadable, "per_class": classes,
                "confusion": {t: dict(c) for t, c in sorted(self.confusion.items())},
                "disagreements": self.disagreements}


def _ratio(a: int, b: int) -> float | None:
    return round(a / b, 4) if b else None


def _class_figures(n: Counter[str]) -> dict[str, Any]:
    return {"truth": n["truth"], "predicted": n["predicted"],
            "recall": _ratio(n["truth_hit"], n["truth"]),
            "precision": _ratio(n["truth_hit"], n["predicted_truthed"]),
            "recorded": n["recorded"], "agree_recorded": _ratio(n["recorded_hit"], n["recorded"]),
            "reference": n["reference"],
            "agree_reference": _ratio(n["reference_hit"], n["reference"])}


def _model_json(r: ModelRunner) -> dict[str, str]:
    return {"name": r.info.name, "version": r.info.version, "sha256": r.info.sha256}


def _frame(path: Path, seq: int) -> Frame | None:
    pixels = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if pixels is None:
        return None
    return Frame(pixels, "evaluate", seq, time.monotonic(), datetime.now(UTC))


def evaluate(candidate: ModelRunner, reference: ModelRunner | None, folder: Path,
             items: list[Sample], rules: list[DefectRule] | None,
             pace: Callable[[], None] = lambda: None) -> Report:
    report = Report(_model_json(candidate), _model_json(reference) if reference else None,
                    str(folder))
    t0 = time.monotonic()
    for seq, s in enumerate(items):
        frame = _frame(s.path, seq)
        if frame is None:
            report.unreadable.append(str(s.path))
            continue
        report.images += 1
        cand = label_of(candidate.infer(frame), rules)
        ref = label_of(reference.infer(frame), rules) if reference is not None else None
        _score(report, s, cand, ref)
        pace()
    report.seconds = time.monotonic() - t0
    return report


def _score(report: Report, s: Sample, cand: str, ref: str | None) -> None:
    report.count(cand, "predicted")
    differs = {}
    if s.truth is not None:
        report.count(s.truth, "truth")
        report.count(cand, "predicted_truthed")
        report.confusion.setdefault(s.truth, Counter())[cand] += 1
        if cand == s.truth:
            report.count(s.truth, "truth_hit")
        else:
            differs["truth"] = s.truth
    for key, other in (("recorded", s.recorded), ("reference", ref)):
        if other is None:
            continue
        report.count(other, key)
        if cand == other:
            report.count(other, f"{key}_hit")
        else:
            differs[key] = other
    if differs:
        report.disagreements.append({"image": str(s.path), "candidate": cand, **differs})


def text_table(report: Report, max_images: int = 10) -> Iterator[str]:
    doc = report.to_json()
    m = doc["model"]
    yield (f"model {m['name']} {m['version']} ({m['sha256'][:12]}) on {doc['images']} images "
           f"of {doc['folder']} in {doc['seconds']:.1f} s"
           + (f", against {doc['against']['name']} {doc['against']['version']}"
              if doc["against"] else ""))
    yield f"{'class':<12}{'truth':>7}{'recall':>8}{'precis.':>8}{'recorded':>10}{'agree':>7}" \
          f"{'ref':>6}{'agree':>7}"
    for cls, f in doc["per_class"].items():
        yield (f"{cls:<12}{f['truth']:>7}{_pct(f['recall']):>8}{_pct(f['precision']):>8}"
               f"{f['recorded']:>10}{_pct(f['agree_recorded']):>7}{f['reference']:>6}"
               f"{_pct(f['agree_reference']):>7}")
    if doc["confusion"]:
        cols = sorted({c for row in doc["confusion"].values() for c in row})
        yield "confusion (rows: truth, columns: candidate)"
        yield f"{'':<12}" + "".join(f"{c[:7]:>8}" for c in cols)
        for t, row in doc["confusion"].items():
            yield f"{t:<12}" + "".join(f"{row.get(c, 0):>8}" for c in cols)
    dis = doc["disagreements"]
    yield f"{len(dis)} image(s) where the candidate disagrees" + (":" if dis else "")
    for d in dis[:max_images]:
        others = ", ".join(f"{k} {v}" for k, v in d.items() if k not in ("image", "candidate"))
        yield f"  {d['image']}: candidate {d['candidate']}; {others}"
    if len(dis) > max_images:
        yield f"  ... {len(dis) - max_images} more in the JSON report"


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.1f}%"
