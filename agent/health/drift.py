"""Drift signals per station: has the camera image or the model's output changed?

Features, one value per observed frame:

- input (from the frame, every `stride`-th row and column, in grey):
  `brightness` (mean), `contrast` (standard deviation), `sharpness` (variance of the
  Laplacian: falls when the lens fogs or the focus slips);
- output (from the inspection; frames whose inference failed are skipped):
  `top_score` (highest score of a non-OK finding, 0 when none), `defect` (1 when the
  top finding is a non-OK label scoring >= 0.5, else 0: the defect rate).

Statistic: Population Stability Index of a rolling window of the last
`window_frames` values against a baseline of the first `baseline_frames` values:

    PSI = sum_i (a_i - e_i) * ln(a_i / e_i)

with e_i / a_i the share of baseline / window values in bin i. Bins for a continuous
feature: the baseline's quintiles (edges at its 20/40/60/80 % quantiles) plus one bin
below and one above the baseline's range (min - r, max + r), where edges closer than
the feature's resolution r are merged (r = 4 grey levels for brightness, 2 for
contrast, 0.15 in ln(1 + sharpness), 0.05 for top_score), so a feature that barely
varies is not split into meaningless bins. `defect` has the bins {0, 1}. Shares are
smoothed as (count + 0.5) / (n + 0.5 * bins) so an empty bin stays finite. Rule of
thumb: PSI < 0.1 no change, 0.1-0.25 moderate, > 0.25 significant.

Choosing the windows: consecutive frames of a conveyor are not independent (one part
stays in view for several frames), so the PSI of two windows of an unchanged line
scatters by about (bins - 1) * (1/parts_in_baseline + 1/parts_in_window). With ~30
parts per window that is ~0.3: give each window a few hundred parts (minutes of
production), or raise `psi_threshold`. A real lighting change scores well above 1.

A `DriftReport` is returned once when a feature's PSI reaches `psi_threshold`; that
feature reports again only after its PSI fell back below 80 % of the threshold
(hysteresis, so a PSI hovering at the threshold does not flood the MES).
"""

from __future__ import annotations

import bisect
import logging
import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import cv2
import numpy as np

from agent.config.station import DriftConfig
from agent.types import Inspection

log = logging.getLogger(__name__)

INPUT_FEATURES = ("brightness", "contrast", "sharpness")
OUTPUT_FEATURES = ("top_score", "defect")
OK_LABELS = frozenset({"ok", "good", "normal", "pass", "background"})
DEFECT_SCORE = 0.5
REARM_FRACTION = 0.8
_SMOOTH = 0.5
_QUANTILES = np.array([0.2, 0.4, 0.6, 0.8])
# feature -> (resolution: narrowest bin, compare in ln(1 + x))
_BINNING: dict[str, tuple[float, bool]] = {
    "brightness": (4.0, False), "contrast": (2.0, False), "sharpness": (0.15, True),
    "top_score": (0.05, False),
}


@dataclass(frozen=True, slots=True)
class DriftReport:
    """A feature's PSI crossed the threshold at this frame."""

    camera_id: str
    frame_seq: int
    wall_time: datetime
    features: tuple[str, ...]  # the features that just crossed
    psi: dict[str, float]  # every feature with a full window
    baseline_mean: dict[str, float]
    window_mean: dict[str, float]
    threshold: float
    baseline_frames: int
    window_frames: int

    def payload(self) -> dict[str, Any]:
        """JSON-ready body of a `drift` record (the caller adds line/station routing)."""
        return {
            "schema_version": 1, "camera_id": self.camera_id, "frame_seq": self.frame_seq,
            "time": self.wall_time.isoformat(), "features": list(self.features),
            "psi": self.psi, "baseline_mean": self.baseline_mean,
            "window_mean": self.window_mean, "threshold": self.threshold,
            "baseline_frames": self.baseline_frames, "window_frames": self.window_frames,
            "statistic": "psi",
        }


