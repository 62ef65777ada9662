"""docs/metrics.md is what the registry and the event metrics export (issue 21)."""

from __future__ import annotations

import re

from agent.health.metrics_doc import render, rows
from agent.health.registry import StatsRegistry
from agent.health.stats_specs import SPECS
from tests.conftest import REPO

COMMAND = "python -m agent.health.metrics_doc > docs/metrics.md"


def test_docs_metrics_md_is_generated() -> None:
    assert (REPO / "docs" / "metrics.md").read_text() == render(), f"run: {COMMAND}"


def test_names_follow_prometheus_conventions() -> None:
    for name, kind, _, _ in rows():
        assert re.fullmatch(r"edge_agent_[a-z0-9_]+", name), name
        assert name.endswith("_total") == (kind == "counter"), name
        assert not re.search(r"_(ms|s|fraction|bytes_total_bytes)(_total)?$", name), name
    names = [n for n, *_ in rows()]
    assert len(names) == len(set(names)), "a metric documented twice"


def test_every_spec_is_documented() -> None:
    documented = {n for n, *_ in rows()}
    for name in SPECS:
        assert any(d.startswith(f"edge_agent_{name}_") for d in documented), name
    assert StatsRegistry.known("mqtt_sink") and not StatsRegistry.known("ftp_sink")
