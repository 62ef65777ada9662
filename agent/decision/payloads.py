"""Pydantic models of every JSON payload the agent publishes to the MES side.

Each payload carries `schema_version`; their JSON Schemas are generated into
config/schemas/<kind>.schema.json (`edge-agent schema --payloads config/schemas`)
so a subscriber can validate what it receives.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    RootModel,
    SerializerFunctionWrapHandler,
    model_serializer,
)

SCHEMA_VERSION = 1
EVIDENCE_SCHEMA_VERSION = 2  # defect, inspection, stop and alarm payloads that carry `evidence`
StationStateName = Literal[
    "ok", "incident", "inspection_impossible", "fail_safe", "stopped",  # StationView.state
    "inspecting", "impaired", "paused",  # health view of a running station
]
VerdictName = Literal["OK", "NG", "UNKNOWN"]


class _Part(BaseModel):
    """Base of every payload model and its parts: unknown keys refused, immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class _Payload(_Part):
    schema_version: Literal[1] = Field(1, description="Version of this payload schema.")
    time: datetime = Field(description="When the agent produced this payload (UTC, ISO-8601).")
    site: str = Field(description="Site (plant) name from the config.")
    agent_id: str = Field(description="Id of the edge agent that produced this payload.")


class _StationEvent(_Payload):
    event_id: str = Field(description="Unique, time-sortable id of this event (UUIDv7); use it to de-duplicate.")
    line: str = Field(description="Production line name.")
    station: str = Field(description="Station name on the line.")
    camera: str | None = Field(description="Camera name of the station (null when the station is no longer configured).")
    replayed: bool = Field(False, description="True when the outbox delivers this record again after an outage or restart (set at send time); de-duplicate by event_id.")


class ModelRef(_Part):
    name: str = Field(description="Model name from its manifest.")
    version: str = Field(description="Model version from its manifest.")
    sha256: str = Field(description="SHA-256 of the model.onnx file that ran.")
    provider: str = Field(description="onnxruntime execution provider that actually ran, e.g. CPUExecutionProvider.")


class Latency(_Part):
    frame_age_ms: float = Field(description="Capture -> inference start.")
    pre_ms: float = Field(description="Pre-processing.")
    infer_ms: float = Field(description="Model run.")
    post_ms: float = Field(description="Post-processing (decoding outputs).")
    total_ms: float = Field(description="Capture -> verdict (at least the sum of the stages).")


class FindingOut(_Part):
    label: str = Field(description="Model class label.")
    score: float = Field(description="Model score of this finding.")
    box: tuple[float, float, float, float] | None = Field(None, description="[x1, y1, x2, y2] in frame pixels; null for whole-frame results.")


class EvidenceRef(_Part):
    id: str = Field(description="Evidence id (UUIDv7).")
    sha256: str = Field(description="SHA-256 of the stored JPEG of the full frame.")
    bytes: int = Field(description="Size of that JPEG in bytes.")
    width: int = Field(description="Frame width in pixels.")
    height: int = Field(description="Frame height in pixels.")
    path: str = Field(description="Path of the JPEG relative to the agent's evidence folder (state_dir/evidence), '/'-separated.")
    url: str = Field(description="Where the agent serves it (GET, same bearer token as /status); '' when the health server is off.")
    files: list[str] = Field(default_factory=list, description="Relative paths of the crops (one per finding with a box) and the annotated copy.")


class _WithEvidence(_StationEvent):
    """Version 2 adds the optional `evidence` object; a payload without it is exactly
    version 1 (the key is left out, not null), so version-1 consumers keep working."""

    schema_version: Literal[1, 2] = Field(1, description="Version of this payload schema: 2 when `evidence` is present, else 1.")  # type: ignore[assignment]
    evidence: EvidenceRef | None = Field(None, description="The image behind this record (absent when none was stored).")

    @model_serializer(mode="wrap")
    def _without_null_evidence(self, handler: SerializerFunctionWrapHandler):  # type: ignore[no-untyped-def]  # noqa: ANN202 (an annotation would replace the JSON Schema)
        out = handler(self)
        if isinstance(out, dict) and out.get("evidence") is None:
            out.pop("evidence", None)
        return out


