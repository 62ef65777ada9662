"""Builds the MES-side Records (payload = the pydantic payload model in JSON mode)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from agent.config.station import DefectRule
from agent.decision.kofn import Mark
from agent.decision.payloads import (
    AlarmPayload,
    DefectPayload,
    DriftPayload,
    FindingOut,
    InspectionPayload,
    Latency,
    ModelRef,
    OutboxLossPayload,
    StopPayload,
)
from agent.decision.rules import rule_text
from agent.decision.state import StationState
from agent.types import CommandOutcome, Finding, Inspection, ModelInfo, Record, RecordKind, Verdict


def model_ref(info: ModelInfo | None) -> ModelRef | None:
    if info is None:
        return None
    return ModelRef(name=info.name, version=info.version, sha256=info.sha256, provider=info.provider)


def latency(values: dict[str, float]) -> Latency | None:
    return Latency.model_validate(values) if values else None


def finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None


@dataclass(frozen=True)
class RecordFactory:
    site: str
    agent_id: str
    ids: Callable[[], str]
    wall: Callable[[], datetime]

    def _record(self, rkind: RecordKind, line: str, station: str, cls: type[BaseModel],
                camera: str | None, event_id: str | None = None, /, **fields: Any) -> Record:
        event_id = event_id or self.ids()
        now = self.wall()
        payload = cls(event_id=event_id, time=now, site=self.site, agent_id=self.agent_id,
                        line=line, station=station, camera=camera, **fields)
        return Record(id=event_id, kind=rkind, payload=payload.model_dump(mode="json"),
                      line=line, station=station, created=now)

    def defect(self, st: StationState, rule: DefectRule, event_id: str, insp: Inspection,
               best: Finding, marks: list[Mark], verdict: Verdict) -> Record:
        """The defect record of a newly opened incident; its id is the incident's event_id."""
        now = self.wall()
        payload = DefectPayload(
            event_id=event_id, time=now, site=self.site, agent_id=self.agent_id, line=st.line,
            station=st.station, camera=st.cfg.camera, part_id=verdict.part_id,
            defect_code=rule.defect_code, defect_class=rule.defect_class, severity=rule.severity,
            action=rule.action, score=max(m.score for m in marks), box=best.box,
            rule=rule_text(rule), frame_seq=insp.frame_seq, frames=[m.seq for m in marks],
            scores=[m.score for m in marks], model=model_ref(insp.model),
            latency=latency(verdict.latency_ms), budget_exceeded=verdict.budget_exceeded)
        return Record(id=event_id, kind=RecordKind.DEFECT, payload=payload.model_dump(mode="json"),
                      line=st.line, station=st.station, created=now)

    def inspection(self, st: StationState, verdict: Verdict, insp: Inspection | None) -> Record:
        best = verdict.findings[0] if verdict.result == "NG" and verdict.findings else None
        return self._record(
            RecordKind.INSPECTION, st.line, st.station, InspectionPayload, st.cfg.camera,
            part_id=verdict.part_id, verdict=verdict.result.value, reason=verdict.reason,
            defect_code=verdict.defect_code, defect_class=verdict.defect_class,
            score=best.score if best else None, box=best.box if best else None,
            rule=verdict.rule, defect_event_id=verdict.event_id,
            frame_seq=insp.frame_seq if insp else None,
            findings=[FindingOut(label=f.label, score=f.score, box=f.box) for f in verdict.findings],
            model=model_ref(insp.model if insp else None), latency=latency(verdict.latency_ms),
            budget_exceeded=verdict.budget_exceeded)

    def outcome(self, outcome: CommandOutcome, camera: str | None) -> Record:
        cmd = outcome.command
        return self._record(
            RecordKind.STOP, cmd.line, cmd.station, StopPayload, camera,
            kind=cmd.kind.value, status=outcome.status.value, attempts=outcome.attempts,
            latency_ms=outcome.latency_ms, error=outcome.error, trigger_event_id=cmd.event_id,
            plc=cmd.plc, defect_code=cmd.defect_code, part_id=cmd.part_id, rule=cmd.rule)

    def alarm(self, st: StationState, event: str, event_id: str | None = None,
              **fields: Any) -> Record:
        return self._record(RecordKind.ALARM, st.line, st.station, AlarmPayload, st.cfg.camera,
                            event_id, event=event, **fields)

    def outbox_loss(self, cause: str, lost: dict[str, int], known: bool, detail: str,
                    path: str | None) -> Record:
        """An agent-level alarm (no line or station: it goes to every sink): records lost."""
        event_id, now = self.ids(), self.wall()
        payload = OutboxLossPayload(
            event_id=event_id, time=now, site=self.site, agent_id=self.agent_id,
            event="records_lost", cause=cause, lost=sum(lost.values()) if known else None,  # type: ignore[arg-type]
            lost_by_sink=lost, detail=detail, path=path)
        return Record(id=event_id, kind=RecordKind.ALARM, payload=payload.model_dump(mode="json"),
                      created=now)

    def drift(self, line: str, station: str, camera: str | None, stats: dict[str, float],
              threshold: float, model: ModelInfo | None) -> Record:
        clean = {k: finite_or_none(float(v)) for k, v in stats.items()}
        return self._record(RecordKind.DRIFT, line, station, DriftPayload, camera,
                            stats=clean, threshold=threshold, model=model_ref(model))
