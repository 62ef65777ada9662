"""Frozen-stream detection: the same picture over and over looks like "no defects".

A frozen camera does not always repeat identical bytes: a stuck encoder or a looped
recording often has a clock or a frame counter burned into a corner. So the picture
is compared with a reference frame on a coarse grid: every n-th row and column (at
most 128 x 128 samples, whatever the resolution), split into at most 32 x 32 cells.
A cell has changed when any of its samples differs; the picture is "the same" while no
more than `max_changed` of the cells (outside the `ignore` rectangles) have changed
since the reference. Sensor noise changes nearly every cell of a live picture; a
burned-in clock changes a few. A changed picture becomes the new reference.

Cost: one gather of ~50 k bytes (the sampled rows, then the sampled columns by index:
numpy copies a strided 3-byte-wide view several times slower), one compare, and
the changed samples per cell from an integral image (`cv2.integral`; numpy's `reduceat`
over rows took 4x as long). About 0.05 ms at 320x240 (`bench/bench_freeze.py`).
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

GRID = 32  # cells per side, at most
SAMPLES = 128  # about this many sampled rows and columns per frame
Rect = tuple[int, int, int, int]  # x, y, width, height in source pixels


class _Layout:
    """Sampling strides, cell edges and ignored cells for one frame shape."""

    def __init__(self, shape: tuple[int, ...], ignore: Sequence[Rect]) -> None:
        h, w = shape[0], shape[1]
        self.shape = shape
        channels = shape[2] if len(shape) == 3 else 1
        self.rs, self.cs = -(-h // SAMPLES), -(-w // SAMPLES)
        sh, sw = -(-h // self.rs), -(-w // self.cs)  # sampled rows / columns
        gh, gw = min(GRID, sh), min(GRID, sw)
        self.row_edges = (np.arange(gh) * sh) // gh
        self.col_edges = (np.arange(gw) * sw) // gw
        self.flat_cols = sw * channels  # a sample row as one run of values
        self.flat_edges = self.col_edges * channels
        # cell corners in the integral image of the sampled (rows, flat values)
        self.row_corners = np.append(self.row_edges, sh)
        self.col_corners = np.append(self.flat_edges, self.flat_cols)
        # the sampled values of one row, as indices into that row's flat run of values
        self.flat_index = (np.arange(0, w, self.cs)[:, None] * channels
                           + np.arange(channels)[None, :]).ravel()
        self.counted = np.ones((gh, gw), bool)
        for x, y, rw, rh in ignore:
            self.counted[self._cells(y, rh, self.rs, self.row_edges, sh),
                         self._cells(x, rw, self.cs, self.col_edges, sw)] = False
        self.n_counted = int(self.counted.sum())

    @staticmethod
    def _cells(start: int, size: int, stride: int, edges: np.ndarray, n: int) -> slice:
        """The cells whose sampled pixels (n of them) overlap [start, start + size)."""
        first = -(-start // stride)  # first sample at or after start
        last = min(n - 1, (start + size - 1) // stride)  # last sample before the end
        if last < first:
            return slice(0, 0)
        return slice(int(np.searchsorted(edges, first, "right")) - 1,
                     int(np.searchsorted(edges, last, "right")))


def _sample(layout: _Layout, image: np.ndarray) -> np.ndarray:
    """Every rs-th row and cs-th column, as rows of flat values: (sampled rows, flat_cols)."""
    rows = image[::layout.rs]
    if image.flags.c_contiguous:
        return rows.reshape(rows.shape[0], -1)[:, layout.flat_index]
    return np.array(rows[:, ::layout.cs]).reshape(rows.shape[0], layout.flat_cols)


class FreezeDetector:
    """`update(image, t)` returns how long (seconds) the picture has stayed the same.

    The reference survives reconnects on purpose: a camera that comes back showing the
    same picture is still frozen, and the time counts from when the picture stopped
    changing, not from the reconnect.
    """

    def __init__(self, max_changed: float = 0.05, ignore: Sequence[Rect] = ()) -> None:
        self.max_changed = max_changed
        self.ignore = tuple(ignore)
        self._layout: _Layout | None = None
        self._ref: np.ndarray | None = None
        self.since = 0.0  # when the picture last changed (the reference's t)

    def update(self, image: np.ndarray, t: float) -> float:
        layout = self._layout
        if layout is None or layout.shape != image.shape:
            layout = self._layout = _Layout(image.shape, self.ignore)
            self._ref = None
        sample = _sample(layout, image)  # a copy: the source may reuse its buffer
        if self._ref is None or self._changed(layout, sample, self._ref):
            self._ref = sample
            self.since = t
            return 0.0
        return t - self.since

    def changed_share(self, image: np.ndarray) -> float:
        """Share of counted cells that differ from the reference (for tests and tuning)."""
        layout = self._layout
        if layout is None or self._ref is None or layout.shape != image.shape:
            return 1.0
        return self._share(layout, _sample(layout, image), self._ref)

    def _changed(self, layout: _Layout, sample: np.ndarray, ref: np.ndarray) -> bool:
        if self.max_changed <= 0 and not self.ignore:
            return not np.array_equal(sample, ref)  # exact: stops at nothing, but cheapest
        return self._share(layout, sample, ref) > self.max_changed

    @staticmethod
    def _share(layout: _Layout, sample: np.ndarray, ref: np.ndarray) -> float:
        if layout.n_counted == 0:
            return 0.0
        diff = (sample != ref).view(np.uint8)
        corner = cv2.integral(diff)[layout.row_corners][:, layout.col_corners]
        changed = corner[1:, 1:] - corner[:-1, 1:] - corner[1:, :-1] + corner[:-1, :-1]
        cells = changed > 0
        return int(np.count_nonzero(cells & layout.counted)) / layout.n_counted
