"""Property tests of the decision engine (hypothesis)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hs

from agent.decision.engine import DecisionEngine
from agent.decision.views import Decision
from agent.types import CommandKind, Finding, Inspection, RecordKind, StageTimings
from tests.support.decision import LINE, MODEL, ST, T0, config, engine, insp, rule

SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("decision")


rules_st = hs.builds(
    lambda n, kf, clear, cool: rule(action="stop", n=n, k=max(1, math.ceil(kf * n)),
                                    clear_after=clear, cooldown_s=cool, min_score=0.5),
    hs.integers(1, 6), hs.floats(0.01, 1.0), hs.integers(1, 4), hs.sampled_from([0.0, 2.0]))
# a frame: score of the scratch finding (None = clean), or "err" (inference failed)
frames_st = hs.lists(hs.one_of(hs.none(), hs.floats(0.0, 1.0), hs.just("err")), max_size=60)


def feed(eng: DecisionEngine, frames: list[object]) -> list[tuple[object, Decision]]:
    out = []
    for seq, f in enumerate(frames):
        if f == "err":
            i = insp(seq, error="boom")
        elif f is None:
            i = insp(seq)
        else:
            i = insp(seq, ("scratch", float(f)))  # type: ignore[arg-type]
        out.append((f, eng.on_inspection(LINE, ST, i, float(seq))))
    return out


@SETTINGS
@given(r=rules_st, frames=frames_st)
def test_no_stop_without_k_confirming_frames_in_last_n(base: Path, r: dict, frames: list) -> None:
    cfg = config(base, [r])
    eng = engine(cfg)
    k, n = cfg.lines[LINE].stations[ST].rules[0].k, r["n"]
    judged: list[bool] = []  # hit/clean of every frame that was judged (errors are not)
    for f, d in feed(eng, frames):
        if f != "err":
            judged.append(f is not None and f >= 0.5)
        for cmd in d.commands:
            assert cmd.kind is CommandKind.STOP
            assert judged[-1] and sum(judged[-n:]) >= k
            assert len(cmd.evidence["frames"]) >= k and len(cmd.evidence["frames"]) <= n


@SETTINGS
@given(r=rules_st, frames=frames_st)
def test_exactly_one_defect_record_per_incident(base: Path, r: dict, frames: list) -> None:
    eng = engine(config(base, [r]))
    incidents: set[str] = set()
    defects: list[str] = []
    for _, d in feed(eng, frames):
        defects += [rec.id for rec in d.records if rec.kind is RecordKind.DEFECT]
        incidents |= {i.event_id for i in eng.station_state(LINE, ST).open_incidents}
        incidents |= {v.event_id for v in d.verdicts if v.event_id}
    assert len(defects) == len(set(defects)) and set(defects) == incidents
    assert eng.stats().defects == len(defects)


floats_any = hs.floats(allow_nan=True, allow_infinity=True)
finding_st = hs.builds(
    Finding, hs.sampled_from(["scratch", "dent", "crack", ""]) | hs.text(max_size=5),
    floats_any, hs.none() | hs.tuples(floats_any, floats_any, floats_any, floats_any))
insp_st = hs.builds(
    lambda seq, fs, t, err, shape, timings, part: Inspection(
        camera_id="cam1", frame_seq=seq, t_capture=t, wall_time=T0, model=MODEL,
        findings=tuple(fs), timings=timings, frame_shape=shape, error=err, part_id=part),
    hs.integers(-5, 40), hs.lists(finding_st, max_size=4), floats_any,
    hs.none() | hs.just("failed"), hs.tuples(hs.integers(0, 500), hs.integers(0, 500)),
    hs.builds(StageTimings, floats_any, floats_any, floats_any, floats_any),
    hs.none() | hs.text(max_size=4))
op_st = hs.tuples(
    hs.sampled_from(["insp", "insp", "insp", "part", "impossible", "possible", "reset"]),
    hs.sampled_from([ST, ST, ST, "ghost"]), insp_st,
    hs.floats(-1e9, 1e12) | hs.sampled_from([math.nan, math.inf]), hs.text(max_size=4))


def apply(eng: DecisionEngine, op: tuple) -> Decision:
    kind, station, i, now, text = op
    if kind == "insp":
        return eng.on_inspection(LINE, station, i, now)
    if kind == "part":
        return eng.on_part(LINE, station, text, i if text else None, now, text or None)
    if kind == "impossible":
        return eng.on_inspection_impossible(LINE, station, text or "stalled", now)
    if kind == "possible":
        return eng.on_inspection_possible(LINE, station, now)
    return eng.reset(LINE, station, "cli", now)


@SETTINGS
@given(ops=hs.lists(op_st, max_size=25), mode=hs.sampled_from(["continuous", "triggered"]))
def test_never_raises_and_emits_strict_json(base: Path, ops: list, mode: str) -> None:
    eng = engine(config(base, [rule(action="stop", k=2, n=3, roi=[0.1, 0.1, 0.9, 0.9]),
                               rule("dent", action="reject", defect_code=401)], mode=mode,
                        publish_inspections=True))
    for op in ops:
        d = apply(eng, op)
        for rec in d.records:
            json.dumps(rec.payload, allow_nan=False)
        for cmd in d.commands:
            assert cmd.plc == "p1"
    stats = eng.stats()
    assert sum(stats.verdicts.values()) <= len(ops)


def snapshot(eng: DecisionEngine) -> str:
    st = eng._stations[(LINE, ST)]
    tracks = {c: (list(t.window.window), repr(t.incident), t.closed_at) for c, t in st.tracks.items()}
    return repr((tracks, st.last_seq, st.latch, st.episode, dict(st.verdicts), st.defects,
                 list(st.recent_parts), eng.station_state(LINE, ST)))


@SETTINGS
@given(good=hs.lists(hs.one_of(hs.none(), hs.floats(0.0, 1.0)), max_size=10), bad=insp_st,
       station=hs.sampled_from([ST, "ghost"]))
def test_rejected_inspections_leave_state_untouched(base: Path, good: list, bad: Inspection,
                                                    station: str) -> None:
    eng = engine(config(base, [rule(k=2, n=3)]))
    feed(eng, good)
    before, rejected_before = snapshot(eng), sum(eng.stats().rejected.values())
    d = eng.on_inspection(LINE, station, bad, 100.0)
    rejected = sum(eng.stats().rejected.values()) - rejected_before
    if rejected:
        assert rejected == 1 and d == Decision() and snapshot(eng) == before
    else:
        assert station == ST and len(d.verdicts) == 1
        assert not good or bad.frame_seq >= len(good)
        assert all(math.isfinite(f.score) for f in bad.findings)
