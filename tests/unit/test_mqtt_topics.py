"""Topic tree, QoS and expiry per kind; documented payloads match their schemas (pure logic)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jsonschema
import pytest

from agent.commands.alerts import format_row, header
from agent.protocols.mqtt.commands import command_schema
from agent.protocols.mqtt.topics import TopicMap, alert_filter, template_fields
from agent.types import Record, RecordKind
from tests.support.mqtt_peer import schema_for

NOW = datetime(2026, 11, 27, 9, 30, tzinfo=UTC)


def rec(kind: RecordKind, line: str | None = "L1", station: str | None = "S1",
        created: datetime = NOW) -> Record:
    return Record(id="r1", kind=kind, payload={}, line=line, station=station, created=created)


def tmap(**kw: object) -> TopicMap:
    return TopicMap(prefix="edge", site="plant1", agent_id="edge-07", **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", list(RecordKind))
def test_station_records_default_tree(kind: RecordKind) -> None:
    assert tmap().record_topic(rec(kind)) == f"edge/plant1/L1/S1/{kind}"


def test_agent_level_records_and_fixed_topics() -> None:
    t = tmap()
    assert t.record_topic(rec(RecordKind.DRIFT, None, None)) == "edge/plant1/agent/edge-07/drift"
    assert t.status_topic == "edge/plant1/agent/edge-07/status"
    assert t.metrics_topic == "edge/plant1/agent/edge-07/metrics"
    assert t.command_topic == "edge/plant1/agent/edge-07/cmd"
    assert t.command_result_topic == "edge/plant1/agent/edge-07/cmd/result"


def test_template_override_and_fallback_for_unscoped_records() -> None:
    t = tmap(templates={"defect": "mes/{site}/{line}/{station}/ng",
                        "drift": "mes/{site}/drift/{agent_id}"})
    assert t.record_topic(rec(RecordKind.DEFECT)) == "mes/plant1/L1/S1/ng"
    # a template that needs line/station cannot place an agent-level record: default tree
    assert t.record_topic(rec(RecordKind.DEFECT, None, None)) == "edge/plant1/agent/edge-07/defect"
    assert t.record_topic(rec(RecordKind.DRIFT, None, None)) == "mes/plant1/drift/edge-07"
    assert t.record_topic(rec(RecordKind.STOP)) == "edge/plant1/L1/S1/stop"


@pytest.mark.parametrize("template", ["{prefix}/{plant}/x", "{prefix}/{}/x", "{prefix/x"])
def test_bad_templates_are_refused(template: str) -> None:
    with pytest.raises(ValueError, match="bad topic template"):
        tmap(templates={"defect": template})


@pytest.mark.parametrize("station", ["a/b", "+", "#", ""])
def test_names_that_would_break_the_tree_are_refused(station: str) -> None:
    with pytest.raises(ValueError, match="cannot be used in an MQTT topic level"):
        tmap().record_topic(rec(RecordKind.DEFECT, "L1", station))


def test_wildcard_in_template_result_is_refused() -> None:
    with pytest.raises(ValueError, match="not a valid MQTT topic"):
        tmap(templates={"defect": "{prefix}/#/{line}/{station}"}).record_topic(
            rec(RecordKind.DEFECT))


def test_command_topic_cannot_use_station() -> None:
    with pytest.raises(ValueError, match="cannot use line/station"):
        tmap(command_template="{prefix}/{line}/cmd")
    assert template_fields("{prefix}/{kind}") == {"prefix", "kind"}


def test_qos_defaults_to_1_and_expiry_counts_from_creation() -> None:
    t = tmap(qos_by_kind={"inspection": 0}, expiry_by_kind={"stop": 60})
    assert t.qos("defect") == 1 and t.qos("inspection") == 0
    assert t.expiry_s("defect") is None
    assert t.expiry_s("stop", NOW, NOW + timedelta(seconds=20.5)) == 40
    assert t.expiry_s("stop", NOW, NOW + timedelta(minutes=5)) == 1  # late: expires at once


def test_alert_filter() -> None:
    assert alert_filter("edge") == "edge/+/+/+/defect"
    assert alert_filter("edge", line="L1", station="S2") == "edge/+/L1/S2/defect"
    with pytest.raises(ValueError):
        alert_filter("edge", line="L/1")


DOC = Path(__file__).resolve().parents[2] / "docs" / "mqtt-topics.md"
EXAMPLE = re.compile(r"<!-- schema: (\w+) -->\n```json\n(.*?)\n```", re.S)


def doc_examples() -> list[tuple[str, dict[str, object]]]:
    return [(kind, json.loads(body)) for kind, body in EXAMPLE.findall(DOC.read_text())]


def test_every_documented_payload_matches_its_schema() -> None:
    examples = doc_examples()
    kinds = {k for k, _ in examples}
    assert kinds == {"defect", "inspection", "stop", "alarm", "drift", "model", "status",
                     "metrics", "command"}
    for kind, body in examples:
        schema = command_schema() if kind == "command" else schema_for(kind)
        jsonschema.validate(body, schema)


def test_documented_alert_row_is_what_the_cli_prints() -> None:
    defect = next(body for kind, body in doc_examples() if kind == "defect")
    text = DOC.read_text()
    assert header() in text and format_row(defect) in text


@pytest.mark.parametrize("expiry,record_id", [(None, None), (60, None), (None, "0190-x"),
                                              (3600, "019a3c1e-0000-7000-8000-000000000001")])
def test_packed_publish_properties_equal_paho_packing(expiry: int | None,
                                                      record_id: str | None) -> None:
    """The hand-packed PUBLISH properties are byte for byte what paho would send."""
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    from agent.protocols.mqtt.client import publish_properties

    ref = Properties(PacketTypes.PUBLISH)
    ref.PayloadFormatIndicator = 1
    ref.ContentType = "application/json"
    if expiry is not None:
        ref.MessageExpiryInterval = expiry
    if record_id is not None:
        ref.UserProperty = [("record_id", record_id)]
    assert publish_properties(expiry, record_id).pack() == ref.pack()
