"""Per-camera image transform: rotation, then region of interest."""

from __future__ import annotations

import cv2
import numpy as np

from agent.capture.base import SourceError

_ROTATIONS = {
    90: cv2.ROTATE_90_CLOCKWISE,
    180: cv2.ROTATE_180,
    270: cv2.ROTATE_90_COUNTERCLOCKWISE,
}


class FrameTransform:
    """Rotate clockwise by 0/90/180/270, then crop to `roi` = (x, y, width, height)."""

    def __init__(self, rotate: int = 0, roi: tuple[int, int, int, int] | None = None) -> None:
        if rotate not in (0, 90, 180, 270):
            raise ValueError(f"rotate must be 0, 90, 180 or 270, not {rotate}")
        if roi is not None and (min(roi[:2]) < 0 or min(roi[2:]) <= 0):
            raise ValueError(f"roi {list(roi)} needs x, y >= 0 and width, height > 0")
        self.rotate = rotate
        self.roi = roi

    @property
    def identity(self) -> bool:
        return self.rotate == 0 and self.roi is None

    def apply(self, image: np.ndarray) -> np.ndarray:
        if self.rotate:
            image = cv2.rotate(image, _ROTATIONS[self.rotate])
        if self.roi is not None:
            image = self._crop(image)
        return image

    def _crop(self, image: np.ndarray) -> np.ndarray:
        x, y, w, h = self.roi  # type: ignore[misc]
        height, width = image.shape[:2]
        if x + w > width or y + h > height:
            raise SourceError(
                f"roi [{x}, {y}, {w}, {h}] does not fit the {width}x{height} frame "
                f"(after rotate {self.rotate})"
            )
        return np.ascontiguousarray(image[y : y + h, x : x + w])
