"""Textures, defects and camera effects for the synthetic conveyor (pure numpy + OpenCV).

Every function takes a `numpy.random.Generator` and draws all of its randomness from it,
so a caller that seeds the generator gets the same pixels back. Images are float32 BGR in
gray levels (0..255, not yet clipped) until `finish` turns them into uint8.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import cv2
import numpy as np

FloatImage = np.ndarray  # HxWx3 float32, BGR, 0..255 (unclipped)
Mask = np.ndarray  # HxW float32, 0..1

# Sizes below are in pixels of a 320x240 frame; `scale` multiplies them for other frame sizes.


def _px(value: float, scale: float) -> int:
    return max(1, int(round(value * scale)))


def _odd(value: float, scale: float) -> int:
    return _px(value, scale) | 1


def _blurred_noise(rng: np.random.Generator, h: int, w: int, kx: int, ky: int) -> np.ndarray:
    """Unit-variance noise smoothed with a (kx x ky) box-ish Gaussian, horizontally seamless."""
    pad = kx
    noise = rng.standard_normal((h, w)).astype(np.float32)
    padded = np.pad(noise, ((0, 0), (pad, pad)), mode="wrap")
    smooth = cv2.GaussianBlur(padded, (kx | 1, ky | 1), 0, borderType=cv2.BORDER_REFLECT)
    out = smooth[:, pad : pad + w]
    return out / max(float(out.std()), 1e-6)


def belt_texture(
    rng: np.random.Generator, height: int, length: int, scale: float = 1.0
) -> FloatImage:
    """A conveyor belt strip `length` pixels long that tiles seamlessly along x.

    Dark rubber with fine grain, some mottling and transverse slat seams every `period`
    pixels (`length` is rounded up to a multiple of the period by the caller's choice of
    length; seams that do not divide it just leave one irregular gap).
    """
    base = rng.uniform(35.0, 80.0)
    tints = np.array([[0, 0, 0], [6, 10, -4], [14, 2, -6], [-6, 2, 8]], dtype=np.float32)
    tint = tints[rng.integers(len(tints))]
    grain = _blurred_noise(rng, height, length, _odd(3, scale), _odd(3, scale)) * rng.uniform(
        4.0, 9.0
    )
    mottle = _blurred_noise(rng, height, length, _odd(41, scale), _odd(41, scale)) * rng.uniform(
        3.0, 8.0
    )
    gray = base + grain + mottle
    period = _px(int(rng.integers(22, 48)), scale)
    depth = -rng.uniform(10.0, 22.0)
    seam = np.zeros(length, dtype=np.float32)
    seam_width = max(2, _px(2, scale))
    for j in range(seam_width):
        seam[j::period] = depth * (0.5 if j == seam_width - 1 else 1.0)
    gray = gray + seam[None, :]
    return gray[:, :, None] + tint[None, None, :]


def metal_texture(rng: np.random.Generator, h: int, w: int, scale: float = 1.0) -> FloatImage:
    """Brushed metal: bright base, low-contrast streaks along one axis, soft shading, bevel."""
    base = rng.uniform(125.0, 195.0)
    tint = rng.uniform(-8.0, 8.0, 3).astype(np.float32)
    if rng.random() < 0.5:
        streaks = _blurred_noise(rng, h, w, _odd(41, scale), 1)
    else:
        streaks = _blurred_noise(rng, w, h, _odd(41, scale), 1).T
    gray = base + streaks * rng.uniform(4.0, 10.0)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    gx, gy = rng.uniform(-14.0, 14.0, 2)
    gray += gx * (xx / max(w - 1, 1) - 0.5) + gy * (yy / max(h - 1, 1) - 0.5)
    edge = np.minimum(np.minimum(xx, w - 1 - xx), np.minimum(yy, h - 1 - yy))
    gray += np.where(edge < 3 * scale, -18.0, 0.0).astype(np.float32)
    return (gray[:, :, None] + tint[None, None, :]).astype(np.float32)


def rounded_rect_mask(h: int, w: int, radius: int) -> Mask:
    mask = np.zeros((h, w), dtype=np.uint8)
    r = max(1, min(radius, h // 2 - 1, w // 2 - 1))
    cv2.rectangle(mask, (r, 0), (w - 1 - r, h - 1), 255, -1)
    cv2.rectangle(mask, (0, r), (w - 1, h - 1 - r), 255, -1)
    for cx, cy in ((r, r), (w - 1 - r, r), (r, h - 1 - r), (w - 1 - r, h - 1 - r)):
        cv2.circle(mask, (cx, cy), r, 255, -1, lineType=cv2.LINE_AA)
    return mask.astype(np.float32) / 255.0


def _inner_point(rng: np.random.Generator, h: int, w: int, margin: int) -> tuple[float, float]:
    return rng.uniform(margin, w - margin), rng.uniform(margin, h - margin)


def _inside(pts: np.ndarray, h: int, w: int, margin: int) -> bool:
    x, y = pts[:, 0], pts[:, 1]
    return bool(np.all((x >= margin) & (x <= w - margin) & (y >= margin) & (y <= h - margin)))


def _polyline_mask(h: int, w: int, lines: list[tuple[np.ndarray, int]]) -> Mask:
    mask = np.zeros((h, w), dtype=np.float32)
    for pts, thickness in lines:
        ipts = np.round(pts).astype(np.int32).reshape(-1, 1, 2)
        cv2.polylines(mask, [ipts], False, 1.0, thickness, lineType=cv2.LINE_AA)
    return mask


def _scratch(img: FloatImage, rng: np.random.Generator, margin: int, scale: float) -> Mask:
    h, w = img.shape[:2]
    lines: list[tuple[np.ndarray, int]] = []
    for _ in range(1 if rng.random() < 0.7 else 2):
        for _attempt in range(100):
            x0, y0 = _inner_point(rng, h, w, margin)
            angle = rng.uniform(0.0, math.pi)
            length = rng.uniform(0.45, 0.8) * min(h, w)
            pts = np.array(
                [[x0, y0], [x0 + length * math.cos(angle), y0 + length * math.sin(angle)]]
            )
            if _inside(pts, h, w, margin):
                lines.append((pts, _px(int(rng.integers(3, 5)), scale)))
                break
    groove = _polyline_mask(h, w, lines)
    shine = np.roll(groove, _px(2, scale), axis=0) * (1.0 - groove)
    img *= 1.0 - rng.uniform(0.55, 0.75) * groove[:, :, None]
    img += rng.uniform(35.0, 60.0) * shine[:, :, None]
    return np.maximum(groove, shine)


def _crack(img: FloatImage, rng: np.random.Generator, margin: int, scale: float) -> Mask:
    h, w = img.shape[:2]
    lines: list[tuple[np.ndarray, int]] = []
    for _attempt in range(200):
        x0, y0 = _inner_point(rng, h, w, margin)
        heading = rng.uniform(0.0, 2 * math.pi)
        pts = [(x0, y0)]
        sign = 1.0
        for _ in range(int(rng.integers(7, 11))):
            sign = -sign
            heading += sign * rng.uniform(0.55, 1.1)
            step = rng.uniform(6.0, 11.0) * scale
            pts.append(
                (pts[-1][0] + step * math.cos(heading), pts[-1][1] + step * math.sin(heading))
            )
        main = np.array(pts)
        if _inside(main, h, w, margin):
            lines.append((main, _px(3, scale)))
            break
    if lines:
        main = lines[0][0]
        for _ in range(int(rng.integers(1, 3))):
            start = main[int(rng.integers(2, len(main) - 1))]
            heading = rng.uniform(0.0, 2 * math.pi)
            branch = [start]
            for _ in range(3):
                heading += rng.uniform(-0.8, 0.8)
                branch.append(
                    branch[-1] + 7.0 * scale * np.array([math.cos(heading), math.sin(heading)])
                )
            arr = np.clip(np.array(branch), margin, [w - margin, h - margin])
            lines.append((arr, _px(3, scale)))
    mask = _polyline_mask(h, w, lines)
    img *= 1.0 - rng.uniform(0.75, 0.9) * mask[:, :, None]
    return mask


def _spot(img: FloatImage, rng: np.random.Generator, margin: int, scale: float) -> Mask:
    h, w = img.shape[:2]
    r = float(rng.uniform(8.0, 13.0)) * scale
    cx, cy = _inner_point(rng, h, w, margin + int(r))
    mask: np.ndarray = np.zeros((h, w), dtype=np.float32)
    axes = (int(r), int(r * rng.uniform(0.65, 1.0)))
    cv2.ellipse(
        mask,
        (int(cx), int(cy)),
        axes,
        float(rng.uniform(0, 180)),
        0,
        360,
        1.0,
        -1,
        lineType=cv2.LINE_AA,
    )
    k = _odd(5, scale)
    mask = cv2.GaussianBlur(mask, (k, k), 0)
    if rng.random() < 0.5:  # oil / burn mark: dark
        color = np.array([25.0, 25.0, 30.0], dtype=np.float32) * rng.uniform(0.6, 1.4)
    else:  # rust: brown-orange
        color = np.array([30.0, 70.0, 140.0], dtype=np.float32) * rng.uniform(0.8, 1.15)
    alpha = rng.uniform(0.8, 0.95) * mask[:, :, None]
    img *= 1.0 - alpha
    img += alpha * color[None, None, :]
    return mask


def _dent(img: FloatImage, rng: np.random.Generator, margin: int, scale: float) -> Mask:
    h, w = img.shape[:2]
    radius = float(rng.uniform(13.0, 20.0)) * scale
    cx, cy = _inner_point(rng, h, w, margin + int(radius))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    dx, dy = (xx - cx) / radius, (yy - cy) / radius
    r2 = dx * dx + dy * dy
    inside = r2 < 1.0
    # depth z = (1 - r^2)^2, slope dz/dx = -4 x (1 - r^2); shade by the slope along the light.
    light = rng.uniform(0.0, 2 * math.pi)
    slope = -4.0 * (1.0 - r2) * (dx * math.cos(light) + dy * math.sin(light))
    shade = np.where(inside, slope, 0.0).astype(np.float32) / 1.54  # max |slope| ~ 1.54
    img += rng.uniform(55.0, 80.0) * shade[:, :, None]
    return np.where(inside, 1.0, 0.0).astype(np.float32)


DEFECT_PAINTERS: dict[str, Callable[[FloatImage, np.random.Generator, int, float], Mask]] = {
    "scratch": _scratch,
    "spot": _spot,
    "crack": _crack,
    "dent": _dent,
}


def draw_defect(
    img: FloatImage, defect: str, rng: np.random.Generator, margin: int = 10, scale: float = 1.0
) -> Mask:
    """Paint `defect` into `img` in place, at least `margin` px inside its border.

    `scale` multiplies the defect's size (1.0 = as seen in a 320x240 frame). Returns the mask
    (HxW, 0..1) of the pixels it changed.
    """
    try:
        painter = DEFECT_PAINTERS[defect]
    except KeyError:
        raise ValueError(f"unknown defect class {defect!r}") from None
    return painter(img, rng, margin, scale)


def finish(
    img: FloatImage,
    rng: np.random.Generator,
    lighting_jitter: float = 0.0,
    blur_max: float = 0.0,
    noise_std: float = 0.0,
) -> np.ndarray:
    """Camera effects, then uint8: gain/gradient/colour cast, Gaussian blur, sensor noise.

    `lighting_jitter` is the relative gain range (0.3 = +-30 %), `blur_max` the largest
    Gaussian sigma in pixels, `noise_std` the noise standard deviation in gray levels.
    The generator is always advanced the same way, whatever the parameters.
    """
    h, w = img.shape[:2]
    gain, grad_x, grad_y = rng.uniform(-1.0, 1.0, 3)
    cast = rng.uniform(-1.0, 1.0, 3).astype(np.float32)
    sigma = float(rng.uniform(0.0, 1.0)) * blur_max
    noise_seed = int(rng.integers(2**31))
    out = img
    if lighting_jitter > 0:
        ramp_x = np.linspace(-0.5, 0.5, w, dtype=np.float32)[None, :]
        ramp_y = np.linspace(-0.5, 0.5, h, dtype=np.float32)[:, None]
        field = 1.0 + lighting_jitter * (gain + 0.6 * grad_x * ramp_x + 0.6 * grad_y * ramp_y)
        out = out * field[:, :, None] * (1.0 + 0.25 * lighting_jitter * cast)[None, None, :]
    if sigma > 0.3:
        out = cv2.GaussianBlur(out, (0, 0), sigma)
    if noise_std > 0:
        noise = np.random.default_rng(noise_seed).standard_normal(out.shape, dtype=np.float32)
        out = out + noise_std * noise
    return np.clip(out, 0, 255).astype(np.uint8)
