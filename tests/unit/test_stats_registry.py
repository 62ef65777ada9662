"""The stats registry (issue 21): a component's stats() dataclass becomes metrics with
Prometheus types and units, on the agent's /metrics, with process and build info."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from agent import __version__
from agent.control.dispatcher import DispatcherStats
from agent.decision.views import EngineStats
from agent.health.metrics import Metrics
from agent.health.registry import StatsRegistry
from agent.outbox.stats import SinkOutboxStats


def _values(m: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], tuple[float, str]]:
    out = {}
    for fam in text_string_to_metric_families(m.render().decode()):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = (s.value, fam.type)
    return out


def test_fields_become_typed_metrics_with_units() -> None:
    m = Metrics()
    m.stats.register("dispatcher", lambda: DispatcherStats(
        submitted=3, pending=2, last_latency_ms=12.5, last_refusal="x", bad_signals={"a": "b"}),
        plc="press1")
    v = _values(m)
    plc = (("plc", "press1"),)
    assert v[("edge_agent_dispatcher_submitted_total", plc)] == (3.0, "counter")
    assert v[("edge_agent_dispatcher_pending", plc)] == (2.0, "gauge")  # a level
    assert v[("edge_agent_dispatcher_last_latency_seconds", plc)] == (0.0125, "gauge")
    assert not any("refusal" in name or "bad_signals" in name for name, _ in v)


def test_dict_fields_become_labels_and_each_sources_one_series_per_key() -> None:
    m = Metrics()
    m.stats.register("engine", lambda: EngineStats(
        verdicts={"OK": 5, "NG": 1}, defects=1, commands={"stop": 1}, suppressed_stops=0,
        unrouted_commands=0, cooldown_suppressed=0, rejected={}, fail_safe_actions=0, resets=0))
    m.stats.register("outbox", lambda: {"mqtt": SinkOutboxStats(depth=4, oldest_age_s=2.5),
                                        "gone": SinkOutboxStats(lost=7)})
    v = _values(m)
    assert v[("edge_agent_engine_verdicts_total", (("result", "NG"),))] == (1.0, "counter")
    assert v[("edge_agent_engine_commands_total", (("kind", "stop"),))] == (1.0, "counter")
    assert v[("edge_agent_outbox_depth", (("sink", "mqtt"),))] == (4.0, "gauge")
    assert v[("edge_agent_outbox_oldest_age_seconds", (("sink", "mqtt"),))] == (2.5, "gauge")
    assert v[("edge_agent_outbox_lost_total", (("sink", "gone"),))] == (7.0, "counter")


def test_a_failing_source_costs_its_own_samples_only() -> None:
    m = Metrics()
    m.stats.register("router", lambda: 1 / 0)
    m.stats.register("slot", lambda: {"dropped": 2}, line="l1", station="s1")
    v = _values(m)
    assert v[("edge_agent_slot_dropped_total", (("line", "l1"), ("station", "s1")))][0] == 2
    assert v[("edge_agent_metrics_source_errors_total", ())][0] == 1
    assert not any(name.startswith("edge_agent_router") for name, _ in v)


def test_wiring_mistakes_are_refused() -> None:
    reg = StatsRegistry()
    reg.register("heartbeat", dict, plc="p1")
    with pytest.raises(ValueError, match="already registered"):
        reg.register("heartbeat", dict, plc="p1")
    with pytest.raises(ValueError, match=r"expected \('plc',\)"):
        reg.register("heartbeat", dict, sink="p1")
    reg.register("heartbeat", dict, plc="p2")  # another PLC is another source


def test_process_platform_and_build_info() -> None:
    v = _values(Metrics())
    (info,) = [labels for name, labels in v if name == "edge_agent_build_info"]
    labels = dict(info)
    assert labels["version"] == __version__ and labels["python"].count(".") == 2
    assert labels["onnxruntime"][0].isdigit(), labels
    assert ("process_cpu_seconds_total", ()) in v and ("process_resident_memory_bytes", ()) in v
    assert any(name == "python_info" for name, _ in v)
