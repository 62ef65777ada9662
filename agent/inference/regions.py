"""Maps -> regions with boxes: anomaly models (anomalib) and segmentation models.

An anomaly model gives an image score and/or an anomaly map (1, 1, h, w). Findings:
always `Finding("anomaly", image_score)` first, then one `Finding("anomaly", peak, box)`
per connected region of the map above the threshold. When the graph has no score
output, the image score is the map's maximum.

A segmentation model gives (1, C, h, w) class scores (C = labels, label 0 is the
background) or (1, h, w) class ids; each connected region of a non-background class is
one finding with the region's mean score.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from agent.inference.errors import FrameError
from agent.inference.manifest import Activation, OutputSpec
from agent.inference.postprocess import activate
from agent.inference.preprocess import Geometry
from agent.types import Finding

Region = tuple[tuple[float, float, float, float], np.ndarray]  # box in map px, region mask


def connected_regions(mask: np.ndarray, min_px: int = 1) -> list[Region]:
    """8-connected regions of a boolean HxW mask: (x1, y1, x2, y2) exclusive, pixel mask."""
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    out: list[Region] = []
    for k in range(1, n):
        x, y, w, h, area = (int(v) for v in stats[k])
        if area >= min_px:
            out.append(((float(x), float(y), float(x + w), float(y + h)), labels == k))
    return out


def map_boxes_to_frame(boxes: list[tuple[float, float, float, float]], map_hw: tuple[int, int],
                       input_hw: tuple[int, int], geom: Geometry) -> np.ndarray:
    """Boxes in output-map pixels -> model-input pixels -> frame pixels."""
    if not boxes:
        return np.zeros((0, 4))
    b = np.asarray(boxes, dtype=np.float64)
    b[:, [0, 2]] *= input_hw[1] / map_hw[1]
    b[:, [1, 3]] *= input_hw[0] / map_hw[0]
    return geom.boxes_to_frame(b)


def _as_map(a: np.ndarray, what: str) -> np.ndarray:
    """(1, 1, h, w), (1, h, w) or (h, w) -> (h, w)."""
    m = np.asarray(a)
    while m.ndim > 2 and m.shape[0] == 1:
        m = m[0]
    if m.ndim != 2:
        raise FrameError(f"{what} has shape {list(np.shape(a))}, expected (1, 1, h, w)")
    return m


def _pick(names: Sequence[str], wanted: str | None, default: str) -> int | None:
    if wanted is not None:
        if wanted not in names:
            raise FrameError(f"output {wanted!r} named in the manifest is not in the graph "
                             f"(outputs: {list(names)})")
        return names.index(wanted)
    return names.index(default) if default in names else None


class AnomalyDecoder:
    def __init__(self, output_names: Sequence[str], spec: OutputSpec, activation: Activation,
                 input_size: tuple[int, int]) -> None:
        self.names = list(output_names)
        self.score_idx = _pick(self.names, spec.score_output, "pred_score")
        self.map_idx = _pick(self.names, spec.map_output, "anomaly_map")
        self.threshold = spec.anomaly_threshold
        self.map_threshold = spec.anomaly_threshold if spec.map_threshold is None else spec.map_threshold
        self.min_px = spec.min_region_px
        self.activation = activation
        self.input_size = input_size

    def check(self, outputs: Sequence[np.ndarray]) -> None:
        """Resolve unnamed outputs by shape: one value = score, a 2-D map = anomaly map."""
        sizes = [np.asarray(o).size for o in outputs]
        if self.score_idx is None:
            self.score_idx = next((i for i, s in enumerate(sizes) if s == 1), None)
        if self.map_idx is None:
            maps = [i for i, o in enumerate(outputs) if np.asarray(o).ndim >= 2 and sizes[i] > 1]
            self.map_idx = max(maps, key=lambda i: sizes[i]) if maps else None
        if self.score_idx is None and self.map_idx is None:
            raise FrameError(f"no anomaly score (one value) or anomaly map (1, 1, h, w) among "
                             f"outputs {list(self.names)} shaped {[list(np.shape(o)) for o in outputs]}")
        if self.map_idx is not None:
            _as_map(outputs[self.map_idx], f"output {self.names[self.map_idx]!r}")
        if self.score_idx is not None and sizes[self.score_idx] != 1:
            raise FrameError(f"anomaly score output {self.names[self.score_idx]!r} holds "
                             f"{sizes[self.score_idx]} values, expected 1")

    def __call__(self, outputs: Sequence[np.ndarray], geom: Geometry) -> tuple[Finding, ...]:
        amap = None
        if self.map_idx is not None:
            amap = activate(_as_map(outputs[self.map_idx], "anomaly map"), self.activation)
        if self.score_idx is not None:
            score = float(activate(np.asarray(outputs[self.score_idx]).reshape(-1)[:1],
                                   self.activation)[0])
        else:
            assert amap is not None
            score = float(amap.max())
        findings = [Finding("anomaly", score)]
        if amap is not None:
            findings += self._regions(amap, geom)
        return tuple(findings)

    def _regions(self, amap: np.ndarray, geom: Geometry) -> list[Finding]:
        regions = connected_regions(amap > self.map_threshold, self.min_px)
        boxes = map_boxes_to_frame([r[0] for r in regions], amap.shape, self.input_size, geom)
        found = [Finding("anomaly", float(amap[m].max()), tuple(float(v) for v in b))  # type: ignore[arg-type]
                 for (_, m), b in zip(regions, boxes, strict=True)]
        return sorted(found, key=lambda f: -f.score)


class SegmentationDecoder:
    def __init__(self, labels: Sequence[str], activation: Activation, min_px: int,
                 input_size: tuple[int, int]) -> None:
        self.labels = tuple(labels)
        self.activation = activation
        self.min_px = min_px
        self.input_size = input_size

    def _maps(self, out: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(class-id map, score map) of a batch of one."""
        a = np.asarray(out)
        if a.ndim == 3 and a.shape[0] == 1 and a.dtype.kind in "iu":
            return a[0].astype(np.int64), np.ones(a.shape[1:])
        if a.ndim != 4 or a.shape[0] != 1 or a.shape[1] != len(self.labels):
            raise FrameError(f"segmentation output shape {list(a.shape)}, expected "
                             f"(1, {len(self.labels)}, h, w) for {len(self.labels)} labels "
                             f"or (1, h, w) class ids")
        probs = activate(a[0], self.activation, axis=0)
        ids = probs.argmax(axis=0)
        return ids, np.take_along_axis(probs, ids[None], axis=0)[0]

    def check(self, outputs: Sequence[np.ndarray]) -> None:
        self._maps(outputs[0])

    def __call__(self, outputs: Sequence[np.ndarray], geom: Geometry) -> tuple[Finding, ...]:
        ids, score = self._maps(outputs[0])
        if ids.size and (ids.min() < 0 or ids.max() >= len(self.labels)):
            raise FrameError(f"segmentation class id {int(ids.max())} outside the "
                             f"{len(self.labels)} labels")
        found: list[Finding] = []
        for c in range(1, len(self.labels)):
            regions = connected_regions(ids == c, self.min_px)
            boxes = map_boxes_to_frame([r[0] for r in regions], ids.shape, self.input_size, geom)
            found += [Finding(self.labels[c], float(score[m].mean()), tuple(float(v) for v in b))  # type: ignore[arg-type]
                      for (_, m), b in zip(regions, boxes, strict=True)]
        return tuple(sorted(found, key=lambda f: -f.score))
