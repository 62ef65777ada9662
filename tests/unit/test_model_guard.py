"""ModelGuard (pure): which guard trips when, on real Inspection objects."""

from __future__ import annotations

from datetime import UTC, datetime

from agent.config.lifecycle import ModelGuardConfig
from agent.config.station import DefectRule
from agent.runtime.model_guard import ModelGuard, frame_classes
from agent.types import Finding, Inspection, ModelInfo, StageTimings

INFO = ModelInfo("m", "1", "a" * 64, "CPUExecutionProvider")
RULES = [DefectRule.model_validate({"class": "crack", "min_score": 0.6, "defect_code": 3})]


def insp(label: str = "ok", score: float = 0.9, total_ms: float = 5.0,
         error: str | None = None) -> Inspection:
    return Inspection("cam", 1, 0.0, datetime.now(UTC), INFO,
                      () if error else (Finding(label, score),),
                      StageTimings(0.0, 1.0, total_ms - 2.0, 1.0), (240, 320), error=error)


def guard(expected: float | None = None, fallback: bool = False, **cfg: object) -> ModelGuard:
    return ModelGuard(ModelGuardConfig.model_validate(cfg), 0.0, 50.0, expected, fallback)


def test_frame_classes_follow_the_rules() -> None:
    assert frame_classes(insp("crack", 0.9), RULES) == {"crack"}
    assert frame_classes(insp("crack", 0.5), RULES) == frozenset()  # below min_score
    assert frame_classes(insp("spot", 0.99), RULES) == frozenset()  # no rule for spot


def test_errors_trip_at_max_errors() -> None:
    g = guard(max_errors=3)
    assert g.observe(insp(error="nan"), False) is None
    assert g.observe(insp(), False) is None
    assert g.observe(insp(error="nan"), False) is None
    trip = g.observe(insp(error="model m: NaN"), False)
    assert trip is not None and trip[0] == "errors" and "3 inference errors" in trip[1]
    assert not g.active(1.0)


def test_budget_overruns_trip() -> None:
    g = guard(max_overruns=2)
    assert g.observe(insp(total_ms=80), False) is None
    assert g.observe(insp(total_ms=10), False) is None
    trip = g.observe(insp(total_ms=90), False)
    assert trip is not None and trip[0] == "budget"


def test_defect_rate_outside_the_band_around_shadow_trips_after_min_frames() -> None:
    g = guard(expected=0.1, defect_rate_band=0.1, min_frames=20)
    results = [g.observe(insp("crack"), True) for _ in range(19)]
    assert results == [None] * 19  # too few frames to judge
    trip = g.observe(insp("crack"), True)
    assert trip is not None and trip[0] == "defect_rate" and "outside 0.100 +/- 0.1" in trip[1]


def test_defect_rate_inside_the_band_or_without_shadow_statistics_never_trips() -> None:
    inside = guard(expected=0.5, defect_rate_band=0.1, min_frames=10)
    unknown = guard(expected=None, min_frames=10)
    for i in range(100):
        assert inside.observe(insp(), i % 2 == 0) is None
        assert unknown.observe(insp("crack"), True) is None


def test_fallback_trips_before_any_frame_unless_disabled() -> None:
    trip = guard(fallback=True).first_check()
    assert trip is not None and trip[0] == "fallback"
    assert guard(fallback=True, on_fallback=False).first_check() is None
    assert guard(fallback=False).first_check() is None


def test_window_ends_the_guard() -> None:
    g = guard(window_s=10)
    assert g.active(9.9) and not g.active(10.0)
