"""Drift: PSI of rolling input/output statistics against a baseline window."""

from __future__ import annotations

from datetime import UTC, datetime

import cv2
import numpy as np
import pytest

from agent.capture.synthetic_scene import ConveyorScene
from agent.config.station import DriftConfig
from agent.health.drift import DriftMonitor, image_features, output_features, psi
from agent.types import Finding, Inspection, ModelInfo, StageTimings

MODEL = ModelInfo("defect", "1", "abc", "CPUExecutionProvider")


def _insp(seq: int, findings: tuple[Finding, ...] = (), error: str | None = None) -> Inspection:
    return Inspection("cam1", seq, 0.0, datetime.now(UTC), MODEL, findings, StageTimings(),
                      error=error)


def _scene_findings(label: str, rng: np.random.Generator) -> tuple[Finding, ...]:
    if label == "ok":
        return (Finding("ok", float(rng.uniform(0.7, 1.0))),)
    return (Finding(label, float(rng.uniform(0.6, 1.0))),)


def test_psi_formula() -> None:
    assert psi(np.array([50.0, 50.0]), np.array([50.0, 50.0])) == 0.0
    e = (np.array([50.0, 50.0]) + 0.5) / 101
    a = (np.array([90.0, 10.0]) + 0.5) / 101
    assert psi(np.array([50.0, 50.0]), np.array([90.0, 10.0])) == pytest.approx(
        float(np.sum((a - e) * np.log(a / e))))
    assert psi(np.array([100.0, 0.0]), np.array([0.0, 100.0])) > 5  # empty bins stay finite


def test_image_features_track_brightness_contrast_and_blur() -> None:
    img = ConveyorScene(seed=1).next_frame().image
    base = image_features(img)
    dark = image_features(cv2.convertScaleAbs(img, alpha=0.5))
    blurred = image_features(cv2.GaussianBlur(img, (0, 0), 3))
    assert dark["brightness"] < 0.6 * base["brightness"]
    assert dark["contrast"] < 0.6 * base["contrast"]
    assert blurred["sharpness"] < 0.5 * base["sharpness"]
    assert image_features(img[:, :, 0])["brightness"] > 0  # grey frames work too


def test_output_features() -> None:
    assert output_features(_insp(1, (Finding("ok", 0.9), Finding("scratch", 0.1)))) == {
        "top_score": 0.1, "defect": 0.0}
    assert output_features(_insp(1, (Finding("scratch", 0.8),))) == {
        "top_score": 0.8, "defect": 1.0}
    assert output_features(_insp(1)) == {"top_score": 0.0, "defect": 0.0}


def _run(mon: DriftMonitor, scene: ConveyorScene, frames: int, start: int,
         alpha: float = 1.0) -> list:
    rng = np.random.default_rng(start)
    reports = []
    for seq in range(start, start + frames):
        f = scene.next_frame()
        img = f.image if alpha == 1.0 else cv2.convertScaleAbs(f.image, alpha=alpha)
        r = mon.observe(img, _insp(seq, _scene_findings(f.label, rng)))
        if r is not None:
            reports.append(r)
    return reports


# The test windows: 300-frame baseline and window, PSI threshold 0.25. On this stable
# stream the PSI stays below ~0.18; a lighting change scores > 1 (see the drift module's
# docstring on how correlated conveyor frames make short windows noisy). The shipped
# defaults (600 frames, 0.5) are more conservative still.
CFG = DriftConfig(baseline_frames=300, window_frames=300, psi_threshold=0.25)


def test_stable_conveyor_stream_reports_no_drift() -> None:
    mon = DriftMonitor(CFG)
    scene = ConveyorScene(seed=3, width=160, height=120, lighting_jitter=0.1)
    assert _run(mon, scene, 900, 0) == []
    stats = mon.stats()
    assert stats["frames"] == 900 and stats["drifting"] == 0
    assert all(stats[f"psi_{n}"] < CFG.psi_threshold for n in ("brightness", "contrast",
                                                              "sharpness", "defect"))


def test_lighting_change_is_reported_once() -> None:
    mon = DriftMonitor(CFG)
    scene = ConveyorScene(seed=3, width=160, height=120, lighting_jitter=0.1)
    assert _run(mon, scene, 600, 0) == []
    reports = _run(mon, scene, 300, 600, alpha=0.65)  # a lamp fails: 35 % darker
    bright = [r for r in reports if "brightness" in r.features]
    assert len(bright) == 1, "brightness drift must be reported exactly once"
    first = bright[0]
    assert first.psi["brightness"] >= CFG.psi_threshold
    assert first.window_mean["brightness"] < first.baseline_mean["brightness"]
    assert first.frame_seq >= 600
    # darker also means less contrast and a weaker Laplacian: each reported once as well
    assert {"contrast", "sharpness"} <= {f for r in reports for f in r.features}
    assert len(reports) <= 3
    payload = first.payload()
    assert payload["schema_version"] == 1 and payload["statistic"] == "psi"
    assert mon.stats()["drifting"] >= 1


def _synthetic_frame(rng: np.random.Generator, level: float) -> np.ndarray:
    return np.clip(rng.normal(level, 20.0, (48, 64, 3)), 0, 255).astype(np.uint8)


