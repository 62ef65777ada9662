"""Per-frame metric observations (issue 20): labelled children are cached per station, and
the capture -> verdict histogram observes the verdict's total, not the sum of its parts."""

from __future__ import annotations

from datetime import UTC, datetime

from agent.health.metrics import Metrics
from agent.types import Inspection, ModelInfo, Result, StageTimings, Verdict

MODEL = ModelInfo("m", "1", "abc", "CPUExecutionProvider")


def _sample(m: Metrics, name: str, **labels: str) -> float | None:
    for metric in m.registry.collect():
        for s in metric.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return float(s.value)
    return None


def test_verdict_latency_is_the_total_capture_to_verdict() -> None:
    m = Metrics()
    lat = {"frame_age_ms": 1.0, "pre_ms": 0.5, "infer_ms": 2.0, "post_ms": 0.5, "total_ms": 8.0}
    for _ in range(3):
        m.observe_verdict(Verdict("l1", "s1", "cam", Result.OK, 1, latency_ms=lat))
    assert _sample(m, "edge_agent_verdict_latency_seconds_sum", station="s1") == \
        3 * 0.008  # before: the sum of the parts and the total (0.012 each)
    assert _sample(m, "edge_agent_verdicts_total", station="s1", result="OK") == 3


def test_inspections_and_stages_counted_per_station_and_provider() -> None:
    m = Metrics()
    for station, provider in (("s1", "CPUExecutionProvider"), ("s1", "CPUExecutionProvider"),
                              ("s2", "OpenVINOExecutionProvider")):
        model = ModelInfo("m", "1", "abc", provider)
        m.observe_inspection("l1", station, Inspection(
            "cam", 1, 0.0, datetime.now(UTC), model, (), StageTimings(1.0, 2.0, 3.0, 4.0)))
    assert _sample(m, "edge_agent_inspections_total", station="s1",
                   provider="CPUExecutionProvider") == 2
    assert _sample(m, "edge_agent_inspections_total", station="s2",
                   provider="OpenVINOExecutionProvider") == 1
    assert _sample(m, "edge_agent_stage_seconds_sum", station="s1", stage="infer") == 0.006
    assert _sample(m, "edge_agent_stage_seconds_count", station="s2", stage="post") == 1
