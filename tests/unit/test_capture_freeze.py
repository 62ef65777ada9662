"""Freeze detection on the picture's content: a burned-in clock does not hide a frozen
camera, sensor noise and a moving belt are never "frozen", ignore rectangles work."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from agent.capture.freeze import FreezeDetector
from agent.capture.sources.synthetic_source import SyntheticCameraConfig
from agent.capture.synthetic_scene import ConveyorScene
from agent.configfile import ConfigError, parse_config
from tests.unit.test_config import BASE


def scene(width: int = 640, height: int = 480) -> ConveyorScene:
    return ConveyorScene(seed=5, width=width, height=height)


def with_clock(image: np.ndarray, t: float, scale: float = 1.0, text: str | None = None
               ) -> np.ndarray:
    """The frozen picture with a time stamp burned into its bottom-left corner."""
    out = image.copy()
    h = out.shape[0]
    cv2.putText(out, text or f"2026-11-29 12:00:{t:06.3f}", (5, h - 10),
                cv2.FONT_HERSHEY_SIMPLEX, scale * h / 480, (255, 255, 255), 2)
    return out


@pytest.mark.parametrize("size", [(320, 240), (640, 480), (1920, 1080)])
def test_a_frozen_picture_with_a_running_clock_is_frozen(size: tuple[int, int]) -> None:
    base = scene(*size).next_frame().image
    f = FreezeDetector()
    ages = [f.update(with_clock(base, i * 0.04), i * 0.04) for i in range(100)]
    assert ages[0] == 0.0 and ages[-1] == pytest.approx(99 * 0.04)
    assert ages == sorted(ages)  # never restarted by the clock


def test_noise_and_a_moving_belt_are_never_frozen() -> None:
    sc, rng = scene(), np.random.default_rng(1)
    f = FreezeDetector()
    still = sc.next_frame().image
    for i in range(30):  # a still scene seen by a real sensor: noise of 1 grey level
        noise = rng.normal(0, 1.0, still.shape).round().astype(np.int16)
        noisy = np.clip(still.astype(np.int16) + noise, 0, 255).astype(np.uint8)
        assert f.update(noisy, i * 0.04) == 0.0
    g = FreezeDetector()
    assert all(g.update(sc.next_frame().image, i * 0.04) == 0.0 for i in range(30))


def test_a_large_changing_overlay_needs_its_ignore_rectangle() -> None:
    base = scene().next_frame().image  # 640x480; a 80-pixel info band at the bottom
    rng = np.random.default_rng(2)
    frames = []
    for _ in range(10):
        fr = base.copy()
        fr[400:] = rng.integers(0, 255, fr[400:].shape, dtype=np.uint8)
        frames.append(fr)
    plain = FreezeDetector()
    assert plain.update(frames[0], 0.0) == 0.0
    assert plain.changed_share(frames[1]) > 0.05
    assert all(plain.update(fr, i) == 0.0 for i, fr in enumerate(frames[1:], 1))
    ignoring = FreezeDetector(ignore=[(0, 400, 640, 80)])
    assert [ignoring.update(fr, i) for i, fr in enumerate(frames)] == list(range(10))


def test_a_change_outside_the_tolerance_is_a_new_picture() -> None:
    base = scene().next_frame().image
    f = FreezeDetector(max_changed=0.05)
    f.update(base, 0.0)
    moved = base.copy()
    moved[100:300, 100:400] = 255 - moved[100:300, 100:400]  # a part came into view
    assert f.update(base, 1.0) == 1.0
    assert f.update(moved, 2.0) == 0.0 and f.update(moved, 3.0) == 1.0


def test_ignore_rectangles_outside_the_frame_and_grey_frames() -> None:
    f = FreezeDetector(ignore=[(5000, 5000, 10, 10), (0, 0, 1, 1)])
    grey = np.zeros((70, 90), np.uint8)
    assert f.update(grey, 0.0) == 0.0 and f.update(grey.copy(), 2.0) == 2.0
    assert f.update(np.zeros((90, 70), np.uint8), 3.0) == 0.0  # a new size: a new picture


def test_freeze_options_are_validated(tmp_path: Path) -> None:
    cfg = SyntheticCameraConfig.model_validate(
        {"type": "synthetic", "freeze": {"max_changed": 0.1, "ignore": [[0, 0, 200, 30]]}})
    assert cfg.freeze.ignore == [(0, 0, 200, 30)] and cfg.freeze.max_changed == 0.1
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "model.onnx").write_bytes(b"x")
    bad = BASE.replace("cam1: {type: synthetic, seed: 1}",
                       "cam1: {type: synthetic, seed: 1, freeze: {ignore: [[0, 0, 0, 30]]}}")
    with pytest.raises(ConfigError) as err:
        parse_config(bad, "t.yaml", tmp_path, {})
    issues = [i.format("t.yaml") for i in err.value.issues]
    assert len(issues) == 1 and issues[0].startswith("t.yaml:5: cameras.cam1.freeze.ignore.0.2")


def _naive_share(image: np.ndarray, ref: np.ndarray, f: FreezeDetector) -> float:
    """The definition, cell by cell: a cell changed when any of its samples differ."""
    layout = f._layout
    assert layout is not None
    a, b = image[::layout.rs, ::layout.cs], ref[::layout.rs, ::layout.cs]
    rows = [*layout.row_edges, a.shape[0]]
    cols = [*layout.col_edges, a.shape[1]]
    changed = counted = 0
    for i in range(len(rows) - 1):
        for j in range(len(cols) - 1):
            if layout.counted[i, j]:
                counted += 1
                changed += bool((a[rows[i]:rows[i + 1], cols[j]:cols[j + 1]]
                                 != b[rows[i]:rows[i + 1], cols[j]:cols[j + 1]]).any())
    return changed / counted if counted else 0.0


@pytest.mark.parametrize("shape", [(240, 320, 3), (481, 643, 3), (100, 90), (1080, 1920, 3)])
def test_the_fast_cell_count_matches_the_definition(shape: tuple[int, ...]) -> None:
    """The gathered samples and the integral-image cell count (the fast path) give the
    share of changed cells the definition gives, on contiguous and strided images."""
    rng = np.random.default_rng(len(shape) + shape[0])
    ref = rng.integers(0, 255, shape, np.uint8)
    f = FreezeDetector(ignore=[(10, 20, 40, 30)])
    f.update(ref, 0.0)
    for sparsity in (0.0, 0.0005, 0.01, 1.0):
        image = ref.copy()
        image[rng.random(shape) < sparsity] ^= 1
        assert f.changed_share(image) == pytest.approx(_naive_share(image, ref, f))
        padded = np.zeros((shape[0], shape[1] + 7, *shape[2:]), np.uint8)
        padded[:, :shape[1]] = image
        strided = padded[:, :shape[1]]  # not C-contiguous: the generic path
        assert f.changed_share(strided) == pytest.approx(_naive_share(image, ref, f))
