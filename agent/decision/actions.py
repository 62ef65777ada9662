"""What incident steps cause: one defect record and one action per opened incident."""

from __future__ import annotations

import logging
from collections.abc import Callable

from agent.decision.commands import CommandIssuer, evidence
from agent.decision.evaluation import ClassOutcome
from agent.decision.incidents import Step
from agent.decision.records import RecordFactory
from agent.decision.rules import rule_text
from agent.decision.state import StationState
from agent.decision.views import Counters, Decision
from agent.types import CommandKind, Inspection, Verdict

log = logging.getLogger(__name__)

# in triggered mode each part gets its own reject (see triggered.py), not one per incident
INCIDENT_COMMANDS = {
    "continuous": {"reject": CommandKind.REJECT, "stop": CommandKind.STOP},
    "triggered": {"stop": CommandKind.STOP},
}


def incident_actions(st: StationState, outcomes: list[ClassOutcome], insp: Inspection,
                     verdict: Verdict, now: float, issuer: CommandIssuer,
                     records: RecordFactory, counters: Counters) -> Decision:
    out = Decision()
    for o in outcomes:
        if o.step is Step.COOLDOWN:
            counters.cooldown_suppressed += 1
        elif o.step is Step.OPENED:
            out += _opened(st, o, insp, verdict, now, issuer, records, counters)
    return out


def _opened(st: StationState, o: ClassOutcome, insp: Inspection, verdict: Verdict, now: float,
            issuer: CommandIssuer, records: RecordFactory, counters: Counters) -> Decision:
    assert o.best is not None and o.event_id is not None  # OPENED only on a present class
    counters.defects += 1
    st.defects += 1
    marks = list(o.marks)
    log.info("%s/%s: defect %s (code %d) confirmed on frames %s -> %s", st.line, st.station,
             o.rule.defect_class, o.rule.defect_code, [m.seq for m in marks], o.rule.action)
    out = Decision(records=(records.defect(st, o.rule, o.event_id, insp, o.best, marks, verdict),))
    kind = INCIDENT_COMMANDS[st.cfg.mode].get(o.rule.action)
    if kind is None:
        return out
    text = rule_text(o.rule)
    cmd = issuer.build(st, kind, o.event_id, now, defect_code=o.rule.defect_code,
                       part_id=verdict.part_id, rule=text, ev=evidence(insp.model, marks, text))
    return out + issuer.issue(st, cmd, now)


def part_reject(st: StationState, outcome: ClassOutcome | None, insp: Inspection,
                verdict: Verdict, now: float, issuer: CommandIssuer,
                new_id: Callable[[], str]) -> Decision:
    """Triggered mode: an NG part whose deciding rule rejects or stops gets a reject pulse."""
    if outcome is None or outcome.best is None or outcome.rule.action == "alert":
        return Decision()
    text = rule_text(outcome.rule)
    ev = evidence(insp.model, [m for m in outcome.marks if m.seq == insp.frame_seq], text)
    cmd = issuer.build(st, CommandKind.REJECT, verdict.event_id or new_id(), now,
                       defect_code=outcome.rule.defect_code, part_id=verdict.part_id,
                       rule=text, ev=ev)
    return issuer.issue(st, cmd, now)
