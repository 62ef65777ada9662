"""Triggered mode: exactly one verdict per part id; UNKNOWN whenever it cannot be trusted."""

from __future__ import annotations

from dataclasses import dataclass

from agent.decision.evaluation import ClassOutcome, frame_verdict, top, unknown_verdict
from agent.decision.state import StationState
from agent.types import Inspection, Result, Verdict


@dataclass(frozen=True)
class PartCheck:
    """Why a part cannot be judged from its inspection, or None when it can."""

    reason: str | None


def precheck(insp: Inspection | None, reason: str | None, rejected: str | None) -> PartCheck:
    """Camera stalled / no frame / inference error / refused inspection -> UNKNOWN."""
    if reason:
        return PartCheck(reason)
    if insp is None:
        return PartCheck("no frame for the part")
    if rejected:
        return PartCheck(f"inspection refused: {rejected}")
    if insp.error:
        return PartCheck(f"inference error: {insp.error}")
    return PartCheck(None)


def part_verdict(st: StationState, part_id: str, insp: Inspection, now: float,
                 outcomes: list[ClassOutcome]) -> tuple[Verdict, ClassOutcome | None]:
    """NG when any watched class is present on the part (no k-of-n: each part is judged on
    its own frame); a late OK is UNKNOWN, never OK. A late NG stays NG (a defect is a defect)."""
    present = [o for o in outcomes if o.best is not None]
    verdict = frame_verdict(st, insp, now, present, part_id=part_id)
    if verdict.result is Result.OK and verdict.budget_exceeded:
        total = verdict.latency_ms["total_ms"]
        reason = f"late frame: {total:.0f} ms > budget {st.cfg.latency_budget_ms:g} ms"
        return unknown_verdict(st, reason, insp, now, part_id=part_id), None
    return verdict, top(present)
