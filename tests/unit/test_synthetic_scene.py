"""The synthetic conveyor: deterministic, schedule-driven, ground truth consistent with pixels."""

from __future__ import annotations

from itertools import islice

import numpy as np
import pytest

from agent.capture.synthetic_defects import draw_defect, metal_texture
from agent.capture.synthetic_scene import (
    DEFECT_CLASSES,
    LABELS,
    ConveyorScene,
    PartSpec,
    SceneFrame,
    render_sample,
)


def frames(scene: ConveyorScene, n: int) -> list[SceneFrame]:
    return [scene.next_frame() for _ in range(n)]


def test_labels_put_ok_first_and_name_the_defects() -> None:
    assert LABELS[0] == "ok"
    assert LABELS[1:] == DEFECT_CLASSES
    assert {"scratch", "spot", "crack"} <= set(DEFECT_CLASSES)


def test_same_seed_gives_the_same_frames_and_parts() -> None:
    a, b = ConveyorScene(seed=7, noise_std=5.0), ConveyorScene(seed=7, noise_std=5.0)
    for fa, fb in zip(frames(a, 14), frames(b, 14), strict=True):
        assert np.array_equal(fa.image, fb.image)
        assert (fa.part_id, fa.label, fa.defect_box) == (fb.part_id, fb.label, fb.defect_box)
    assert list(islice(a.parts(), 50)) == list(islice(b.parts(), 50))


def test_different_seeds_give_different_frames() -> None:
    a, b = ConveyorScene(seed=1), ConveyorScene(seed=2)
    assert not np.array_equal(a.next_frame().image, b.next_frame().image)
    assert [p.defect for p in islice(a.parts(), 60)] != [p.defect for p in islice(b.parts(), 60)]


def test_parts_restarts_from_the_first_part_whatever_was_rendered() -> None:
    scene = ConveyorScene(seed=3)
    before = list(islice(scene.parts(), 10))
    frames(scene, 30)
    assert list(islice(scene.parts(), 10)) == before
    assert [p.part_id for p in before] == [f"part-{i:06d}" for i in range(1, 11)]


def test_schedule_is_cycled() -> None:
    scene = ConveyorScene(seed=0, schedule=[None, None, "scratch"])
    specs = list(islice(scene.parts(), 7))
    assert [p.defect for p in specs] == [None, None, "scratch", None, None, "scratch", None]
    assert all(isinstance(p, PartSpec) for p in specs)


def test_each_part_is_in_view_for_frames_per_part_frames_then_empty_belt() -> None:
    fpp, gap = 5, 3
    scene = ConveyorScene(seed=11, frames_per_part=fpp, gap_frames=gap, schedule=["spot", None])
    seen = frames(scene, 4 * (fpp + gap))
    for part_no in range(4):
        block = seen[part_no * (fpp + gap) : (part_no + 1) * (fpp + gap)]
        spec = scene.part_spec(part_no)
        assert [f.part_id for f in block] == [spec.part_id] * fpp + [None] * gap
        assert [f.label for f in block] == [spec.defect or "ok"] * fpp + ["ok"] * gap
        in_view = [f.image.astype(np.int16) for f in block[:fpp]]
        for prev, cur in zip(in_view, in_view[1:], strict=False):
            assert np.abs(cur - prev).mean() > 3.0  # the conveyor moves the part


def test_part_frames_are_brighter_than_empty_belt() -> None:
    scene = ConveyorScene(seed=5, frames_per_part=4, gap_frames=2, schedule=[None])
    seen = frames(scene, 12)
    part = np.mean([f.image.mean() for f in seen if f.part_id is not None])
    belt = np.mean([f.image.mean() for f in seen if f.part_id is None])
    assert part > belt + 15.0


def test_labels_match_the_part_specs_over_a_long_run() -> None:
    scene = ConveyorScene(seed=21, frames_per_part=3, gap_frames=1, defect_rate=0.5)
    specs = {p.part_id: p for p in islice(scene.parts(), 60)}
    for frame in frames(scene, 60 * 4):
        assert frame.label in LABELS
        assert frame.image.shape == (240, 320, 3) and frame.image.dtype == np.uint8
        if frame.part_id is None:
            assert frame.label == "ok" and frame.defect_box is None
            continue
        expected = specs[frame.part_id].defect
        assert frame.label == (expected or "ok")
        assert (frame.defect_box is not None) == (expected is not None)
    assert {p.defect for p in specs.values()} == {None, *DEFECT_CLASSES}


