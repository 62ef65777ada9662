"""The records of the model lifecycle validate against their published schemas and go
out on every sink kind (a Sparkplug node refused unknown record kinds)."""

from __future__ import annotations

import jsonschema

from agent.decision.payloads import payload_schemas
from agent.protocols.sparkplug.node import EdgeNodeSession
from agent.protocols.sparkplug.sparkplug_b_pb2 import Payload
from agent.runtime.model_records import rollback_alarm, switch_record
from agent.types import ModelInfo, RecordKind

OLD = ModelInfo("defect-cnn", "1.0.0", "a" * 64, "CPUExecutionProvider")
NEW = ModelInfo("defect-cnn", "2.0.0", "b" * 64, "CPUExecutionProvider")


def test_switch_and_rollback_records_match_their_schemas() -> None:
    rec = switch_record("p1", "e7", "L1", "S1", "cam", "promoted", "mqtt:hmi", OLD, NEW)
    assert rec.kind is RecordKind.MODEL and (rec.line, rec.station) == ("L1", "S1")
    jsonschema.validate(rec.payload, payload_schemas()["model"])
    assert rec.payload["old"]["sha256"] == "a" * 64 and rec.payload["new"]["version"] == "2.0.0"
    alarm = rollback_alarm("p1", "e7", "L1", "S1", "cam", "model rolled back: x -> y: guard:errors: 3")
    jsonschema.validate(alarm.payload, payload_schemas()["alarm"])
    assert alarm.payload["event"] == "raised"


def test_sparkplug_node_sends_the_model_record_as_device_data() -> None:
    s = EdgeNodeSession()
    s.devices["L1:S1"] = {}
    s.define_device("L1:S1")
    s.nbirth(1)
    birth = Payload.FromString(s.dbirth("L1:S1"))
    assert "Events/Model/new/sha256" in {m.name for m in birth.metrics}
    rec = switch_record("p1", "e7", "L1", "S1", "cam", "rolled_back", "guard:errors", NEW, OLD)
    data = Payload.FromString(s.event(rec, rec.payload, "L1:S1"))
    assert any(m.string_value == "a" * 64 for m in data.metrics)