def psi(expected: Sequence[float], actual: Sequence[float]) -> float:
    """PSI of two count vectors over the same bins, with additive smoothing.

    Plain Python: with at most 7 bins, numpy's per-call overhead cost 10x the sum."""
    n_bins = len(expected)
    e_total = float(sum(expected)) + _SMOOTH * n_bins
    a_total = float(sum(actual)) + _SMOOTH * n_bins
    out = 0.0
    for ec, ac in zip(expected, actual, strict=True):
        e = (ec + _SMOOTH) / e_total
        a = (ac + _SMOOTH) / a_total
        out += (a - e) * math.log(a / e)
    return float(out)


def image_features(pixels: np.ndarray, stride: int = 4) -> dict[str, float]:
    """brightness, contrast, sharpness of every `stride`-th pixel (BGR or grey uint8).

    The sampled rows are turned grey first (OpenCV takes rows at any step), then every
    `stride`-th column is copied: the same grey values as converting the sampled pixels,
    without numpy's slow copy of a strided 3-byte-wide view."""
    rows = pixels[::stride]
    if rows.ndim == 3 and rows.strides[1:] == (rows.shape[2], 1):
        gray = np.ascontiguousarray(cv2.cvtColor(rows, cv2.COLOR_BGR2GRAY)[:, ::stride])
    else:
        sub = np.ascontiguousarray(rows[:, ::stride])
        gray = cv2.cvtColor(sub, cv2.COLOR_BGR2GRAY) if sub.ndim == 3 else sub
    mean, std = cv2.meanStdDev(gray)
    _, lap_std = cv2.meanStdDev(cv2.Laplacian(gray, cv2.CV_32F))
    return {"brightness": float(mean[0, 0]), "contrast": float(std[0, 0]),
            "sharpness": float(lap_std[0, 0]) ** 2}


def output_features(insp: Inspection) -> dict[str, float]:
    """top_score and defect (0/1) of one inspection."""
    defect_scores = [f.score for f in insp.findings if f.label.lower() not in OK_LABELS]
    top = max(insp.findings, key=lambda f: f.score, default=None)
    is_defect = top is not None and top.label.lower() not in OK_LABELS and top.score >= DEFECT_SCORE
    return {"top_score": max(defect_scores, default=0.0), "defect": 1.0 if is_defect else 0.0}


def _edges(base: np.ndarray, resolution: float) -> np.ndarray:
    """Quintile edges plus out-of-range edges, merged to at least `resolution` apart."""
    lo, hi = float(base.min()) - resolution, float(base.max()) + resolution
    kept = [lo]
    for edge in [*np.quantile(base, _QUANTILES), hi]:
        if edge - kept[-1] >= resolution:
            kept.append(float(edge))
    if kept[-1] < hi:
        kept[-1] = hi  # keep the top edge outside the baseline's range
    return np.asarray(kept)


@dataclass
class _Feature:
    """Baseline bins and a rolling window of bin counts for one feature."""

    binary: bool
    resolution: float = 0.0
    log_scale: bool = False
    baseline: list[float] = field(default_factory=list)
    edges: list[float] | None = None  # plain lists: bisect and sums on <= 7 bins per frame
    expected: list[float] | None = None
    window: deque[tuple[int, float]] = field(default_factory=deque)
    counts: list[int] | None = None
    psi: float | None = None
    alarmed: bool = False

    def add(self, x: float, baseline_n: int, window_n: int) -> float | None:
        """Add one value; the PSI once the window is full, else None."""
        if self.edges is None:
            self.baseline.append(x)
            if len(self.baseline) >= baseline_n:
                self._freeze()
            return None
        assert self.counts is not None and self.expected is not None
        scaled = math.log1p(max(x, 0.0)) if self.log_scale else x
        b = bisect.bisect_right(self.edges, scaled)  # = np.searchsorted(side="right")
        self.window.append((b, x))
        self.counts[b] += 1
        if len(self.window) > window_n:
            old, _ = self.window.popleft()
            self.counts[old] -= 1
        if len(self.window) < window_n:
            return None
        self.psi = psi(self.expected, self.counts)
        return self.psi

    def _scale(self, x: float | np.ndarray) -> float | np.ndarray:
        return np.log1p(np.maximum(x, 0.0)) if self.log_scale else x

    def _freeze(self) -> None:
        base = np.asarray(self._scale(np.asarray(self.baseline, dtype=np.float64)))
        edges = np.array([0.5]) if self.binary else _edges(base, self.resolution)
        self.edges = [float(e) for e in edges]
        self.expected = [float(c) for c in np.bincount(
            np.searchsorted(edges, base, side="right"), minlength=len(edges) + 1)]
        self.counts = [0] * (len(edges) + 1)

    def baseline_mean(self) -> float:
        return float(np.mean(self.baseline)) if self.baseline else float("nan")

    def window_mean(self) -> float:
        return float(np.mean([x for _, x in self.window])) if self.window else float("nan")


