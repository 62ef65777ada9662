"""Pixels -> JPEG bytes: privacy mask, full frame, crops per finding, annotated copy.

The frame's own array is never written to: the mask and the annotation are drawn on
copies. Runs on the evidence writer thread (cv2 releases the GIL while it encodes).
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from agent.config.evidence import MaskRect

Box = tuple[float, float, float, float]
_COLOURS = [(0, 0, 255), (0, 200, 255), (255, 0, 255), (255, 128, 0), (0, 255, 0)]


def encode_jpeg(image: np.ndarray, quality: int) -> bytes:
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError(f"JPEG encoding failed for an image of shape {image.shape}")
    return buf.tobytes()


def masked(image: np.ndarray, rects: Sequence[MaskRect]) -> np.ndarray:
    """A copy with every rectangle blacked out; the image itself when there is no mask."""
    if not rects:
        return image
    out = image.copy()
    h, w = out.shape[:2]
    for r in rects:
        out[int(r.y1 * h):int(np.ceil(r.y2 * h)), int(r.x1 * w):int(np.ceil(r.x2 * w))] = 0
    return out


def clamp_box(box: Box, shape: tuple[int, ...]) -> tuple[int, int, int, int] | None:
    """Integer pixel box inside the image, or None when nothing of it is inside."""
    h, w = shape[:2]
    x1, y1 = max(0, int(np.floor(box[0]))), max(0, int(np.floor(box[1])))
    x2, y2 = min(w, int(np.ceil(box[2]))), min(h, int(np.ceil(box[3])))
    if x2 <= x1 or y2 <= y1:
        return None
    return x1, y1, x2, y2


def crop(image: np.ndarray, box: Box) -> np.ndarray | None:
    b = clamp_box(box, image.shape)
    return None if b is None else image[b[1]:b[3], b[0]:b[2]]


def annotated(image: np.ndarray, findings: Sequence[tuple[str, float, Box | None]]) -> np.ndarray:
    """A copy with each finding's box (or, for whole-frame results, its label) drawn."""
    out = image.copy()
    y_text = 16
    for i, (label, score, box) in enumerate(findings):
        colour = _COLOURS[i % len(_COLOURS)]
        text = f"{label} {score:.2f}"
        b = clamp_box(box, out.shape) if box is not None else None
        if b is not None:
            cv2.rectangle(out, (b[0], b[1]), (b[2] - 1, b[3] - 1), colour, 2)
            cv2.putText(out, text, (b[0], max(12, b[1] - 4)), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                        colour, 1, cv2.LINE_AA)
        else:
            cv2.putText(out, text, (6, y_text), cv2.FONT_HERSHEY_SIMPLEX, 0.5, colour, 1,
                        cv2.LINE_AA)
            y_text += 18
    return out


def render(image: np.ndarray, findings: Sequence[tuple[str, float, Box | None]], quality: int,
           *, crops: bool, annotate: bool,
           mask: Sequence[MaskRect] = ()) -> tuple[dict[str, bytes], list[int | None]]:
    """(variant -> JPEG bytes, crop index of each finding or None)."""
    base = masked(image, mask)
    out = {"": encode_jpeg(base, quality)}
    crop_of: list[int | None] = []
    for _label, _score, box in findings:
        part = crop(base, box) if crops and box is not None else None
        if part is None:
            crop_of.append(None)
            continue
        n = sum(1 for c in crop_of if c is not None)
        out[f".crop{n}"] = encode_jpeg(part, quality)
        crop_of.append(n)
    if annotate and findings:
        out[".annotated"] = encode_jpeg(annotated(base, findings), quality)
    return out, crop_of
