"""Synthetic conveyor: metal parts ride a textured belt past the camera, some with defects.

Everything is a pure function of the seed (and the schedule), so tests and the demo know
the ground truth of every part and every frame. No threads, no I/O.

Timeline: each part is fully in view, defect visible, for `frames_per_part` consecutive
frames while it moves left to right with the belt; `gap_frames` frames of empty belt
follow each part. Randomness is split into independent streams keyed by (seed, purpose,
index), so a part looks the same whether or not it has a defect, and only the defect's
pixels differ.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from agent.capture.synthetic_defects import (
    belt_texture,
    draw_defect,
    finish,
    metal_texture,
    rounded_rect_mask,
)

DEFECT_CLASSES: tuple[str, ...] = ("scratch", "spot", "crack", "dent")
LABELS: tuple[str, ...] = ("ok",) + DEFECT_CLASSES  # model output order

_STREAM_SPEC, _STREAM_LOOK, _STREAM_DEFECT, _STREAM_FRAME, _STREAM_BELT = range(5)
_AUGMENT_KEYS = frozenset({"lighting_jitter", "blur_max", "noise_std"})
Box = tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive), in frame pixels


@dataclass(frozen=True)
class PartSpec:
    part_id: str
    defect: str | None  # None = good part


@dataclass(frozen=True)
class SceneFrame:
    image: np.ndarray  # HxWx3 BGR uint8
    part_id: str | None  # None while only the belt is in view
    label: str  # in LABELS: "ok" for empty belt or a good part, else the visible defect
    defect_box: Box | None = None  # where the defect is, when one is visible


@dataclass(frozen=True)
class _Sprite:
    """A rendered part: colour, alpha and defect mask, all the same size."""

    color: np.ndarray  # hxwx3 float32
    alpha: np.ndarray  # hxw float32
    defect: np.ndarray  # hxw float32 (zeros for a good part)


def _scale(width: int, height: int) -> float:
    """Feature sizes are designed for 320x240 frames; other sizes scale them."""
    return min(width / 320, height / 240)


def _rng(seed: int, stream: int, index: int) -> np.random.Generator:
    return np.random.default_rng([seed % 2**64, stream, index])


def _render_part(
    look: np.random.Generator,
    defect_rng: np.random.Generator,
    defect: str | None,
    width: int,
    height: int,
) -> _Sprite:
    """A brushed-metal plate (size relative to the frame), slightly rotated, maybe defective."""
    pw = int(look.uniform(0.36, 0.48) * width)
    ph = int(look.uniform(0.45, 0.62) * height)
    scale = _scale(width, height)
    color = metal_texture(look, ph, pw, scale)
    alpha = rounded_rect_mask(ph, pw, max(1, int(look.integers(3, 16) * scale)))
    angle = float(look.uniform(-10.0, 10.0))
    defect_mask = np.zeros((ph, pw), dtype=np.float32)
    if defect is not None:
        margin = max(int(8 * scale), min(pw, ph) // 8)
        defect_mask = draw_defect(color, defect, defect_rng, margin=margin, scale=scale)
    side = int(math.ceil(math.hypot(pw, ph))) + 2
    rot = cv2.getRotationMatrix2D((pw / 2, ph / 2), angle, 1.0)
    rot[:, 2] += np.array([(side - pw) / 2, (side - ph) / 2])

    def warp(img: np.ndarray) -> np.ndarray:
        return cv2.warpAffine(img, rot, (side, side), flags=cv2.INTER_LINEAR)

    alpha_w = warp(alpha)
    ys, xs = np.nonzero(alpha_w > 0.01)
    crop = (slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1))
    return _Sprite(warp(color)[crop], alpha_w[crop], warp(defect_mask)[crop])


def _composite(
    background: np.ndarray, sprite: _Sprite, x: int, y: int, scale: float = 1.0
) -> Box | None:
    """Paste `sprite` (with a soft shadow) into `background` in place at (x, y)."""
    sh, sw = sprite.alpha.shape
    shadow = cv2.GaussianBlur(sprite.alpha, (0, 0), 3.0 * scale) * 0.55
    offset = int(round(4 * scale))
    sy = min(y + offset, background.shape[0] - sh)
    sx = min(x + offset, background.shape[1] - sw)
    region = background[sy : sy + sh, sx : sx + sw]
    region *= 1.0 - shadow[:, :, None]
    region = background[y : y + sh, x : x + sw]
    a = sprite.alpha[:, :, None]
    region *= 1.0 - a
    region += a * sprite.color
    ys, xs = np.nonzero(sprite.defect > 0.05)
    if len(ys) == 0:
        return None
    return (x + int(xs.min()), y + int(ys.min()), x + int(xs.max()) + 1, y + int(ys.max()) + 1)


def _check_augment(augment: dict[str, Any]) -> dict[str, float]:
    unknown = set(augment) - _AUGMENT_KEYS
    if unknown:
        raise TypeError(f"unknown augment parameter(s): {sorted(unknown)}")
    return {k: float(v) for k, v in augment.items()}


def render_sample(
    rng: np.random.Generator, label: str, width: int, height: int, **augment: float
) -> np.ndarray:
    """One training image (HxWx3 BGR uint8) whose ground truth is `label`.

    "ok" is an empty belt (1 in 4) or a good part; a defect class is a part showing it.
    `augment`: lighting_jitter, blur_max, noise_std (as in ConveyorScene).
    """
    if label not in LABELS:
        raise ValueError(f"label {label!r} not in {LABELS}")
    params = _check_augment(augment)
    period_rng = np.random.default_rng(rng.integers(2**63))
    background = belt_texture(period_rng, height, width, _scale(width, height))
    defect = None if label == "ok" else label
    if defect is not None or rng.random() >= 0.25:
        sprite = _render_part(
            rng, np.random.default_rng(rng.integers(2**63)), defect, width, height
        )
        sh, sw = sprite.alpha.shape
        x = int(rng.integers(2, max(3, width - sw - 6)))
        y = int(rng.integers(2, max(3, height - sh - 6)))
        _composite(background, sprite, x, y, _scale(width, height))
    return finish(background, rng, **params)


class ConveyorScene:
    """Deterministic, infinite stream of conveyor frames with known ground truth."""

    def __init__(
        self,
        seed: int,
        width: int = 320,
        height: int = 240,
        frames_per_part: int = 8,
        defect_rate: float = 0.3,
        schedule: Sequence[str | None] | None = None,
        defect_classes: Sequence[str] = DEFECT_CLASSES,
        lighting_jitter: float = 0.0,
        blur_max: float = 0.0,
        noise_std: float = 0.0,
        gap_frames: int = 3,
    ) -> None:
        if width < 64 or height < 64:
            raise ValueError("width and height must be at least 64 pixels")
        if frames_per_part < 1 or gap_frames < 0:
            raise ValueError("frames_per_part must be >= 1 and gap_frames >= 0")
        if not 0.0 <= defect_rate <= 1.0:
            raise ValueError("defect_rate must be within [0, 1]")
        for name in list(defect_classes) + [d for d in schedule or () if d is not None]:
            if name not in DEFECT_CLASSES:
                raise ValueError(f"unknown defect class {name!r}; known: {DEFECT_CLASSES}")
        if not defect_classes and schedule is None and defect_rate > 0:
            raise ValueError("defect_classes is empty but defect_rate > 0")
        if schedule is not None and len(schedule) == 0:
            raise ValueError("schedule must not be empty")
        self.seed = seed
        self.width, self.height = width, height
        self.frames_per_part, self.gap_frames = frames_per_part, gap_frames
        self.defect_rate = defect_rate
        self.schedule = None if schedule is None else tuple(schedule)
        self.defect_classes = tuple(defect_classes)
        self.augment = {
            "lighting_jitter": lighting_jitter,
            "blur_max": blur_max,
            "noise_std": noise_std,
        }
        belt_rng = _rng(seed, _STREAM_BELT, 0)
        self._belt = belt_texture(belt_rng, height, 4 * width, _scale(width, height))
        self._belt_pos = 0.0
        self._frame_index = 0
        self._cached: tuple[int, _Sprite, int] | None = None  # part index, sprite, y

    def part_spec(self, index: int) -> PartSpec:
        """The `index`-th part (0-based) of this scene."""
        if self.schedule is not None:
            defect = self.schedule[index % len(self.schedule)]
        else:
            rng = _rng(self.seed, _STREAM_SPEC, index)
            is_bad = rng.random() < self.defect_rate
            pick = int(rng.integers(max(1, len(self.defect_classes))))
            defect = self.defect_classes[pick] if is_bad else None
        return PartSpec(part_id=f"part-{index + 1:06d}", defect=defect)

    def parts(self) -> Iterator[PartSpec]:
        """The parts in the order they pass the camera, from the first one (infinite)."""
        index = 0
        while True:
            yield self.part_spec(index)
            index += 1

    def _part(self, index: int) -> tuple[_Sprite, int]:
        if self._cached is None or self._cached[0] != index:
            spec = self.part_spec(index)
            look = _rng(self.seed, _STREAM_LOOK, index)
            sprite = _render_part(
                look, _rng(self.seed, _STREAM_DEFECT, index), spec.defect, self.width, self.height
            )
            y = int(look.integers(2, max(3, self.height - sprite.alpha.shape[0] - 6)))
            self._cached = (index, sprite, y)
        return self._cached[1], self._cached[2]

    def next_frame(self) -> SceneFrame:
        t = self._frame_index
        self._frame_index += 1
        cycle = self.frames_per_part + self.gap_frames
        index, k = divmod(t, cycle)
        sprite, y = self._part(index)
        sw = sprite.alpha.shape[1]
        x_first, x_last = 4, self.width - sw - 8
        step = (x_last - x_first) / max(1, self.frames_per_part - 1)
        self._belt_pos += step if t > 0 else 0.0
        cols = (np.arange(self.width) - int(round(self._belt_pos))) % self._belt.shape[1]
        background = self._belt[:, cols].copy()
        spec = self.part_spec(index)
        box = None
        label, part_id = "ok", None
        if k < self.frames_per_part:
            x = x_first + int(round(k * step)) if self.frames_per_part > 1 else x_last // 2
            box = _composite(background, sprite, x, y, _scale(self.width, self.height))
            label, part_id = spec.defect or "ok", spec.part_id
        image = finish(background, _rng(self.seed, _STREAM_FRAME, t), **self.augment)
        return SceneFrame(image=image, part_id=part_id, label=label, defect_box=box)
