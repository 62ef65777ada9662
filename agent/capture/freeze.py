"""Frozen-stream detection: the same picture over and over looks like "no defects"."""

from __future__ import annotations

import numpy as np

_STRIDE = 7  # compare a sparse grid of pixels: cheap, and live noise changes it anyway


class FreezeDetector:
    """`update(image, t)` returns how long (seconds) the picture has been identical."""

    def __init__(self) -> None:
        self._sample: np.ndarray | None = None
        self._since: float | None = None

    def update(self, image: np.ndarray, t: float) -> float:
        sample = image[::_STRIDE, ::_STRIDE]
        if self._sample is None or not np.array_equal(sample, self._sample):
            self._sample = sample.copy()
            self._since = t
            return 0.0
        assert self._since is not None
        return t - self._since

    def reset(self) -> None:
        self._sample = None
        self._since = None
