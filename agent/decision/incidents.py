"""Incident lifecycle of one defect class: open on k-of-n, update, close after m clean frames."""

from __future__ import annotations

import enum
from collections.abc import Callable

from agent.config.station import DefectRule
from agent.decision.kofn import Mark
from agent.decision.state import ClassTrack, Incident


class Step(enum.Enum):
    NONE = "none"  # nothing changed that anyone outside needs to know
    OPENED = "opened"  # a confirmed defect opened an incident: one record, one action
    UPDATED = "updated"  # another frame of the ongoing incident: never re-alerts
    CLOSED = "closed"  # clear_after clean frames in a row
    COOLDOWN = "cooldown"  # confirmed, but the previous incident closed less than cooldown_s ago


def step(track: ClassTrack, rule: DefectRule, mark: Mark, now: float,
         new_id: Callable[[], str]) -> Step:
    """Feed one frame's mark for this class into its window and incident."""
    track.window.push(mark)
    if track.incident is not None:
        return _ongoing(track, track.incident, rule, mark, now)
    if not (mark.hit and track.window.confirmed()):
        return Step.NONE
    if track.closed_at is not None and now - track.closed_at < rule.cooldown_s:
        return Step.COOLDOWN
    hits = track.window.hits()
    track.incident = Incident(event_id=new_id(), opened=now, frames=len(hits),
                              peak_score=max(m.score for m in hits))
    return Step.OPENED


def _ongoing(track: ClassTrack, inc: Incident, rule: DefectRule, mark: Mark, now: float) -> Step:
    if mark.hit:
        inc.frames += 1
        inc.peak_score = max(inc.peak_score, mark.score)
        inc.clean_streak = 0
        return Step.UPDATED
    inc.clean_streak += 1
    if inc.clean_streak < rule.clear_after:
        return Step.NONE
    track.incident = None
    track.closed_at = now
    track.window.clear()  # a new incident needs k fresh confirming frames
    return Step.CLOSED
