"""Frozen-stream detection: the same picture over and over looks like "no defects"."""

from __future__ import annotations

import numpy as np

_ROW_STRIDE = 8  # compare every 8th full row: contiguous (cheap), and sensor noise changes it


class FreezeDetector:
    """`update(image, t)` returns how long (seconds) the picture has been identical."""

    def __init__(self) -> None:
        self._sample: bytes | None = None
        self._since = 0.0

    def update(self, image: np.ndarray, t: float) -> float:
        sample = image[::_ROW_STRIDE].tobytes()  # bytes ==: memcmp, stops at the first change
        if sample != self._sample:
            self._sample = sample
            self._since = t
            return 0.0
        return t - self._since

    def reset(self) -> None:
        self._sample = None