def test_reports_again_only_after_falling_back_below_the_threshold() -> None:
    cfg = DriftConfig(baseline_frames=100, window_frames=100, psi_threshold=0.25)
    mon = DriftMonitor(cfg, stride=1)
    rng = np.random.default_rng(0)
    seq = 0

    def feed(n: int, level: float) -> list:
        nonlocal seq
        out = []
        for _ in range(n):
            seq += 1
            r = mon.observe(_synthetic_frame(rng, level), _insp(seq, (Finding("ok", 0.9),)))
            if r is not None and "brightness" in r.features:
                out.append(r)
        return out

    assert feed(300, 120.0) == []
    assert len(feed(200, 80.0)) == 1  # darker: one report, however long it lasts
    assert feed(200, 120.0) == []  # back to normal: re-armed, nothing to report
    assert mon.stats()["drifting"] == 0
    assert len(feed(200, 80.0)) == 1  # darker again: reported again


def test_defect_rate_and_score_drift_without_pixels() -> None:
    cfg = DriftConfig(baseline_frames=200, window_frames=200, psi_threshold=0.25)
    mon = DriftMonitor(cfg)
    rng = np.random.default_rng(1)

    def findings(defect_rate: float) -> tuple[Finding, ...]:
        if rng.random() < defect_rate:
            return (Finding("scratch", float(rng.uniform(0.6, 1.0))),)
        return (Finding("ok", 0.9), Finding("scratch", float(rng.uniform(0.0, 0.2))))

    reports = [mon.observe(None, _insp(i, findings(0.05))) for i in range(400)]
    assert reports == [None] * 400
    reports = [r for i in range(400, 700) if (r := mon.observe(None, _insp(i, findings(0.4))))]
    assert {"defect", "top_score"} <= {f for r in reports for f in r.features}
    stats = mon.stats()
    assert stats["skipped_inputs"] == 700
    assert stats["window_mean_defect"] > stats["baseline_mean_defect"]


def test_failed_inspections_are_skipped_and_counted() -> None:
    mon = DriftMonitor(DriftConfig(baseline_frames=10, window_frames=10))
    assert mon.observe(None, _insp(1, error="session.run failed")) is None
    assert mon.stats()["skipped_outputs"] == 1


def test_disabled_monitor_does_nothing() -> None:
    mon = DriftMonitor(DriftConfig(enabled=False, baseline_frames=10, window_frames=10))
    rng = np.random.default_rng(0)
    for i in range(100):
        assert mon.observe(_synthetic_frame(rng, 10.0 + 2 * i), _insp(i)) is None
    assert mon.stats()["frames"] == 0


def test_rebaseline_accepts_the_new_normal() -> None:
    cfg = DriftConfig(baseline_frames=50, window_frames=50, psi_threshold=0.25)
    mon = DriftMonitor(cfg, stride=1)
    rng = np.random.default_rng(2)
    for i in range(100):
        mon.observe(_synthetic_frame(rng, 120.0), _insp(i))
    mon.rebaseline()
    reports = [mon.observe(_synthetic_frame(rng, 60.0), _insp(i)) for i in range(200)]
    assert all(r is None for r in reports)
    assert mon.stats()["baseline_mean_brightness"] < 70


@pytest.mark.parametrize("shape", [(240, 320, 3), (243, 317, 3), (120, 160)])
def test_image_features_are_those_of_the_sampled_pixels(shape: tuple[int, ...]) -> None:
    """The fast path (grey rows, then columns) gives the features of every 4th pixel
    converted as a contiguous image, for contiguous, cropped (strided) and grey frames."""
    rng = np.random.default_rng(3)
    image = rng.integers(0, 255, (shape[0] + 10, shape[1] + 10, *shape[2:]), np.uint8)
    for pixels in (np.ascontiguousarray(image[:shape[0], :shape[1]]),
                   image[5:5 + shape[0], 3:3 + shape[1]]):
        sub = np.ascontiguousarray(pixels[::4, ::4])
        gray = cv2.cvtColor(sub, cv2.COLOR_BGR2GRAY) if sub.ndim == 3 else sub
        mean, std = cv2.meanStdDev(gray)
        _, lap = cv2.meanStdDev(cv2.Laplacian(gray, cv2.CV_32F))
        assert image_features(pixels) == pytest.approx(
            {"brightness": mean[0, 0], "contrast": std[0, 0], "sharpness": lap[0, 0] ** 2})


def test_psi_of_the_window_matches_numpy() -> None:
    """The per-frame PSI (plain-Python bins) equals numpy's count of the same window."""
    rng = np.random.default_rng(9)
    cfg = DriftConfig(baseline_frames=50, window_frames=40, psi_threshold=99)
    mon = DriftMonitor(cfg)
    values = np.concatenate([rng.normal(100, 10, 50), rng.normal(110, 12, 90)])
    for i, v in enumerate(values):
        mon._update("brightness", float(v))
        f = mon._features["brightness"]
        if i >= 50 + 39:
            edges = np.asarray(f.edges)
            base = np.bincount(np.searchsorted(edges, values[:50], side="right"),
                               minlength=len(edges) + 1)
            win = np.bincount(np.searchsorted(edges, values[i - 39:i + 1], side="right"),
                              minlength=len(edges) + 1)
            e = (base + 0.5) / (base.sum() + 0.5 * len(base))
            a = (win + 0.5) / (win.sum() + 0.5 * len(win))
            assert f.psi == pytest.approx(float(np.sum((a - e) * np.log(a / e))))