def test_defect_rate_and_defect_classes_are_respected() -> None:
    specs = list(islice(ConveyorScene(seed=9, defect_rate=0.3).parts(), 3000))
    rate = sum(p.defect is not None for p in specs) / len(specs)
    assert 0.26 < rate < 0.34
    assert not any(p.defect for p in islice(ConveyorScene(seed=9, defect_rate=0.0).parts(), 200))
    only = ConveyorScene(seed=9, defect_rate=1.0, defect_classes=["crack", "spot"])
    assert {p.defect for p in islice(only.parts(), 200)} == {"crack", "spot"}


@pytest.mark.parametrize("defect", DEFECT_CLASSES)
def test_defect_changes_pixels_only_in_its_region(defect: str) -> None:
    good = ConveyorScene(seed=13, schedule=[None]).next_frame()
    bad = ConveyorScene(seed=13, schedule=[defect]).next_frame()
    assert good.label == "ok" and bad.label == defect and bad.defect_box is not None
    x0, y0, x1, y1 = bad.defect_box
    assert 0 <= x0 < x1 <= 320 and 0 <= y0 < y1 <= 240
    assert (x1 - x0) * (y1 - y0) >= 150  # big enough to survive downscaling to the model input
    diff = np.abs(bad.image.astype(np.int16) - good.image.astype(np.int16)).max(axis=2)
    inside = diff[y0:y1, x0:x1]
    assert inside.max() >= 60
    assert (inside > 25).sum() >= 40
    outside = diff.copy()
    outside[max(0, y0 - 3) : y1 + 3, max(0, x0 - 3) : x1 + 3] = 0
    assert outside.max() == 0


@pytest.mark.parametrize("defect", DEFECT_CLASSES)
def test_features_scale_with_the_frame_size(defect: str) -> None:
    """The model sees whole frames resized: a defect covers the same share of any frame size."""

    def box_size(width: int, height: int) -> np.ndarray:
        frame = ConveyorScene(seed=13, width=width, height=height, schedule=[defect]).next_frame()
        assert frame.defect_box is not None and frame.image.shape == (height, width, 3)
        x0, y0, x1, y1 = frame.defect_box
        return np.array([x1 - x0, y1 - y0], dtype=float)

    base = box_size(320, 240)
    assert np.all(box_size(640, 480) / base > 1.6) and np.all(box_size(640, 480) / base < 2.4)
    assert np.all(box_size(160, 120) / base > 0.35) and np.all(box_size(160, 120) / base < 0.7)


@pytest.mark.parametrize("defect", DEFECT_CLASSES)
def test_draw_defect_reports_the_pixels_it_changed(defect: str) -> None:
    base = metal_texture(np.random.default_rng(0), 120, 140)
    img = base.copy()
    mask = draw_defect(img, defect, np.random.default_rng(1), margin=10)
    changed = np.abs(img - base).max(axis=2) > 1.0
    assert changed.sum() >= 60
    assert np.all(mask[changed] > 0)
    ys, xs = np.nonzero(mask)
    assert ys.min() >= 5 and xs.min() >= 5 and ys.max() < 115 and xs.max() < 135


def test_augmentation_changes_pixels_but_not_ground_truth() -> None:
    clean = ConveyorScene(seed=4, frames_per_part=3)
    rough = ConveyorScene(
        seed=4, frames_per_part=3, lighting_jitter=0.3, blur_max=1.5, noise_std=8.0
    )
    for a, b in zip(frames(clean, 10), frames(rough, 10), strict=True):
        assert (a.part_id, a.label) == (b.part_id, b.label)
        assert np.abs(a.image.astype(np.int16) - b.image.astype(np.int16)).mean() > 3.0


def test_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="unknown defect class"):
        ConveyorScene(seed=0, schedule=[None, "rust"])
    with pytest.raises(ValueError, match="unknown defect class"):
        ConveyorScene(seed=0, defect_classes=["scratch", "bubble"])
    with pytest.raises(ValueError):
        ConveyorScene(seed=0, frames_per_part=0)
    with pytest.raises(ValueError):
        ConveyorScene(seed=0, defect_rate=1.5)


def test_render_sample_is_deterministic_per_generator_and_labelled() -> None:
    for label in LABELS:
        a = render_sample(np.random.default_rng(42), label, 160, 120, noise_std=4.0)
        b = render_sample(np.random.default_rng(42), label, 160, 120, noise_std=4.0)
        assert a.shape == (120, 160, 3) and a.dtype == np.uint8
        assert np.array_equal(a, b)
    rng = np.random.default_rng(0)
    assert not np.array_equal(
        render_sample(rng, "ok", 160, 120), render_sample(rng, "ok", 160, 120)
    )
    with pytest.raises(ValueError):
        render_sample(rng, "bubble", 160, 120)
    with pytest.raises(TypeError):
        render_sample(rng, "ok", 160, 120, brightness=2.0)
