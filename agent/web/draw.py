"""Draw an inspection for the live view: findings' boxes and labels, the station's ROI."""

from __future__ import annotations

import cv2
import numpy as np

from agent.types import Finding, Result, Verdict

ROI = (255, 200, 0)  # BGR: cyan-ish
HIT = (40, 40, 230)  # a finding the verdict acted on (NG class)
SEEN = (0, 200, 255)  # a finding below its rule's threshold


def banner(v: Verdict | None) -> str:
    """OK / NG / UNKNOWN / LATE (a verdict past the station's latency budget)."""
    if v is None:
        return "-"
    if v.budget_exceeded:
        return "LATE"
    return v.result.value if isinstance(v.result, Result) else str(v.result)


def annotate(pixels: np.ndarray, findings: tuple[Finding, ...], thresholds: dict[str, float],
             rois: list[tuple[float, float, float, float]]) -> np.ndarray:
    """A copy of `pixels` with the rules' ROIs, every boxed finding and the top 3 whole-frame
    ones;
    red where a rule's min_score is reached (`thresholds`: class -> min_score)."""
    img = pixels.copy()
    h, w = img.shape[:2]
    thick = max(1, round(min(h, w) / 240))
    scale = max(0.4, min(h, w) / 600)
    for roi in rois:
        x1, y1, x2, y2 = (int(roi[0] * w), int(roi[1] * h), int(roi[2] * w), int(roi[3] * h))
        cv2.rectangle(img, (x1, y1), (x2, y2), ROI, thick, cv2.LINE_4)
    y_text = int(18 * scale / 0.4)
    boxed = [f for f in findings if f.box is not None]
    whole = sorted((f for f in findings if f.box is None), key=lambda f: -f.score)[:3]
    for f in [*whole, *boxed]:
        color = HIT if f.score >= thresholds.get(f.label, 2.0) else SEEN
        text = f"{f.label} {f.score:.2f}"
        if f.box is None:
            _label(img, text, (4, y_text), color, scale, thick)
            y_text += int(16 * scale / 0.4)
            continue
        x1, y1, x2, y2 = (int(round(c)) for c in f.box)
        cv2.rectangle(img, (x1, y1), (x2, y2), color, thick + 1)
        _label(img, text, (x1, max(y1 - 4, 12)), color, scale, thick)
    return img


def _label(img: np.ndarray, text: str, org: tuple[int, int], color: tuple[int, int, int],
           scale: float, thick: int) -> None:
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
    x, y = org
    cv2.rectangle(img, (x - 1, y - th - 3), (x + tw + 2, y + base - 1), (20, 20, 20), -1)
    cv2.putText(img, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, scale, color, thick, cv2.LINE_AA)