class DefectPayload(_WithEvidence):
    """One confirmed defect incident (sent once when the incident opens)."""

    part_id: str | None = Field(None, description="Part id when known (triggered mode or a source that knows it).")
    verdict: Literal["NG"] = Field("NG", description="Always NG for a defect.")
    defect_code: int = Field(description="Code the MES and PLC understand, from the station rule.")
    defect_class: str = Field(description="Model label of the defect.")
    severity: Literal["minor", "major", "critical"] = Field(description="Severity from the station rule.")
    action: Literal["alert", "reject", "stop"] = Field(description="What the rule does on a confirmed defect.")
    score: float = Field(description="Highest score among the confirming frames.")
    box: tuple[float, float, float, float] | None = Field(None, description="Box of the best finding in frame pixels; null for whole-frame results.")
    rule: str = Field(description="The rule that fired, e.g. 'scratch>=0.80 k2/n3 -> stop'.")
    frame_seq: int = Field(description="Sequence number of the frame that confirmed the defect.")
    frames: list[int] = Field(description="Sequence numbers of the confirming frames (k of the last n).")
    scores: list[float] = Field(description="Scores of the confirming frames, in the order of `frames`.")
    model: ModelRef = Field(description="Model that produced the confirming frame.")
    latency: Latency = Field(description="Latency breakdown of the confirming frame.")
    budget_exceeded: bool = Field(description="The confirming frame's verdict missed the station's latency budget.")


class InspectionPayload(_WithEvidence):
    """One verdict (sent only for stations with publish_inspections)."""

    part_id: str | None = Field(None, description="Part id when known.")
    verdict: VerdictName = Field(description="OK, NG or UNKNOWN.")
    reason: str | None = Field(None, description="Why the verdict is UNKNOWN (late frame, inference error, camera stalled).")
    defect_code: int = Field(0, description="Defect code when NG, else 0.")
    defect_class: str | None = Field(None, description="Defect class when NG.")
    score: float | None = Field(None, description="Score of the deciding finding when NG.")
    box: tuple[float, float, float, float] | None = Field(None, description="Box of the deciding finding in frame pixels.")
    rule: str | None = Field(None, description="The rule that decided, when one did.")
    defect_event_id: str | None = Field(None, description="event_id of the defect incident this verdict belongs to.")
    frame_seq: int | None = Field(None, description="Sequence number of the inspected frame (null when no frame).")
    findings: list[FindingOut] = Field(default_factory=list, description="Findings that passed the station rules (score and region).")
    model: ModelRef | None = Field(None, description="Model that ran (null when nothing ran).")
    latency: Latency | None = Field(None, description="Latency breakdown (null when nothing ran).")
    budget_exceeded: bool = Field(False, description="The verdict missed the station's latency budget.")


class StopPayload(_WithEvidence):
    """The outcome of one PLC command (stop, reject, alarm, reset)."""

    kind: Literal["stop", "reject", "alarm", "reset"] = Field(description="Command kind.")
    status: Literal["acked", "unconfirmed", "failed", "expired", "suppressed"] = Field(description="acked: PLC acknowledged within the deadline; unconfirmed: sent, but no answer by the deadline (may have taken effect); failed: refused by the PLC, or never sent; expired: deadline passed before sending (never sent); suppressed: not re-sent, the station is already latched stopped.")
    attempts: int = Field(description="Write attempts made.")
    latency_ms: float | None = Field(None, description="Decision -> PLC acknowledgement, when acknowledged.")
    error: str | None = Field(None, description="Last error when not acknowledged.")
    trigger_event_id: str = Field(description="event_id of the defect (or alarm) that caused the command.")
    plc: str = Field(description="PLC target name from the config.")
    defect_code: int = Field(0, description="Defect code carried by the command.")
    part_id: str | None = Field(None, description="Part id carried by the command.")
    rule: str | None = Field(None, description="The rule that fired.")


class AlarmPayload(_WithEvidence):
    """Fail-safe alarm raised / cleared, or a reset of a latched stop."""

    event: Literal["raised", "cleared", "reset"] = Field(description="raised: inspection impossible for longer than fail_safe.after_s; cleared: inspection possible again; reset: a latched stop was released.")
    reason: str | None = Field(None, description="Why inspection was impossible (camera stalled, model failing, budget overrun).")
    action: Literal["alert", "stop"] | None = Field(None, description="Fail-safe action taken when raised.")
    source: str | None = Field(None, description="Who reset the stop: plc, mqtt:<client> or cli.")
    duration_s: float | None = Field(None, description="How long inspection had been impossible.")
    trigger_event_id: str | None = Field(None, description="event_id of the alarm this clears, or of the stop this resets.")


