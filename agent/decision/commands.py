"""Builds PLC commands and applies the stop latch: a latched station never re-sends a stop."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from agent.decision.kofn import Mark
from agent.decision.records import RecordFactory
from agent.decision.state import Latch, StationState
from agent.decision.views import Counters, Decision
from agent.types import Command, CommandKind, CommandOutcome, ModelInfo, OutcomeStatus

log = logging.getLogger(__name__)


def evidence(model: ModelInfo | None, marks: list[Mark], rule: str | None,
             **extra: Any) -> dict[str, Any]:
    """Why the command was issued: frames, scores, rule, model identity and provider."""
    ev: dict[str, Any] = {"frames": [m.seq for m in marks], "scores": [m.score for m in marks],
                          "rule": rule, **extra}
    if model is not None:
        ev["model"] = {"name": model.name, "version": model.version, "sha256": model.sha256}
        ev["provider"] = model.provider
    return ev


@dataclass
class CommandIssuer:
    counters: Counters
    records: RecordFactory

    def build(self, st: StationState, kind: CommandKind, event_id: str, now: float, *,
              defect_code: int = 0, part_id: str | None = None, rule: str | None = None,
              ev: dict[str, Any] | None = None) -> Command:
        return Command(kind=kind, plc=st.cfg.plc or "", line=st.line, station=st.station,
                       event_id=event_id, deadline=now + st.cfg.stop_deadline_ms / 1000,
                       created=now, defect_code=defect_code, part_id=part_id, rule=rule,
                       evidence=ev or {})

    def issue(self, st: StationState, cmd: Command, now: float) -> Decision:
        """Issue `cmd` unless the latch or a missing PLC target says otherwise; counts both."""
        if cmd.kind is CommandKind.STOP:
            if st.latch is not None:
                return self._suppress(st, cmd, now)
            st.latch = Latch(event_id=cmd.event_id, since=now)
        if not st.cfg.plc:
            self.counters.unrouted_commands += 1
            log.warning("%s/%s: %s command for %s not sent: the station has no plc target",
                        st.line, st.station, cmd.kind.value, cmd.event_id)
            return Decision()
        if not _mapped(st, cmd.kind):
            # an alarm/reject/reset with no signal to write: the record still goes to the MES
            self.counters.unrouted_commands += 1
            log.debug("%s/%s: %s not sent to the PLC: no signal mapped for it", st.line,
                      st.station, cmd.kind.value)
            return Decision()
        self.counters.commands[cmd.kind.value] += 1
        return Decision(commands=(cmd,))

    def _suppress(self, st: StationState, cmd: Command, now: float) -> Decision:
        self.counters.suppressed_stops += 1
        log.info("%s/%s: stop for %s not re-sent: latched since event %s", st.line, st.station,
                 cmd.event_id, st.latch.event_id if st.latch else "?")
        outcome = CommandOutcome(command=cmd, status=OutcomeStatus.SUPPRESSED, attempts=0,
                                 t_done=now)
        return Decision(records=(self.records.outcome(outcome, st.cfg.camera),))


def _mapped(st: StationState, kind: CommandKind) -> bool:
    """Has the station a PLC signal this command writes? A stop is always sent (and fails
    loudly when unmapped): a stop must never disappear quietly."""
    sig = st.cfg.signals
    if kind is CommandKind.ALARM:
        return sig.alarm is not None
    if kind is CommandKind.REJECT:
        return sig.reject is not None
    if kind is CommandKind.RESET:
        return sig.stop_request is not None or sig.alarm is not None
    return True
