"""One frame through a station's rules: per-class marks, incident steps and the verdict."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

from agent.config.station import DefectRule
from agent.decision.incidents import Step, step
from agent.decision.kofn import Mark
from agent.decision.rules import best_finding, priority, rule_text
from agent.decision.state import StationState
from agent.types import Finding, Inspection, Result, Verdict

NG_STEPS = (Step.OPENED, Step.UPDATED, Step.COOLDOWN)


@dataclass(frozen=True)
class ClassOutcome:
    """What one frame did to one defect class."""

    rule: DefectRule
    best: Finding | None  # the best finding passing the rule, None when the class is absent
    step: Step
    marks: tuple[Mark, ...]  # the window's hits after this frame (evidence)
    event_id: str | None  # the class's open incident, if any


def evaluate(st: StationState, insp: Inspection, now: float,
             new_id: Callable[[], str]) -> list[ClassOutcome]:
    """Feed the frame to every rule of the station (mutates the class tracks)."""
    outcomes = []
    for cls_name, rule in st.rules().items():
        track = st.tracks[cls_name]
        best = best_finding(rule, insp)
        mark = Mark(seq=insp.frame_seq, hit=best is not None, score=best.score if best else 0.0)
        result = step(track, rule, mark, now, new_id)
        event_id = track.incident.event_id if track.incident else None
        outcomes.append(ClassOutcome(rule, best, result, tuple(track.window.hits()), event_id))
    return outcomes


def latency_ms(insp: Inspection, now: float) -> dict[str, float]:
    """Stage breakdown plus capture -> verdict (never less than the sum of the stages)."""
    t = insp.timings
    total = max(t.total_ms, (now - insp.t_capture) * 1000.0)
    return {"frame_age_ms": t.frame_age_ms, "pre_ms": t.pre_ms, "infer_ms": t.infer_ms,
            "post_ms": t.post_ms, "total_ms": total}


def top(outcomes: list[ClassOutcome]) -> ClassOutcome | None:
    """The outcome that decides the verdict: stop over reject over alert, then severity, score."""
    present = [o for o in outcomes if o.best is not None]
    return max(present, key=lambda o: priority(o.rule, o.best.score if o.best else 0.0),
               default=None)


def frame_verdict(st: StationState, insp: Inspection, now: float, deciding: list[ClassOutcome],
                  part_id: str | None = None) -> Verdict:
    """NG when `deciding` holds a present class (the best of them decides), else OK."""
    lat = latency_ms(insp, now)
    ok = Verdict(line=st.line, station=st.station, camera_id=insp.camera_id, result=Result.OK,
                 frame_seq=insp.frame_seq, part_id=part_id or insp.part_id, latency_ms=lat,
                 budget_exceeded=lat["total_ms"] > st.cfg.latency_budget_ms)
    best = top(deciding)
    if best is None or best.best is None:
        return ok
    others = sorted((o.best for o in deciding if o.best is not None and o is not best),
                    key=lambda f: -f.score)
    return replace(ok, result=Result.NG, defect_code=best.rule.defect_code,
                   defect_class=best.rule.defect_class, findings=(best.best, *others),
                   rule=rule_text(best.rule), event_id=best.event_id)


def unknown_verdict(st: StationState, reason: str, insp: Inspection | None, now: float,
                    part_id: str | None = None) -> Verdict:
    """UNKNOWN, never OK: the reason says why (no frame, inference error, late, stalled)."""
    lat = latency_ms(insp, now) if insp is not None else {}
    if not all(math.isfinite(v) for v in lat.values()):
        lat = {}
    return Verdict(line=st.line, station=st.station,
                   camera_id=insp.camera_id if insp else st.cfg.camera, result=Result.UNKNOWN,
                   frame_seq=insp.frame_seq if insp else -1,
                   part_id=part_id or (insp.part_id if insp else None), latency_ms=lat,
                   budget_exceeded=bool(lat) and lat["total_ms"] > st.cfg.latency_budget_ms,
                   reason=reason)
