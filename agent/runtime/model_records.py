"""Records of the model lifecycle: the `model` record of every switch, the rollback alarm."""

from __future__ import annotations

from typing import Any

from agent.decision.payloads import AlarmPayload, ModelEventPayload
from agent.decision.records import model_ref
from agent.types import ModelInfo, Record, RecordKind, new_event_id, utc_now


def _record(kind: RecordKind, cls: Any, site: str, agent_id: str, line: str, station: str,
            camera: str | None, **fields: Any) -> Record:
    event_id, now = new_event_id(), utc_now()
    payload = cls(event_id=event_id, time=now, site=site, agent_id=agent_id, line=line,
                  station=station, camera=camera, **fields)
    return Record(id=event_id, kind=kind, payload=payload.model_dump(mode="json"), line=line,
                  station=station, created=now)


def switch_record(site: str, agent_id: str, line: str, station: str, camera: str | None,
                  event: str, source: str, old: ModelInfo | None, new: ModelInfo,
                  reason: str | None = None) -> Record:
    return _record(RecordKind.MODEL, ModelEventPayload, site, agent_id, line, station, camera,
                   event=event, source=source, old=model_ref(old), new=model_ref(new),
                   reason=reason)


def rollback_alarm(site: str, agent_id: str, line: str, station: str, camera: str | None,
                   reason: str) -> Record:
    """An alarm record `raised` with the rollback's reason (model_rolled_back ...)."""
    return _record(RecordKind.ALARM, AlarmPayload, site, agent_id, line, station, camera,
                   event="raised", reason=reason, action="alert")