class OutboxLossPayload(_Payload):
    """Records the durable outbox lost (an agent-level alarm: no line or station)."""

    event_id: str = Field(description="Unique, time-sortable id of this event (UUIDv7); use it to de-duplicate.")
    event: Literal["records_lost"] = Field(description="Always records_lost.")
    cause: Literal["missing_at_start", "quarantined", "not_stored"] = Field(description="missing_at_start: records committed before a crash were missing when the agent started again (a damaged write-ahead log); quarantined: the outbox file was corrupt and moved aside, every record in it undelivered; not_stored: records the outbox could not write (full disk, I/O error), counted until it could write again.")
    lost: int | None = Field(description="Records lost, all sinks together; null when unknown (a quarantined file with no high-water mark).")
    lost_by_sink: dict[str, int] = Field(description="Records lost per sink name.")
    detail: str = Field(description="What happened, in words.")
    path: str | None = Field(None, description="The outbox file (or where a quarantined one was moved).")
    replayed: bool = Field(False, description="True when the outbox delivers this record again after an outage or restart (set at send time); de-duplicate by event_id.")


class AlarmRecordPayload(RootModel[AlarmPayload | OutboxLossPayload]):
    """An alarm record: a station's (fail-safe raised / cleared, reset) or the agent's own
    (the outbox lost records)."""


class DriftPayload(_StationEvent):
    """Input/output distribution drift of a station's model."""

    stats: dict[str, float | None] = Field(description="Drift statistics (e.g. psi_brightness); null where not finite.")
    threshold: float = Field(description="PSI threshold from the station's drift config.")
    model: ModelRef | None = Field(None, description="Model last seen on this station.")


class ModelEventPayload(_StationEvent):
    """A station's production model changed: promoted, swapped by a reload, or rolled back."""

    event: Literal["promoted", "reloaded", "rolled_back"] = Field(description="promoted: an operator promoted the candidate; reloaded: a SIGHUP changed the station's model; rolled_back: back to the previous model (by a guard or by hand).")
    source: str = Field(description="Who asked: mqtt:<client>, reload, or guard:<name>.")
    old: ModelRef | None = Field(description="The model inspecting before the switch.")
    new: ModelRef = Field(description="The model inspecting from the next frame on.")
    reason: str | None = Field(None, description="Why (a rollback's guard and figures).")


class ModelStatus(ModelRef):
    fallback: bool = Field(description="True when the provider is not the first one configured.")


class StationStatus(_Part):
    line: str = Field(description="Production line name.")
    station: str = Field(description="Station name.")
    state: StationStateName = Field(description="ok, incident (a defect is open), inspection_impossible, fail_safe (the fail-safe acted), stopped (latched until reset), inspecting (healthy and inspecting), impaired (a health check fails) or paused.")


class StatusPayload(_Payload):
    """Retained agent status (telemetry, latest value only; Last Will = offline)."""

    state: Literal["online", "offline"] = Field(description="online while the agent runs; offline is the Last Will.")
    version: str = Field(description="edge-agent version.")
    started: datetime | None = Field(None, description="When the agent started (UTC).")
    models: list[ModelStatus] = Field(default_factory=list, description="Loaded models.")
    stations: list[StationStatus] = Field(default_factory=list, description="Stations and their state.")
    healthy: bool | None = Field(None, description="All health checks pass (absent in the Last Will).")
    failing: list[str] = Field(default_factory=list, description="Names of the failing health checks.")
    model_lifecycle: list[dict[str, Any]] = Field(default_factory=list, description="Per station: production model and sha256, previous model (for a rollback), guard window, switches, rollbacks, last switch, and the shadow model's comparison (agreement, flips per class, skipped frames, latency, CPU per frame).")


class MetricsPayload(_Part):
    """Periodic metrics (telemetry, latest value only)."""

    schema_version: Literal[1] = Field(1, description="Version of this payload schema.")
    time: datetime = Field(description="When the agent produced this payload (UTC, ISO-8601).")
    agent_id: str = Field(description="Id of the edge agent that produced this payload.")
    site: str | None = Field(None, description="Site (plant) name from the config.")
    values: dict[str, float] = Field(description="Every gauge and stats counter of /metrics (docs/metrics.md) as 'name{label=value,...}' -> value, e.g. 'edge_agent_outbox_depth{sink=mqtt}'.")


PAYLOAD_MODELS: dict[str, type[BaseModel]] = {
    "defect": DefectPayload,
    "inspection": InspectionPayload,
    "stop": StopPayload,
    "alarm": AlarmRecordPayload,
    "drift": DriftPayload,
    "model": ModelEventPayload,
    "status": StatusPayload,
    "metrics": MetricsPayload,
}


def payload_schemas() -> dict[str, dict]:
    """kind -> JSON Schema of its payload."""
    return {kind: model.model_json_schema(mode="serialization") for kind, model in PAYLOAD_MODELS.items()}


def schema_text(schema: dict) -> str:
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def write_payload_schemas(directory: Path) -> list[Path]:
    """Write <kind>.schema.json for every payload into `directory`; returns the paths."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for kind, schema in payload_schemas().items():
        path = directory / f"{kind}.schema.json"
        path.write_text(schema_text(schema))
        written.append(path)
    return written
