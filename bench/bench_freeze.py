"""Per-frame cost of the freeze check on the capture thread.

    .venv/bin/python bench/bench_freeze.py [--frames 300] [--runs 5]

`FreezeDetector.update()` (content compare on a grid, tolerant of a burned-in clock)
per frame at 640x480, 1280x720 and 1920x1080, for a live picture (sensor noise: every
frame a new picture) and a frozen one with a running clock (every frame "the same"),
next to the detector it replaced, measured in the same run: a byte compare of every
8th row, which a burned-in clock defeats. Median and p99 per frame over all runs.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agent.capture.freeze import FreezeDetector  # noqa: E402

SIZES = [(640, 480), (1280, 720), (1920, 1080)]


class RowBytes:
    """The detector before: bytes of every 8th row, equal or not."""

    def __init__(self) -> None:
        self._sample: bytes | None = None
        self._since = 0.0

    def update(self, image: np.ndarray, t: float) -> float:
        sample = image[::8].tobytes()
        if sample != self._sample:
            self._sample, self._since = sample, t
            return 0.0
        return t - self._since


def frames(w: int, h: int, n: int, kind: str) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    base = cv2.resize(rng.integers(0, 255, (h // 8, w // 8, 3), dtype=np.uint8), (w, h))
    out = []
    for i in range(n):
        img = base.copy()
        if kind == "live":
            noise = rng.integers(-2, 3, img.shape, dtype=np.int16)
            img = np.clip(img.astype(np.int16) + noise, 0, 255).astype(np.uint8)
        else:
            cv2.putText(img, f"12:00:{i / 30:06.3f}", (8, h - 12), cv2.FONT_HERSHEY_SIMPLEX,
                        h / 480, (255, 255, 255), 2)
        out.append(img)
    return out


def per_frame_ms(make: type, imgs: list[np.ndarray], runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        det = make()
        for i, img in enumerate(imgs):
            t0 = time.perf_counter()
            det.update(img, i / 30)
            out.append((time.perf_counter() - t0) * 1000)
    return out


def p99(xs: list[float]) -> float:
    return sorted(xs)[int(0.99 * (len(xs) - 1))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    print("size        picture       freeze check p50 / p99 ms   row bytes (before) p50 / p99 ms"
          "   found frozen")
    for w, h in SIZES:
        for kind in ("live", "frozen+clock"):
            imgs = frames(w, h, args.frames, kind)
            new = per_frame_ms(FreezeDetector, imgs, args.runs)
            old = per_frame_ms(RowBytes, imgs, args.runs)
            det, before = FreezeDetector(), RowBytes()
            frozen = [det.update(im, i / 30) > 0 for i, im in enumerate(imgs)][-1]
            was = [before.update(im, i / 30) > 0 for i, im in enumerate(imgs)][-1]
            print(f"{f'{w}x{h}':11} {kind:13} {statistics.median(new):8.3f} / {p99(new):6.3f}"
                  f"          {statistics.median(old):8.3f} / {p99(old):6.3f}"
                  f"            {frozen} (before: {was})")


if __name__ == "__main__":
    main()
