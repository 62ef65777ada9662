"""Bad input: why an inspection is refused (None = acceptable). Pure, touches no state."""

from __future__ import annotations

import math

from agent.decision.evaluation import latency_ms
from agent.decision.state import StationState
from agent.types import Inspection

UNKNOWN_STATION = "unknown_station"
NAN_SCORE = "nan_score"
BAD_BOX = "bad_box"
BAD_TIMING = "bad_timing"
OUT_OF_ORDER = "out_of_order_seq"
BAD_CLOCK = "bad_clock"


def clock_ok(now: float) -> bool:
    """`now` is the caller's time.monotonic(): anything else is refused (counted)."""
    return math.isfinite(now)


def reject_reason(state: StationState, insp: Inspection, now: float) -> str | None:
    if any(not math.isfinite(f.score) for f in insp.findings):
        return NAN_SCORE
    if any(f.box is not None and not all(math.isfinite(v) for v in f.box) for f in insp.findings):
        return BAD_BOX
    t = insp.timings
    times = (insp.t_capture, t.frame_age_ms, t.pre_ms, t.infer_ms, t.post_ms)
    if not all(math.isfinite(v) for v in times):
        return BAD_TIMING
    if not all(math.isfinite(v) for v in latency_ms(insp, now).values()):
        return BAD_TIMING  # finite parts whose sum overflows
    if state.last_seq is not None and insp.frame_seq <= state.last_seq:
        return OUT_OF_ORDER
    return None
