"""Decision rules, table-driven: k-of-n, hysteresis, cool-down, min score, ROI, actions, verdicts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agent.decision.engine import DecisionEngine
from agent.types import CommandKind, Finding, RecordKind, Result, StageTimings
from tests.support.decision import LINE, MODEL, ST, config, engine, insp, rule


def run(eng: DecisionEngine, pattern: str, score: float = 0.9, t0: float = 0.0) -> list[Any]:
    """Feed one frame per character ('X' = scratch at `score`, '.' = clean), frame i at t0+i s."""
    out = []
    for i, ch in enumerate(pattern):
        findings = [("scratch", score)] if ch == "X" else []
        out.append(eng.on_inspection(LINE, ST, insp(i, *findings, now=t0 + i), t0 + i))
    return out


def defect_frames(decisions: list[Any]) -> list[int]:
    return [i for i, d in enumerate(decisions) for r in d.records if r.kind is RecordKind.DEFECT]


@pytest.mark.parametrize(("k", "n", "pattern", "opens_at"), [
    (1, 1, "X", [0]),
    (1, 1, "..X", [2]),
    (2, 3, "X", []),
    (2, 3, "XX", [1]),
    (2, 3, "X.X", [2]),
    (2, 3, "X..X", []),  # the first hit fell out of the window of 3
    (2, 3, "X..X.X", [5]),
    (3, 5, "X.X.X", [4]),
    (3, 5, "XX..X", [4]),
    (3, 5, "X..X.X", []),
    (3, 3, "XX.XX.", []),  # never 3 of the last 3
])
def test_k_of_n(tmp_path: Path, k: int, n: int, pattern: str, opens_at: list[int]) -> None:
    eng = engine(config(tmp_path, [rule(k=k, n=n, clear_after=10)]))
    assert defect_frames(run(eng, pattern)) == opens_at


@pytest.mark.parametrize(("clear_after", "pattern", "open_after", "defects"), [
    (3, "X..", True, 1),     # 2 clean frames: still open
    (3, "X...", False, 1),   # 3 clean frames: closed
    (3, "X.X..", True, 1),   # a hit resets the clean streak
    (3, "X.X...", False, 1),
    (1, "X.X", True, 2),     # closed after one clean frame, then a new incident
    (3, "X...X", True, 2),
    (2, "XXXXXX", True, 1),  # frames of an ongoing incident never re-alert
])
def test_hysteresis(tmp_path: Path, clear_after: int, pattern: str, open_after: bool,
                    defects: int) -> None:
    eng = engine(config(tmp_path, [rule(clear_after=clear_after)]))
    got = defect_frames(run(eng, pattern))
    assert len(got) == defects
    assert bool(eng.station_state(LINE, ST).open_incidents) is open_after


def test_ongoing_incident_updates_without_records(tmp_path: Path) -> None:
    eng = engine(config(tmp_path, [rule(action="reject")]))
    ds = run(eng, "XXXX", score=0.8)
    assert [len(d.records) for d in ds] == [1, 0, 0, 0] and [len(d.commands) for d in ds] == [1, 0, 0, 0]
    (inc,) = eng.station_state(LINE, ST).open_incidents
    assert inc.frames == 4 and inc.defect_code == 101 and inc.event_id == ds[0].records[0].id
    assert all(d.verdicts[0].event_id == inc.event_id for d in ds)


@pytest.mark.parametrize(("cooldown_s", "gap_s", "reopens"), [
    (0.0, 1, True),
    (5.0, 4, False),
    (5.0, 5, True),   # exactly cooldown_s after the close: allowed
    (5.0, 6, True),
])
def test_cooldown(tmp_path: Path, cooldown_s: float, gap_s: int, reopens: bool) -> None:
    eng = engine(config(tmp_path, [rule(clear_after=1, cooldown_s=cooldown_s)]))
    run(eng, "X.")  # opens at t=0, closes at t=1
    d = eng.on_inspection(LINE, ST, insp(2, ("scratch", 0.9), now=1 + gap_s), 1 + gap_s)
    assert any(r.kind is RecordKind.DEFECT for r in d.records) is reopens
    assert eng.stats().cooldown_suppressed == (0 if reopens else 1)
    assert d.verdicts[0].result is Result.NG  # a confirmed defect is NG even in cool-down


def test_cooldown_opens_once_it_expires_if_defect_persists(tmp_path: Path) -> None:
    eng = engine(config(tmp_path, [rule(clear_after=1, cooldown_s=3)]))
    ds = run(eng, "X.XXXX")  # closes at t=1; t=2,3 in cool-down; t=4 reopens; t=5 ongoing
    assert defect_frames(ds) == [0, 4]
    assert eng.stats().cooldown_suppressed == 2


@pytest.mark.parametrize(("min_score", "score", "hit"), [
    (0.7, 0.69, False), (0.7, 0.7, True), (0.7, 0.95, True), (0.0, 0.0, True),
])
def test_min_score(tmp_path: Path, min_score: float, score: float, hit: bool) -> None:
    eng = engine(config(tmp_path, [rule(min_score=min_score)]))
    (d,) = run(eng, "X", score=score)
    assert (d.verdicts[0].result is Result.NG) is hit


ROI = [0.25, 0.0, 0.75, 1.0]  # middle half of a 200 px wide frame: x 50..150


@pytest.mark.parametrize(("box", "shape", "inside"), [
    ((90, 10, 110, 30), (100, 200), True),     # centre x=100
    ((0, 10, 20, 30), (100, 200), False),      # centre x=10
    ((180, 10, 200, 30), (100, 200), False),   # centre x=190
    ((40, 10, 60, 30), (100, 200), True),      # centre x=50: on the edge counts inside
    ((0, 0, 200, 100), (100, 200), True),      # big box, centre inside
    (None, (100, 200), True),                  # whole-frame finding: always inside
    ((0, 10, 20, 30), (0, 0), True),           # frame size unknown: never thrown away
])
def test_roi(tmp_path: Path, box: tuple[float, float, float, float] | None,
             shape: tuple[int, int], inside: bool) -> None:
    eng = engine(config(tmp_path, [rule(roi=ROI)]))
    d = eng.on_inspection(LINE, ST, insp(0, Finding("scratch", 0.9, box), shape=shape), 0.0)
    assert (d.verdicts[0].result is Result.NG) is inside
    assert any(r.kind is RecordKind.DEFECT for r in d.records) is inside


def test_finding_of_unwatched_class_is_ignored(tmp_path: Path) -> None:
    eng = engine(config(tmp_path, [rule("scratch")]))
    d = eng.on_inspection(LINE, ST, insp(0, ("dent", 0.99)), 0.0)
    assert d.verdicts[0].result is Result.OK and not d.records


@pytest.mark.parametrize(("action", "kind"), [
    ("alert", None), ("reject", CommandKind.REJECT), ("stop", CommandKind.STOP),
])
def test_action_command_with_deadline_and_evidence(tmp_path: Path, action: str,
                                                   kind: CommandKind | None) -> None:
    eng = engine(config(tmp_path, [rule(action=action, k=2, n=3)], stop_deadline_ms=300))
    ds = run(eng, "XX", score=0.85, t0=100.0)
    assert not ds[0].commands
    cmds = ds[1].commands
    if kind is None:
        assert not cmds and eng.stats().commands == {}
        return
    (cmd,) = cmds
    assert cmd.kind is kind and cmd.plc == "p1" and (cmd.line, cmd.station) == (LINE, ST)
    assert cmd.created == 101.0 and cmd.deadline == pytest.approx(101.3)
    assert cmd.defect_code == 101 and cmd.rule == f"scratch>=0.50 k2/n3 -> {action}"
    assert cmd.event_id == ds[1].records[0].id
    assert cmd.evidence["frames"] == [0, 1] and cmd.evidence["scores"] == [0.85, 0.85]
    assert cmd.evidence["model"] == {"name": MODEL.name, "version": MODEL.version,
                                     "sha256": MODEL.sha256}
    assert cmd.evidence["provider"] == "CPUExecutionProvider"
    assert eng.stats().commands == {kind.value: 1}


def test_defect_record_payload(tmp_path: Path) -> None:
    eng = engine(config(tmp_path, [rule(k=2, n=3, severity="critical", action="stop",
                                        defect_code=301)]))
    t = StageTimings(frame_age_ms=5, pre_ms=2, infer_ms=20, post_ms=1)
    eng.on_inspection(LINE, ST, insp(7, Finding("scratch", 0.8, (1, 2, 3, 4)), timings=t), 7.0)
    d = eng.on_inspection(LINE, ST, insp(9, Finding("scratch", 0.9, (5, 6, 7, 8)), timings=t,
                                         part_id="P9"), 9.05)
    (rec,) = [r for r in d.records if r.kind is RecordKind.DEFECT]
    p = rec.payload
    assert p["schema_version"] == 1 and p["event_id"] == rec.id and (rec.line, rec.station) == (LINE, ST)
    assert (p["site"], p["agent_id"], p["line"], p["station"], p["camera"]) == ("plant", "box1", LINE, ST, "cam1")
    assert p["time"].endswith("Z") and p["part_id"] == "P9" and p["verdict"] == "NG"
    assert (p["defect_code"], p["defect_class"], p["severity"], p["action"]) == (301, "scratch", "critical", "stop")
    assert p["score"] == 0.9 and p["box"] == [5, 6, 7, 8] and p["frames"] == [7, 9] and p["frame_seq"] == 9
    assert p["rule"] == "scratch>=0.50 k2/n3 -> stop"
    assert p["model"] == {"name": MODEL.name, "version": MODEL.version, "sha256": MODEL.sha256,
                          "provider": MODEL.provider}
    assert p["latency"]["infer_ms"] == 20 and p["latency"]["total_ms"] == pytest.approx(50.0)
    assert p["budget_exceeded"] is False


@pytest.mark.parametrize(("age_s", "budget_ms", "exceeded"), [
    (0.05, 100, False), (0.1, 100, False), (0.101, 100, True), (2.0, 1000, True),
])
def test_budget_exceeded_is_still_delivered(tmp_path: Path, age_s: float, budget_ms: int,
                                            exceeded: bool) -> None:
    eng = engine(config(tmp_path, [rule(action="stop")], latency_budget_ms=budget_ms))
    d = eng.on_inspection(LINE, ST, insp(0, ("scratch", 0.9), now=10.0), 10.0 + age_s)
    v = d.verdicts[0]
    assert v.budget_exceeded is exceeded and v.result is Result.NG and len(d.commands) == 1
    assert v.latency_ms["total_ms"] == pytest.approx(age_s * 1000)


def test_stages_sum_is_the_floor_of_total_latency(tmp_path: Path) -> None:
    eng = engine(config(tmp_path, latency_budget_ms=50))
    t = StageTimings(frame_age_ms=30, infer_ms=40)
    d = eng.on_inspection(LINE, ST, insp(0, timings=t, now=5.0), 5.0)
    assert d.verdicts[0].latency_ms["total_ms"] == 70 and d.verdicts[0].budget_exceeded


def test_verdict_ng_only_for_confirmed_defects(tmp_path: Path) -> None:
    eng = engine(config(tmp_path, [rule(k=2, n=2, clear_after=2)]))
    results = [d.verdicts[0].result for d in run(eng, "XXX.X..")]
    assert results == [Result.OK, Result.NG, Result.NG, Result.OK, Result.NG, Result.OK, Result.OK]


def test_stop_rule_decides_over_reject_rule(tmp_path: Path) -> None:
    eng = engine(config(tmp_path, [rule("scratch", action="reject", defect_code=101),
                                   rule("crack", action="stop", defect_code=301)]))
    d = eng.on_inspection(LINE, ST, insp(0, ("scratch", 0.99), ("crack", 0.6)), 0.0)
    v = d.verdicts[0]
    assert v.defect_code == 301 and v.defect_class == "crack"
    assert [f.label for f in v.findings] == ["crack", "scratch"]
    assert sorted(c.kind.value for c in d.commands) == ["reject", "stop"]
    assert sum(r.kind is RecordKind.DEFECT for r in d.records) == 2


def test_inference_error_is_unknown_and_leaves_windows_alone(tmp_path: Path) -> None:
    eng = engine(config(tmp_path, [rule(k=2, n=2)]))
    eng.on_inspection(LINE, ST, insp(0, ("scratch", 0.9)), 0.0)
    d = eng.on_inspection(LINE, ST, insp(1, error="onnxruntime: bad input"), 1.0)
    assert d.verdicts[0].result is Result.UNKNOWN and "onnxruntime: bad input" in (d.verdicts[0].reason or "")
    d = eng.on_inspection(LINE, ST, insp(2, ("scratch", 0.9)), 2.0)
    assert defect_frames([d]) == [0]  # frames 0 and 2 confirm: the error frame was not "clean"
    assert eng.stats().verdicts == {"OK": 1, "UNKNOWN": 1, "NG": 1}


@pytest.mark.parametrize(("publish", "records"), [(False, 0), (True, 3)])
def test_inspection_records_only_when_published(tmp_path: Path, publish: bool, records: int) -> None:
    eng = engine(config(tmp_path, publish_inspections=publish))
    ds = run(eng, ".X.")
    insp_recs = [r for d in ds for r in d.records if r.kind is RecordKind.INSPECTION]
    assert len(insp_recs) == records
    if publish:
        assert [r.payload["verdict"] for r in insp_recs] == ["OK", "NG", "OK"]
        assert insp_recs[1].payload["defect_event_id"] == ds[1].records[0].id
        assert insp_recs[1].payload["findings"] == [{"label": "scratch", "score": 0.9, "box": None}]


@pytest.mark.parametrize(("station", "bad", "now", "reason"), [
    ("ghost", insp(5), 5.0, "unknown_station"),
    (ST, insp(5, ("scratch", float("nan"))), 5.0, "nan_score"),
    (ST, insp(5, ("scratch", float("inf"))), 5.0, "nan_score"),
    (ST, insp(5, Finding("scratch", 0.9, (0, 0, float("nan"), 1))), 5.0, "bad_box"),
    (ST, insp(5, timings=StageTimings(infer_ms=float("nan"))), 5.0, "bad_timing"),
    (ST, insp(5, now=-1e308), 1e308, "bad_timing"),  # finite, but the latency overflows
    (ST, insp(2), 5.0, "out_of_order_seq"),
    (ST, insp(3), 5.0, "out_of_order_seq"),  # a repeated frame is out of order too
    (ST, insp(5), float("nan"), "bad_clock"),
])
def test_bad_input_is_refused_and_counted(tmp_path: Path, station: str, bad: Any, now: float,
                                          reason: str) -> None:
    eng = engine(config(tmp_path, [rule(k=2, n=3)]))
    run(eng, "..XX")  # frames 0..3, incident open
    before = eng.station_state(LINE, ST)
    d = eng.on_inspection(LINE, station, bad, now)
    assert not d.verdicts and not d.commands and not d.records
    assert eng.stats().rejected == {reason: 1}
    assert eng.station_state(LINE, ST) == before
    ok = eng.on_inspection(LINE, ST, insp(4, ("scratch", 0.9)), 4.0)  # the next good frame is fine
    assert ok.verdicts[0].result is Result.NG and not ok.records  # same incident, no re-alert


@pytest.mark.parametrize("action,signals,sent", [
    ("reject", {"stop_request": "coil:0"}, False),  # no reject signal: record only
    ("reject", {"reject": "coil:1"}, True),
    ("stop", {"reject": "coil:1"}, True),  # a stop is never dropped quietly
])
def test_commands_only_for_mapped_signals(tmp_path: Path, action: str, signals: dict[str, str],
                                          sent: bool) -> None:
    eng = engine(config(tmp_path, [rule(action=action)], signals=signals))
    out = eng.on_inspection(LINE, ST, insp(1, ("scratch", 0.9)), 1.0)
    assert [r.kind for r in out.records] == [RecordKind.DEFECT]
    assert [c.kind.value for c in out.commands] == ([action] if sent else [])
    assert eng.stats().unrouted_commands == (0 if sent else 1)
