"""GenICam buffer bytes -> HxWx3 BGR uint8, for the pixel formats the agent supports.

Bayer names follow GenICam (the colour of the top-left 2x2 block read row by row:
BayerRG8 = R G / G B); OpenCV's matching constants are the *RGGB-style ones.
Mono10/12/16 arrive in 16-bit little-endian containers and are scaled to 8 bits.
"""

from __future__ import annotations

import cv2
import numpy as np

from agent.capture.base import SourceError

_BAYER = {
    "BayerRG8": cv2.COLOR_BayerRGGB2BGR,
    "BayerGR8": cv2.COLOR_BayerGRBG2BGR,
    "BayerGB8": cv2.COLOR_BayerGBRG2BGR,
    "BayerBG8": cv2.COLOR_BayerBGGR2BGR,
}
_WIDE_SHIFT = {"Mono10": 2, "Mono12": 4, "Mono16": 8}
SUPPORTED = ("Mono8", *_WIDE_SHIFT, *_BAYER, "RGB8", "BGR8")


def bytes_per_pixel(fmt: str) -> int:
    if fmt in _WIDE_SHIFT:
        return 2
    if fmt in ("RGB8", "BGR8"):
        return 3
    return 1


def to_bgr(data: bytes | memoryview, fmt: str, width: int, height: int) -> np.ndarray:
    """The image in `data` (pixel format `fmt`, width x height) as BGR uint8."""
    bpp = bytes_per_pixel(fmt)
    need = width * height * bpp
    if len(data) < need:
        raise SourceError(f"{fmt} {width}x{height} needs {need} bytes, the buffer has {len(data)}")
    if fmt in _WIDE_SHIFT:
        wide = np.frombuffer(data, dtype="<u2", count=width * height).reshape(height, width)
        gray = (wide >> _WIDE_SHIFT[fmt]).astype(np.uint8)
        return cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)
    raw = np.frombuffer(data, dtype=np.uint8, count=need)
    if fmt == "Mono8":
        return cv2.cvtColor(raw.reshape(height, width), cv2.COLOR_GRAY2BGR)
    if fmt in _BAYER:
        return cv2.cvtColor(raw.reshape(height, width), _BAYER[fmt])
    if fmt == "RGB8":
        return cv2.cvtColor(raw.reshape(height, width, 3), cv2.COLOR_RGB2BGR)
    if fmt == "BGR8":
        return raw.reshape(height, width, 3).copy()
    raise SourceError(f"pixel format {fmt} is not supported (supported: {', '.join(SUPPORTED)})")
