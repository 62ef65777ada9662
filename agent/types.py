"""Frozen dataclasses that cross module borders (see DESIGN.md, "Contracts").

Capture produces `Frame`; inference turns it into `Inspection`; the decision
engine turns inspections into `Verdict`, `Command` and `Record`. Nothing here
does I/O.
"""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from agent.event_ids import EventIds

new_event_id = EventIds()
"""A UUIDv7 as a string: time-ordered, so ids sort by creation time (agent/event_ids.py)."""


def utc_now() -> datetime:
    return datetime.now(UTC)


def monotonic() -> float:
    return time.monotonic()


@dataclass(frozen=True, slots=True, eq=False)
class Frame:
    """One captured image. `t_capture` is time.monotonic() taken at grab, not at decode."""

    pixels: np.ndarray  # HxWx3 BGR uint8
    camera_id: str
    seq: int
    t_capture: float
    wall_time: datetime
    part_id: str | None = None  # set by sources that know it (synthetic ground truth, trigger)
    truth: str | None = None  # ground-truth label where the source knows it (synthetic)


@dataclass(frozen=True, slots=True)
class Finding:
    """One labelled result decoded from model outputs.

    `box` is (x1, y1, x2, y2) in frame pixel coordinates, or None for whole-frame
    results (classification, anomaly score without a region).
    """

    label: str
    score: float
    box: tuple[float, float, float, float] | None = None


@dataclass(frozen=True, slots=True)
class StageTimings:
    """Milliseconds spent in each stage for one frame."""

    frame_age_ms: float = 0.0  # capture -> inference start
    pre_ms: float = 0.0
    infer_ms: float = 0.0
    post_ms: float = 0.0

    @property
    def total_ms(self) -> float:
        return self.frame_age_ms + self.pre_ms + self.infer_ms + self.post_ms


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """Identity of the model that produced an inspection, for evidence."""

    name: str
    version: str
    sha256: str
    provider: str  # the execution provider that actually ran, e.g. "CPUExecutionProvider"


@dataclass(frozen=True, slots=True, eq=False)
class Inspection:
    """The result of running one model on one frame.

    `error` is set (and `findings` empty) when inference failed for this frame;
    the decision engine turns that into UNKNOWN, never into OK.
    """

    camera_id: str
    frame_seq: int
    t_capture: float
    wall_time: datetime
    model: ModelInfo
    findings: tuple[Finding, ...]
    timings: StageTimings
    frame_shape: tuple[int, int] = (0, 0)  # (height, width) of the frame inspected
    part_id: str | None = None
    truth: str | None = None
    error: str | None = None
    frame: Frame | None = field(default=None, repr=False)  # kept for drift/evidence; may be None


class Result(enum.StrEnum):
    OK = "OK"
    NG = "NG"
    UNKNOWN = "UNKNOWN"


@dataclass(frozen=True, slots=True, eq=False)
class Verdict:
    """The decision for one inspection (continuous) or one part (triggered)."""

    line: str
    station: str
    camera_id: str
    result: Result
    frame_seq: int
    part_id: str | None = None
    defect_code: int = 0
    defect_class: str | None = None
    findings: tuple[Finding, ...] = ()
    rule: str | None = None  # the rule that fired, e.g. "scratch>=0.80 k2/n3 -> stop"
    latency_ms: dict[str, float] = field(default_factory=dict)
    budget_exceeded: bool = False
    event_id: str | None = None
    reason: str | None = None  # why UNKNOWN (late frame, inference error, camera stalled)


class CommandKind(enum.StrEnum):
    STOP = "stop"
    REJECT = "reject"
    ALARM = "alarm"  # reset-able alarm (fail-safe alert to the PLC)
    RESET = "reset"  # operator reset of a latched stop (agent side)


@dataclass(frozen=True, slots=True)
class Command:
    """A PLC action with a hard deadline (monotonic seconds). Never sent after it."""

    kind: CommandKind
    plc: str  # PLC target name from config
    line: str
    station: str
    event_id: str
    deadline: float
    created: float
    defect_code: int = 0
    part_id: str | None = None
    rule: str | None = None
    evidence: dict[str, Any] = field(default_factory=dict)  # frames, scores, model hash, provider

    def expired(self, now: float | None = None) -> bool:
        return (time.monotonic() if now is None else now) >= self.deadline


class RecordKind(enum.StrEnum):
    DEFECT = "defect"
    INSPECTION = "inspection"
    STOP = "stop"  # command outcomes
    DRIFT = "drift"
    ALARM = "alarm"
    MODEL = "model"  # a station's production model changed (promote, reload, rollback)


@dataclass(frozen=True, slots=True)
class Record:
    """What goes to the MES side through the durable outbox.

    `payload` is JSON-serialisable and carries `schema_version`. `line` and
    `station` route it to a topic / URL / file; both are None for agent-level
    records. `payload_json` is the payload exactly as the outbox stored it
    (compact JSON), set on records read back from the outbox so that a sink can
    send those bytes instead of encoding the payload again; a sink that only
    sends those (`sends_stored_json`) gets records whose `payload` was not decoded
    (empty): `agent.protocols.base.wire_payload` decodes it when needed.
    """

    id: str
    kind: RecordKind
    payload: dict[str, Any]
    line: str | None = None
    station: str | None = None
    created: datetime = field(default_factory=utc_now)
    replayed: bool = False
    payload_json: str | None = field(default=None, compare=False, repr=False)


class OutcomeStatus(enum.StrEnum):
    ACKED = "acked"  # the PLC acknowledged the write within the deadline
    UNCONFIRMED = "unconfirmed"  # sent, no answer by the deadline: may have taken effect
    FAILED = "failed"  # refused by the PLC, or never sent (answered busy until the deadline)
    EXPIRED = "expired"  # the deadline passed before it could be sent: never sent
    SUPPRESSED = "suppressed"  # not re-sent: the station is already latched stopped


@dataclass(frozen=True, slots=True)
class CommandOutcome:
    """What happened to one Command; goes to the audit log and as a `stop` record."""

    command: Command
    status: OutcomeStatus
    attempts: int
    t_done: float  # monotonic
    latency_ms: float | None = None  # decision (command.created) -> PLC acknowledgement
    error: str | None = None
