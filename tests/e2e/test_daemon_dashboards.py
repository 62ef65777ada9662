"""The Grafana dashboards in docs/grafana and docs/metrics.md against what a running daemon
exports (issues 21, 22): every metric name in every PromQL expression exists in the
daemon's /metrics, and every family the daemon exports is documented. The status and
metrics it publishes (/status, MQTT) are the StatusPayload and MetricsPayload models,
the metrics with every registered component's counters."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from agent.decision.payloads import MetricsPayload, StatusPayload
from plc.softplc import SoftPlc
from tests.conftest import REPO
from tests.e2e.harness import Daemon, write_config
from tests.support.mosquitto import Mosquitto
from tests.support.mqtt_collector import Collector

DASHBOARDS = sorted((REPO / "docs" / "grafana").glob("*.json"))
# PromQL words that are not metric names (functions are told by the "(" after them)
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and",
            "or", "unless", "offset", "inf", "nan"}
SUFFIXES = {"counter": ("_total", "_created"), "gauge": ("",), "info": ("_info",),
            "histogram": ("_bucket", "_sum", "_count", "_created"),
            "summary": ("", "_sum", "_count", "_created"), "unknown": ("",)}


def metric_names(expr: str) -> set[str]:
    """The metric names an expression reads (grafana variables, label matchers, ranges,
    strings, grouping clauses, functions and numbers taken out)."""
    expr = re.sub(r"\$\{?\w+\}?", "", expr)
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)
    expr = re.sub(r"\{[^}]*\}|\[[^\]]*\]", "", expr)
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)
    names = set()
    for m in re.finditer(r"[a-zA-Z_:][a-zA-Z0-9_:]*", expr):
        if expr[m.end():].lstrip().startswith("(") or m.group().lower() in KEYWORDS:
            continue
        if m.start() and (expr[m.start() - 1].isdigit() or expr[m.start() - 1] == "."):
            continue  # 2^30, 1e3, 0.99
        names.add(m.group())
    return names


def queries(dashboard: dict) -> Iterator[str]:  # type: ignore[type-arg]
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            yield target["expr"]
    for var in dashboard["templating"]["list"]:
        query = var.get("query")
        if isinstance(query, dict):
            m = re.fullmatch(r"label_values\((\w+),\s*\w+\)", query["query"])
            assert m, query
            yield m.group(1)


def test_metric_names_of_an_expression() -> None:
    expr = ('histogram_quantile(0.99, sum by (le, station) (rate(a_bucket{x="y",agent_id='
            '"$agent_id"}[$__rate_interval]))) / b * 2^30 or vector(0) + time() - c offset 5m')
    assert metric_names(expr) == {"a_bucket", "b", "c"}


async def test_dashboards_and_docs_match_the_exported_metrics(
        tmp_path: Path, mosquitto: Mosquitto, softplc: SoftPlc) -> None:
    cfg = write_config(tmp_path, mqtt_port=mosquitto.port,
                       modbus_port=softplc.modbus_port or 0, fps=20)
    daemon = Daemon(cfg)
    mqtt = Collector("127.0.0.1", mosquitto.port, "edge/e2e/agent/edge-e2e/+")
    try:
        await asyncio.to_thread(daemon.wait_started)
        families = await _families_once_inspecting(daemon)
        status = StatusPayload.model_validate_json(daemon.get("/status")[1])
        assert status.state == "online" and status.stations and status.models, status
        await asyncio.to_thread(mqtt.wait_for, "/metrics", 2, 10)
        published = [MetricsPayload.model_validate_json(m.payload)
                     for m in mqtt.on_topic("/metrics")][-1]
        for key in ("edge_agent_dispatcher_submitted_total{plc=softplc}",
                    "edge_agent_heartbeat_beats_total{plc=softplc}",
                    "edge_agent_mqtt_sink_acked_total{sink=mqtt}",
                    "edge_agent_engine_verdicts_total{result=OK}",
                    "edge_agent_router_unrouted_total{}",
                    "edge_agent_outbox_depth{sink=drop}"):
            assert key in published.values, (key, sorted(published.values))
        assert published.values["edge_agent_heartbeat_beats_total{plc=softplc}"] > 0
        retained = StatusPayload.model_validate_json(mqtt.on_topic("/status")[-1].payload)
        assert retained.models and retained.stations and retained.healthy is not None
        rc, _ = await asyncio.to_thread(daemon.terminate)
        assert rc == 0
    finally:
        mqtt.close()
        daemon.ensure_dead()
    exported = {f.name + s for f in families.values() for s in SUFFIXES[f.type]}
    exported |= {s.name for f in families.values() for s in f.samples}
    assert len(DASHBOARDS) == 2, DASHBOARDS
    for path in DASHBOARDS:
        used = set()
        for expr in queries(json.loads(path.read_text())):
            names = metric_names(expr)
            assert names, f"{path.name}: no metric in {expr!r}"
            missing = names - exported
            assert not missing, f"{path.name}: {expr!r} reads {missing}, not exported"
            used |= names
        assert len(used) >= 15, (path.name, used)

    documented = set(re.findall(r"^\| `(\w+)`", (REPO / "docs" / "metrics.md").read_text(), re.M))
    ours = {f.name + ("_total" if f.type == "counter" else "")
            for f in families.values()
            if f.name.startswith("edge_agent_") and not f.name.endswith("_created")}
    assert not ours - documented, f"exported, not in docs/metrics.md: {ours - documented}"
    info = families["edge_agent_build_info"].samples[0]
    assert set(info.labels) == {"version", "python", "onnxruntime"} and info.value == 1.0
    assert "process_cpu_seconds" in families and "python_info" in families


async def _families_once_inspecting(daemon: Daemon) -> dict:  # type: ignore[type-arg]
    """/metrics once the PLC link, the broker and the inspection have all been seen."""
    want = ("edge_agent_plc_round_trip_seconds", "edge_agent_verdict_latency_seconds",
            "edge_agent_mqtt_sink_acked")
    families: dict = {}  # type: ignore[type-arg]
    for _ in range(150):
        _, body = await asyncio.to_thread(daemon.get, "/metrics")
        families = {f.name: f for f in text_string_to_metric_families(body.decode())}
        if all(families.get(w) and families[w].samples for w in want):
            return families
        await asyncio.sleep(0.2)
    raise AssertionError(f"never saw {want}: {sorted(families)}")
