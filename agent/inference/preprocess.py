"""Frame -> model input tensor, as pure numpy/OpenCV functions.

`Geometry` remembers how the frame was resized (and padded, for letterbox) so that
boxes found in model-input coordinates map back to frame pixels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from agent.inference.errors import FrameError
from agent.inference.manifest import InputSpec

Size = tuple[int, int]  # (height, width)
SUPPORTED_DTYPES = (np.dtype(np.float32), np.dtype(np.float16), np.dtype(np.uint8))


@dataclass(frozen=True, slots=True)
class Geometry:
    """Frame -> input mapping: x_input = x_frame * sx + pad_x (same for y)."""

    frame_h: int
    frame_w: int
    sx: float
    sy: float
    pad_x: float = 0.0
    pad_y: float = 0.0

    def boxes_to_frame(self, boxes: np.ndarray) -> np.ndarray:
        """(n, 4) x1 y1 x2 y2 in input pixels -> frame pixels, clipped to the frame."""
        out = np.asarray(boxes, dtype=np.float64).reshape(-1, 4).copy()
        out[:, [0, 2]] = np.clip((out[:, [0, 2]] - self.pad_x) / self.sx, 0, self.frame_w)
        out[:, [1, 3]] = np.clip((out[:, [1, 3]] - self.pad_y) / self.sy, 0, self.frame_h)
        return out


def check_frame(pixels: object) -> np.ndarray:
    """The frame as HxWx3 uint8 (a HxW or HxWx1 mono frame becomes 3 channels)."""
    if not isinstance(pixels, np.ndarray):
        raise FrameError(f"frame pixels are {type(pixels).__name__}, expected a numpy array")
    if pixels.dtype != np.uint8:
        raise FrameError(f"frame dtype is {pixels.dtype}, expected uint8 (shape {pixels.shape})")
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        pixels = pixels[:, :, 0]
    if pixels.ndim == 2 and pixels.size:
        return cv2.cvtColor(pixels, cv2.COLOR_GRAY2BGR)
    if pixels.ndim != 3 or pixels.shape[2] != 3 or pixels.size == 0:
        raise FrameError(f"frame shape is {pixels.shape}, expected HxWx3 (BGR) or HxW (mono)")
    return pixels


def resize(img: np.ndarray, size: Size) -> tuple[np.ndarray, Geometry]:
    """Stretch to (height, width)."""
    h, w = img.shape[:2]
    th, tw = size
    out = img if (h, w) == (th, tw) else cv2.resize(img, (tw, th), interpolation=cv2.INTER_LINEAR)
    return out, Geometry(h, w, tw / w, th / h)


def letterbox(img: np.ndarray, size: Size, pad_value: int = 114) -> tuple[np.ndarray, Geometry]:
    """Keep the aspect ratio, pad to (height, width) centred (Ultralytics' LetterBox)."""
    h, w = img.shape[:2]
    th, tw = size
    r = min(th / h, tw / w)
    nw, nh = max(1, round(w * r)), max(1, round(h * r))
    if (nh, nw) != (h, w):
        img = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_LINEAR)
    top, left = round((th - nh) / 2 - 0.1), round((tw - nw) / 2 - 0.1)
    bottom, right = th - nh - top, tw - nw - left
    value = (pad_value, pad_value, pad_value)
    out = cv2.copyMakeBorder(img, top, bottom, left, right, cv2.BORDER_CONSTANT, value=value)
    return out, Geometry(h, w, nw / w, nh / h, float(left), float(top))


def to_color(img: np.ndarray, color: str) -> np.ndarray:
    """BGR frame -> the model's channel order (HxWxC, C = 3 or 1)."""
    if color == "RGB":
        return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    if color == "GRAY":
        return cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)[:, :, None]
    return img


def normalize(img: np.ndarray, scale: float, mean: tuple[float, ...],
              std: tuple[float, ...]) -> np.ndarray:
    """((img * scale) - mean) / std as float32, folded into one multiply-add."""
    std_a = np.asarray(std, dtype=np.float32)
    gain: np.ndarray = np.float32(scale) / std_a
    offset: np.ndarray = np.asarray(mean, dtype=np.float32) / std_a
    out = img.astype(np.float32)
    out *= gain
    out -= offset
    return out


def to_layout(x: np.ndarray, layout: str) -> np.ndarray:
    """HxWxC -> a contiguous batch of one in NCHW or NHWC."""
    if layout == "NCHW":
        return np.ascontiguousarray(x.transpose(2, 0, 1)[None])
    return np.ascontiguousarray(x[None])


def blob_params(spec: InputSpec, size: Size) -> Any | None:
    """OpenCV's one-call colour swap + scale/mean/std + layout (cv2.dnn), where available.

    blob = (img - mean / scale) * (scale / std), channels in the model's order: the same
    values as to_layout(normalize(to_color(img))) at a fraction of the cost.
    """
    dnn = getattr(cv2, "dnn", None)
    layout_name = f"DNN_LAYOUT_{spec.layout}"
    layout = getattr(cv2, layout_name, getattr(dnn, layout_name, None))
    if dnn is None or layout is None or not hasattr(dnn, "blobFromImageWithParams"):
        return None
    n = spec.channels
    mean = [spec.mean[i % len(spec.mean)] / spec.scale for i in range(n)]
    gain = [spec.scale / spec.std[i % len(spec.std)] for i in range(n)]
    p = dnn.Image2BlobParams()
    p.size = (size[1], size[0])
    p.swapRB = spec.color == "RGB"
    p.ddepth = cv2.CV_32F
    p.datalayout = layout
    p.mean = tuple(mean + [0.0] * (4 - n))
    p.scalefactor = tuple(gain + [1.0] * (4 - n))
    return p


class Preprocessor:
    """One frame -> (batch-of-one tensor, geometry), following the manifest's input spec."""

    def __init__(self, spec: InputSpec, size: Size, dtype: np.dtype,
                 use_opencv_blob: bool = True) -> None:
        if np.dtype(dtype) not in SUPPORTED_DTYPES:
            raise ValueError(f"input dtype {dtype} not supported; "
                             f"supported: {', '.join(str(d) for d in SUPPORTED_DTYPES)}")
        self.spec = spec
        self.size = size
        self.dtype = np.dtype(dtype)
        self._blob = blob_params(spec, size) if use_opencv_blob else None

    def __call__(self, pixels: object) -> tuple[np.ndarray, Geometry]:
        img = check_frame(pixels)
        if self.spec.resize == "letterbox":
            img, geom = letterbox(img, self.size, self.spec.pad_value)
        else:
            img, geom = resize(img, self.size)
        if self.dtype == np.uint8:
            return to_layout(to_color(img, self.spec.color), self.spec.layout), geom
        if self._blob is not None:
            if self.spec.color == "GRAY":
                img = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
            x = cv2.dnn.blobFromImageWithParams(img, self._blob)
        else:
            x = normalize(to_color(img, self.spec.color), self.spec.scale, self.spec.mean,
                          self.spec.std)
            x = to_layout(x, self.spec.layout)
        return x.astype(self.dtype, copy=False), geom

    def blank(self) -> np.ndarray:
        """A mid-grey input of the right shape and dtype (warm-up)."""
        h, w = self.size
        img = np.full((h, w, 3), 128, dtype=np.uint8)
        return self(img)[0]
