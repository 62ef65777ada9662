"""YOLO output decoding (Ultralytics v5, v8/v11, end-to-end) and class-aware NMS.

Layouts of a batch of one, nc = number of labels:
- v5:      (1, N, 5 + nc)  cx cy w h objectness class-scores; score = obj * class
- v8/v11:  (1, 4 + nc, N)  cx cy w h class-scores (no objectness)
- end2end: (1, N, 6)       x1 y1 x2 y2 score class (NMS done in the graph)
Boxes come out in model-input pixels and are mapped back to frame pixels.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from agent.inference.errors import FrameError
from agent.inference.manifest import Activation
from agent.inference.postprocess import activate
from agent.inference.preprocess import Geometry
from agent.types import Finding

MAX_NMS_CANDIDATES = 30000  # like Ultralytics: NMS input is capped by score


def xywh_to_xyxy(b: np.ndarray) -> np.ndarray:
    out = np.empty_like(b, dtype=np.float64)
    half_w, half_h = b[:, 2] / 2, b[:, 3] / 2
    out[:, 0], out[:, 1] = b[:, 0] - half_w, b[:, 1] - half_h
    out[:, 2], out[:, 3] = b[:, 0] + half_w, b[:, 1] + half_h
    return out


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Greedy NMS; indices of kept boxes, highest score first."""
    x1, y1, x2, y2 = (boxes[:, k] for k in range(4))
    areas = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    while order.size:
        i, rest = order[0], order[1:]
        keep.append(int(i))
        w = np.clip(np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]), 0, None)
        h = np.clip(np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]), 0, None)
        inter = w * h
        iou = inter / np.maximum(areas[i] + areas[rest] - inter, 1e-9)
        order = rest[iou <= iou_threshold]
    return np.asarray(keep, dtype=np.int64)


def batched_nms(boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray,
                iou_threshold: float) -> np.ndarray:
    """Class-aware NMS: boxes of different classes never suppress each other."""
    if not len(boxes):
        return np.zeros(0, dtype=np.int64)
    offset = classes.astype(np.float64)[:, None] * (float(np.abs(boxes).max()) + 1.0)
    return nms(boxes + offset, scores, iou_threshold)


def _rows(out: np.ndarray, width: int, transposed: bool) -> np.ndarray:
    """(1, N, width) or (1, width, N) -> (N, width)."""
    a = np.asarray(out)
    if a.ndim != 3 or a.shape[0] != 1:
        raise FrameError(f"detection output shape {list(a.shape)}, expected a batch of one, 3-D")
    if transposed and a.shape[1] == width:
        return a[0].T
    if a.shape[2] == width:
        return a[0]
    if not transposed and a.shape[1] == width:
        return a[0].T
    raise FrameError(f"detection output shape {list(a.shape)} does not hold {width} values "
                     f"per box (4 box + labels/score columns for the manifest's labels)")


def decode_v5(out: np.ndarray, nc: int, conf: float,
              act: Activation) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rows = _rows(out, 5 + nc, transposed=False)
    obj = activate(rows[:, 4], act)
    rows = rows[obj > conf]
    obj = obj[obj > conf]
    cls_scores = activate(rows[:, 5:], act) * obj[:, None]
    return _best_class(xywh_to_xyxy(rows[:, :4]), cls_scores, conf)


def decode_v8(out: np.ndarray, nc: int, conf: float,
              act: Activation) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rows = _rows(out, 4 + nc, transposed=True)
    return _best_class(xywh_to_xyxy(rows[:, :4]), activate(rows[:, 4:], act), conf)


def decode_end2end(out: np.ndarray, nc: int, conf: float,
                   act: Activation) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rows = _rows(out, 6, transposed=False)
    scores = activate(rows[:, 4], act)
    rows, scores = rows[scores > conf], scores[scores > conf]
    classes = rows[:, 5].astype(np.int64)
    if len(classes) and (classes.min() < 0 or classes.max() >= nc):
        raise FrameError(f"end2end output has class index {int(classes.max())}, "
                         f"but the manifest has {nc} labels")
    return np.asarray(rows[:, :4], dtype=np.float64), scores, classes


def _best_class(boxes: np.ndarray, cls_scores: np.ndarray,
                conf: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    classes = cls_scores.argmax(axis=1) if len(cls_scores) else np.zeros(0, dtype=np.int64)
    scores = cls_scores[np.arange(len(classes)), classes]
    keep = scores > conf
    return boxes[keep], scores[keep], classes[keep]


_DECODERS = {"v5": decode_v5, "v8": decode_v8, "v11": decode_v8, "end2end": decode_end2end}


class YoloDecoder:
    def __init__(self, labels: Sequence[str], layout: str, activation: Activation,
                 conf_threshold: float, nms_iou: float, max_detections: int) -> None:
        self.labels = tuple(labels)
        self.layout = layout
        self.decode = _DECODERS[layout]
        self.activation = activation
        self.conf = conf_threshold
        self.iou = nms_iou
        self.max_det = max_detections

    def check(self, outputs: Sequence[np.ndarray]) -> None:
        width = {"v5": 5 + len(self.labels), "end2end": 6}.get(self.layout, 4 + len(self.labels))
        _rows(outputs[0], width, transposed=self.layout in ("v8", "v11"))

    def __call__(self, outputs: Sequence[np.ndarray], geom: Geometry) -> tuple[Finding, ...]:
        boxes, scores, classes = self.decode(outputs[0], len(self.labels), self.conf,
                                             self.activation)
        if self.layout == "end2end":
            keep = np.argsort(-scores, kind="stable")
        else:
            top = np.argsort(-scores, kind="stable")[:MAX_NMS_CANDIDATES]
            keep = top[batched_nms(boxes[top], scores[top], classes[top], self.iou)]
        keep = keep[: self.max_det]
        frame_boxes = geom.boxes_to_frame(boxes[keep])
        return tuple(
            Finding(self.labels[int(c)], float(s), tuple(float(v) for v in b))  # type: ignore[arg-type]
            for b, s, c in zip(frame_boxes, scores[keep], classes[keep], strict=True)
        )
