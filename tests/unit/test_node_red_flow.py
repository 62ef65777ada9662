"""docs/node-red/defects-flow.json (issue 22): its MQTT topic is the one the agent's own
TopicMap gives the demo config's defect records, its wiring is whole, and its text
template only reads fields the defect payload has."""

from __future__ import annotations

import json
import re
from pathlib import Path

from paho.mqtt.client import topic_matches_sub

from agent.configfile import load_config
from agent.decision.payloads import DefectPayload
from agent.protocols.base import SinkContext
from agent.protocols.mqtt.factory import build
from agent.types import Record, RecordKind
from tests.conftest import REPO

FLOW = REPO / "docs" / "node-red" / "defects-flow.json"


def _nodes() -> dict[str, dict]:
    return {n["id"]: n for n in json.loads(FLOW.read_text())}


def _demo_topic(tmp_path: Path, kind: RecordKind, line: str, station: str) -> str:
    loaded = load_config(REPO / "config" / "demo.yaml")
    cfg = loaded.config
    ctx = SinkContext(cfg.site, cfg.agent_id, loaded.base_dir, tmp_path)
    sink = build("mqtt", cfg.sinks["mqtt"], ctx)
    return sink.topics.record_topic(Record("id", kind, {}, line, station))


def test_flow_subscribes_to_the_demo_defect_topic(tmp_path: Path) -> None:
    (sub,) = [n for n in _nodes().values() if n["type"] == "mqtt in"]
    stations = [(ln, sn) for ln, sn, _ in load_config(REPO / "config" / "demo.yaml").config.stations()]
    assert stations
    for line, station in stations:
        topic = _demo_topic(tmp_path, RecordKind.DEFECT, line, station)
        assert topic_matches_sub(sub["topic"], topic), (sub["topic"], topic)
        for other in (RecordKind.INSPECTION, RecordKind.STOP, RecordKind.ALARM):
            topic = _demo_topic(tmp_path, other, line, station)
            assert not topic_matches_sub(sub["topic"], topic), (sub["topic"], topic)
    assert sub["datatype"] == "json" and int(sub["qos"]) >= 1


def test_flow_is_wired_and_shows_defect_fields() -> None:
    nodes = _nodes()
    for node in nodes.values():
        for outputs in node.get("wires", []):
            assert all(target in nodes for target in outputs), node
        if "z" in node:
            assert node["z"] in nodes, node
    (sub,) = [n for n in nodes.values() if n["type"] == "mqtt in"]
    assert nodes[sub["broker"]]["type"] == "mqtt-broker"
    shown = {nodes[t]["type"] for t in sub["wires"][0]}
    assert shown == {"debug", "template"}, shown
    (template,) = [n for n in nodes.values() if n["type"] == "template"]
    fields = set(re.findall(r"\{\{payload\.(\w+)\}\}", template["template"]))
    assert {"defect_class", "defect_code", "line", "station"} <= fields
    assert fields <= set(DefectPayload.model_fields), fields - set(DefectPayload.model_fields)
    assert any(nodes[t]["type"] == "debug" for t in template["wires"][0])