class DriftMonitor:
    """Rolling input/output statistics of one station against its start-up baseline."""

    def __init__(self, cfg: DriftConfig, stride: int = 4) -> None:
        self.cfg = cfg
        self.stride = stride
        self._features = self._new_features()
        self._frames = self._skipped_inputs = self._skipped_outputs = self._reports = 0

    @staticmethod
    def _new_features() -> dict[str, _Feature]:
        feats = {name: _Feature(False, *spec) for name, spec in _BINNING.items()}
        feats["defect"] = _Feature(True)
        return {name: feats[name] for name in INPUT_FEATURES + OUTPUT_FEATURES}

    def rebaseline(self) -> None:
        """Forget the baseline (after an intended change: new product, new lighting)."""
        self._features = self._new_features()

    def observe(self, frame_pixels: np.ndarray | None, insp: Inspection) -> DriftReport | None:
        if not self.cfg.enabled:
            return None
        self._frames += 1
        crossed = [name for name, value in self._values(frame_pixels, insp).items()
                   if self._update(name, value)]
        if not crossed:
            return None
        self._reports += 1
        return self._report(insp, tuple(crossed))

    def stats(self) -> dict[str, float]:
        out: dict[str, float] = {
            "frames": float(self._frames), "reports": float(self._reports),
            "skipped_inputs": float(self._skipped_inputs),
            "skipped_outputs": float(self._skipped_outputs),
            "drifting": float(sum(f.alarmed for f in self._features.values())),
        }
        for name, f in self._features.items():
            out[f"psi_{name}"] = f.psi if f.psi is not None else float("nan")
            out[f"baseline_mean_{name}"] = f.baseline_mean()
            out[f"window_mean_{name}"] = f.window_mean()
        return out

    def _values(self, pixels: np.ndarray | None, insp: Inspection) -> dict[str, float]:
        values: dict[str, float] = {}
        if pixels is None or pixels.size == 0:
            self._skipped_inputs += 1
        else:
            values.update(image_features(pixels, self.stride))
        if insp.error is not None:
            self._skipped_outputs += 1
        else:
            values.update(output_features(insp))
        return values

    def _update(self, name: str, value: float) -> bool:
        """Feed one value; True when this feature just crossed the threshold."""
        f = self._features[name]
        p = f.add(value, self.cfg.baseline_frames, self.cfg.window_frames)
        if p is None:
            return False
        threshold = self.cfg.psi_threshold
        if not f.alarmed and p >= threshold:
            f.alarmed = True
            log.warning("drift: %s PSI %.3f >= %.3f", name, p, threshold)
            return True
        if f.alarmed and p < threshold * REARM_FRACTION:
            f.alarmed = False
            log.info("drift: %s back to PSI %.3f", name, p)
        return False

    def _report(self, insp: Inspection, crossed: tuple[str, ...]) -> DriftReport:
        feats = self._features
        return DriftReport(
            camera_id=insp.camera_id, frame_seq=insp.frame_seq, wall_time=insp.wall_time,
            features=crossed,
            psi={n: round(f.psi, 4) for n, f in feats.items() if f.psi is not None},
            baseline_mean={n: f.baseline_mean() for n, f in feats.items() if f.baseline},
            window_mean={n: f.window_mean() for n, f in feats.items() if f.window},
            threshold=self.cfg.psi_threshold, baseline_frames=self.cfg.baseline_frames,
            window_frames=self.cfg.window_frames)
