"""Payload models and their JSON Schemas: in sync with config/schemas/, and every record the
engine emits validates against the schema a subscriber would use."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from agent.commands import schema as schema_cmd
from agent.decision.payloads import PAYLOAD_MODELS, StatusPayload, payload_schemas, schema_text
from agent.protocols.base import wire_payload
from agent.types import CommandOutcome, OutcomeStatus, Record
from tests.conftest import REPO
from tests.support.decision import LINE, ST, config, engine, insp, rule

SCHEMA_DIR = REPO / "config" / "schemas"


@pytest.mark.parametrize("kind", sorted(PAYLOAD_MODELS))
def test_schema_file_in_sync(kind: str) -> None:
    path = SCHEMA_DIR / f"{kind}.schema.json"
    assert path.exists(), f"{path} missing: run `edge-agent schema --payloads config/schemas`"
    assert json.loads(path.read_text()) == payload_schemas()[kind], (
        f"{path} is stale: run `edge-agent schema --payloads config/schemas`")


def test_no_stray_schema_files() -> None:
    assert {p.name for p in SCHEMA_DIR.glob("*.schema.json")} == {
        f"{k}.schema.json" for k in PAYLOAD_MODELS}


def test_every_field_is_described() -> None:
    missing = []
    for kind, sch in payload_schemas().items():
        for name, model in [(kind, sch), *sch.get("$defs", {}).items()]:
            missing += [f"{name}.{f}" for f, spec in model.get("properties", {}).items()
                        if "description" not in spec]
    assert not missing


def test_schema_command_writes_payload_schemas(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert schema_cmd.main(argparse.Namespace(payloads=tmp_path / "out")) == 0
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == sorted(f"{k}.schema.json" for k in PAYLOAD_MODELS)
    assert (tmp_path / "out" / "defect.schema.json").read_text() == schema_text(payload_schemas()["defect"])
    assert "defect.schema.json" in capsys.readouterr().out


def test_plain_schema_output_is_still_the_config_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert schema_cmd.main(argparse.Namespace(payloads=None)) == 0
    assert capsys.readouterr().out == schema_cmd.config_schema_text()


def all_record_kinds(tmp_path: Path) -> list[Record]:
    eng = engine(config(tmp_path, [rule(action="stop", roi=[0, 0, 1, 1])], publish_inspections=True,
                        fail_safe={"action": "alert", "after_s": 1}))
    records: list[Record] = []
    d = eng.on_inspection(LINE, ST, insp(1, ("scratch", 0.9), part_id="P1"), 1.0)
    records += d.records
    records += eng.on_inspection(LINE, ST, insp(2, error="boom"), 2.0).records
    records += eng.on_inspection(LINE, ST, insp(3, ("scratch", 0.95)), 3.0).records
    records.append(eng.outcome_record(CommandOutcome(d.commands[0], OutcomeStatus.ACKED, 1, 1.01, 10.0)))
    records += eng.reset(LINE, ST, "mqtt:panel", 4.0).records
    records += eng.on_inspection_impossible(LINE, ST, "camera stalled", 5.0).records
    records += eng.on_inspection_impossible(LINE, ST, "camera stalled", 6.0).records
    records += eng.on_inspection_possible(LINE, ST, 7.0).records
    records.append(eng.drift_record(LINE, ST, {"psi": 0.4, "bad": float("inf")}, 0.25))
    return records


def validate(kind: str, payload: dict[str, Any]) -> None:
    schema = json.loads((SCHEMA_DIR / f"{kind}.schema.json").read_text())
    jsonschema.validate(payload, schema, format_checker=jsonschema.FormatChecker())


def test_every_record_validates_against_its_schema(tmp_path: Path) -> None:
    records = all_record_kinds(tmp_path)
    assert {r.kind.value for r in records} == {"defect", "inspection", "stop", "alarm", "drift"}
    for rec in records:
        wire = json.loads(json.dumps(wire_payload(rec), allow_nan=False))  # strict JSON on the wire
        validate(rec.kind.value, wire)
        assert wire["schema_version"] == 1 and wire["event_id"] == rec.id


def test_event_ids_are_unique(tmp_path: Path) -> None:
    records = all_record_kinds(tmp_path)
    assert len({r.id for r in records}) == len(records)


def test_schema_refuses_a_wrong_payload(tmp_path: Path) -> None:
    rec = next(r for r in all_record_kinds(tmp_path) if r.kind.value == "defect")
    bad = {**wire_payload(rec), "defect_code": "scratch"}
    with pytest.raises(jsonschema.ValidationError):
        validate("defect", bad)
    with pytest.raises(jsonschema.ValidationError):
        validate("defect", {**wire_payload(rec), "surprise": 1})


def test_telemetry_payloads_validate() -> None:
    now = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
    status = StatusPayload(
        time=now, site="plant", agent_id="box1", state="online", version="0.1.0", started=now,
        models=[{"name": "m", "version": "1", "sha256": "ab", "provider": "CPUExecutionProvider",
                 "fallback": True}],
        stations=[{"line": LINE, "station": ST, "state": "stopped"}], healthy=True)
    validate("status", status.model_dump(mode="json"))
    metrics = PAYLOAD_MODELS["metrics"](time=now, agent_id="box1",
                                        values={"fps": 14.8, "outbox_depth": 3})
    validate("metrics", metrics.model_dump(mode="json"))
    with pytest.raises(jsonschema.ValidationError):
        validate("status", {**status.model_dump(mode="json"), "state": "sleeping"})
    last_will = {"schema_version": 1, "time": "2026-11-27T09:00:00+00:00", "site": "plant",
                 "agent_id": "box1", "state": "offline", "version": "0.1.0"}
    validate("status", last_will)


def test_evidence_reference_is_version_2_and_version_1_still_validates(tmp_path: Path) -> None:
    from agent.evidence.capture import with_ref

    ref = {"id": "01a22736-a3fd-7460-b18d-1ee92a456731", "sha256": "ab" * 32, "bytes": 2048,
           "width": 320, "height": 240, "path": "2026-11-29/01a22736-a3fd-7460-b18d-1ee92a456731.jpg",
           "url": "http://edge:9310/evidence/01a22736-a3fd-7460-b18d-1ee92a456731.jpg", "files": []}
    for rec in all_record_kinds(tmp_path):
        kind = rec.kind.value
        if kind not in ("defect", "inspection", "stop", "alarm"):
            continue
        plain = wire_payload(rec)
        assert "evidence" not in plain and plain["schema_version"] == 1  # exactly version 1
        validate(kind, plain)
        linked = wire_payload(with_ref(rec, ref))
        assert linked["schema_version"] == 2
        validate(kind, linked)
        with pytest.raises(jsonschema.ValidationError):
            validate(kind, {**linked, "evidence": {**ref, "sha256": None}})
