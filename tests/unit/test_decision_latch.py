"""Stop latch and reset, fail-safe policy, command outcomes, drift records, config reload."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from agent.decision.engine import DecisionEngine
from agent.decision.views import Decision
from agent.types import CommandKind, CommandOutcome, OutcomeStatus, RecordKind
from tests.support.decision import LINE, ST, config, engine, insp, rule


def stop_engine(tmp_path: Path, **station: object) -> DecisionEngine:
    return engine(config(tmp_path, [rule(action="stop", clear_after=1)], **station))


def hit(eng: DecisionEngine, seq: int, cls: str = "scratch"):  # noqa: ANN201
    return eng.on_inspection(LINE, ST, insp(seq, (cls, 0.9)), float(seq))


def clean(eng: DecisionEngine, seq: int):  # noqa: ANN201
    return eng.on_inspection(LINE, ST, insp(seq), float(seq))


def test_stop_latches_and_is_not_resent(tmp_path: Path) -> None:
    eng = stop_engine(tmp_path)
    first = hit(eng, 0)
    (stop,) = first.commands
    assert stop.kind is CommandKind.STOP
    view = eng.station_state(LINE, ST)
    assert view.latched and view.state == "stopped" and view.latch_event_id == stop.event_id
    clean(eng, 1)  # incident closes (clear_after=1)
    second = hit(eng, 2)  # a new incident while latched
    assert not second.commands
    kinds = [r.kind for r in second.records]
    assert kinds == [RecordKind.DEFECT, RecordKind.STOP]  # the defect is still reported
    outcome = second.records[1].payload
    assert outcome["status"] == "suppressed" and outcome["kind"] == "stop"
    assert outcome["trigger_event_id"] == second.records[0].id and outcome["attempts"] == 0
    stats = eng.stats()
    assert stats.suppressed_stops == 1 and stats.commands == {"stop": 1} and stats.defects == 2


@pytest.mark.parametrize("source", ["plc", "mqtt:operator-panel", "cli"])
def test_reset_releases_latch(tmp_path: Path, source: str) -> None:
    eng = stop_engine(tmp_path)
    stop_id = hit(eng, 0).commands[0].event_id
    d = eng.reset(LINE, ST, source, 5.0)
    (cmd,) = d.commands
    assert cmd.kind is CommandKind.RESET and cmd.plc == "p1" and cmd.deadline == pytest.approx(5.25)
    (rec,) = d.records
    assert rec.kind is RecordKind.ALARM and cmd.event_id == rec.id
    assert rec.payload["event"] == "reset" and rec.payload["source"] == source
    assert rec.payload["trigger_event_id"] == stop_id
    assert not eng.station_state(LINE, ST).latched and eng.stats().resets == 1
    clean(eng, 1)
    assert [c.kind for c in hit(eng, 2).commands] == [CommandKind.STOP]  # stops again after reset


def test_reset_when_not_latched_still_resets_the_plc(tmp_path: Path) -> None:
    eng = stop_engine(tmp_path)
    d = eng.reset(LINE, ST, "cli", 1.0)
    assert [c.kind for c in d.commands] == [CommandKind.RESET]
    assert d.records[0].payload["trigger_event_id"] is None


def test_reset_of_unknown_station_is_counted(tmp_path: Path) -> None:
    eng = stop_engine(tmp_path)
    assert eng.reset("l9", ST, "cli", 1.0) == Decision()
    assert eng.reset("l9", ST, "cli", 1.0) == Decision()
    assert eng.stats().rejected == {"unknown_station": 2} and eng.stats().resets == 0


def test_station_without_plc_counts_unrouted_commands_and_still_latches(tmp_path: Path) -> None:
    eng = engine(config(tmp_path, [rule(action="stop", clear_after=1)], plc=False))
    d = hit(eng, 0)
    assert not d.commands and d.records[0].kind is RecordKind.DEFECT
    assert eng.stats().unrouted_commands == 1 and eng.station_state(LINE, ST).latched


@pytest.mark.parametrize(("action", "after_s", "calls", "acts_at"), [
    ("alert", 5.0, [0, 1, 4.9, 5.0, 6, 30], 5.0),
    ("alert", 2.0, [10, 11], None),
    ("stop", 2.0, [10, 11, 12, 13], 12),
    ("stop", 0.5, [3, 3.5], 3.5),
])
def test_fail_safe(tmp_path: Path, action: str, after_s: float, calls: list[float],
                   acts_at: float | None) -> None:
    eng = engine(config(tmp_path, fail_safe={"action": action, "after_s": after_s}))
    acted = []
    for t in calls:
        d = eng.on_inspection_impossible(LINE, ST, "camera stalled", t)
        if d.commands or d.records:
            acted.append((t, d))
    if acts_at is None:
        assert not acted and eng.station_state(LINE, ST).state == "inspection_impossible"
        return
    ((t, d),) = acted  # once per episode
    assert t == acts_at
    (cmd,) = d.commands
    assert cmd.kind is (CommandKind.STOP if action == "stop" else CommandKind.ALARM)
    assert "camera stalled" in (cmd.rule or "") and cmd.deadline == pytest.approx(t + 0.25)
    assert cmd.evidence["reason"] == "camera stalled" and cmd.evidence["rule"] == cmd.rule
    assert cmd.evidence["impossible_s"] == pytest.approx(t - calls[0])
    (rec,) = d.records
    assert rec.kind is RecordKind.ALARM and rec.id == cmd.event_id
    assert rec.payload["event"] == "raised" and rec.payload["action"] == action
    assert rec.payload["duration_s"] == pytest.approx(t - calls[0])
    view = eng.station_state(LINE, ST)
    assert view.state == ("stopped" if action == "stop" else "fail_safe")
    assert view.impossible_reason == "camera stalled" and eng.stats().fail_safe_actions == 1


def test_fail_safe_episode_ends_and_a_new_one_acts_again(tmp_path: Path) -> None:
    eng = engine(config(tmp_path, fail_safe={"action": "alert", "after_s": 1.0}))
    eng.on_inspection_impossible(LINE, ST, "model failing", 0.0)
    raised = eng.on_inspection_impossible(LINE, ST, "model failing", 1.0)
    cleared = eng.on_inspection_possible(LINE, ST, 4.0)
    (rec,) = cleared.records
    assert rec.payload["event"] == "cleared" and rec.payload["trigger_event_id"] == raised.records[0].id
    assert rec.payload["duration_s"] == pytest.approx(4.0) and not cleared.commands
    assert eng.station_state(LINE, ST).state == "ok"
    assert not eng.on_inspection_possible(LINE, ST, 5.0).records  # no episode: nothing
    eng.on_inspection_impossible(LINE, ST, "budget overrun", 10.0)
    again = eng.on_inspection_impossible(LINE, ST, "budget overrun", 11.0)
    assert [c.kind for c in again.commands] == [CommandKind.ALARM]
    assert eng.stats().fail_safe_actions == 2


def test_short_episode_ends_silently(tmp_path: Path) -> None:
    eng = engine(config(tmp_path, fail_safe={"action": "stop", "after_s": 5.0}))
    eng.on_inspection_impossible(LINE, ST, "camera stalled", 0.0)
    assert eng.on_inspection_possible(LINE, ST, 4.0) == Decision()
    assert not eng.on_inspection_impossible(LINE, ST, "camera stalled", 6.0).commands  # new episode


def test_fail_safe_counts_from_when_the_picture_froze(tmp_path: Path) -> None:
    """A frozen camera is found frozen_after_s after its picture stopped changing: the
    episode is dated back to then, so after_s counts the whole frozen time."""
    eng = engine(config(tmp_path, fail_safe={"action": "alert", "after_s": 5.0}))
    first = eng.on_inspection_impossible(LINE, ST, "camera stalled", 10.0, since=6.0)
    assert not first.commands
    acted = eng.on_inspection_impossible(LINE, ST, "camera reconnecting", 11.0, since=6.0)
    assert [c.kind for c in acted.commands] == [CommandKind.ALARM]
    assert acted.records[0].payload["duration_s"] == pytest.approx(5.0)
    later = engine(config(tmp_path, fail_safe={"action": "alert", "after_s": 5.0}))
    assert not later.on_inspection_impossible(LINE, ST, "x", 10.0, since=12.0).commands  # not ahead


def test_fail_safe_stop_while_latched_is_suppressed(tmp_path: Path) -> None:
    eng = engine(config(tmp_path, [rule(action="stop")], fail_safe={"action": "stop", "after_s": 1}))
    hit(eng, 0)
    eng.on_inspection_impossible(LINE, ST, "camera stalled", 1.0)
    d = eng.on_inspection_impossible(LINE, ST, "camera stalled", 2.0)
    assert not d.commands
    assert [r.payload.get("event", r.payload.get("status")) for r in d.records] == ["raised", "suppressed"]
    assert eng.stats().suppressed_stops == 1


@pytest.mark.parametrize(("status", "latency", "error"), [
    (OutcomeStatus.ACKED, 12.5, None),
    (OutcomeStatus.FAILED, None, "timeout after 3 attempts"),
    (OutcomeStatus.EXPIRED, None, "deadline passed before send"),
])
def test_outcome_record(tmp_path: Path, status: OutcomeStatus, latency: float | None,
                        error: str | None) -> None:
    eng = stop_engine(tmp_path)
    cmd = hit(eng, 0).commands[0]
    rec = eng.outcome_record(CommandOutcome(cmd, status, 3, 0.3, latency, error))
    p = rec.payload
    assert rec.kind is RecordKind.STOP and p["event_id"] == rec.id and rec.id != cmd.event_id
    assert (p["kind"], p["status"], p["attempts"], p["latency_ms"], p["error"]) == (
        "stop", status.value, 3, latency, error)
    assert p["trigger_event_id"] == cmd.event_id and p["plc"] == "p1" and p["defect_code"] == 101
    assert p["camera"] == "cam1" and p["schema_version"] == 1


def test_drift_record(tmp_path: Path) -> None:
    eng = stop_engine(tmp_path)
    clean(eng, 0)
    rec = eng.drift_record(LINE, ST, {"psi_brightness": 0.31, "psi_score": math.nan}, 0.25)
    p = rec.payload
    assert rec.kind is RecordKind.DRIFT and p["stats"] == {"psi_brightness": 0.31, "psi_score": None}
    assert p["threshold"] == 0.25 and p["model"]["sha256"] == "ab" * 32


def test_update_config_keeps_latch_and_incidents(tmp_path: Path) -> None:
    eng = engine(config(tmp_path, [rule(action="stop", clear_after=5), rule("dent", defect_code=401)]))
    hit(eng, 0)
    hit(eng, 1, "dent")
    new = config(tmp_path, [rule(action="stop", clear_after=5, min_score=0.95)],
                 extra_stations={"st2": {"camera": "cam1", "model": "m1"}})
    eng.update_config(new)
    view = eng.station_state(LINE, ST)
    assert view.latched and [i.defect_class for i in view.open_incidents] == ["scratch"]
    assert eng.station_state(LINE, "st2").state == "ok"
    d = hit(eng, 2)  # 0.9 < new min_score 0.95: a clean frame now
    assert d.verdicts[0].result.value == "OK"
    eng.update_config(config(tmp_path, [rule()]))
    with pytest.raises(KeyError):
        eng.station_state(LINE, "st2")


def test_station_view_and_stats(tmp_path: Path) -> None:
    eng = engine(config(tmp_path, [rule(action="reject", k=1, n=2)]))
    hit(eng, 0)
    clean(eng, 1)
    view = eng.station_state(LINE, ST)
    assert view.state == "incident" and view.mode == "continuous" and not view.latched
    assert view.verdicts == {"NG": 1, "OK": 1} and view.defects == 1
    (inc,) = view.open_incidents
    assert inc.frames == 1 and inc.peak_score == 0.9
    stats = eng.stats()
    assert stats.verdicts == {"NG": 1, "OK": 1} and stats.commands == {"reject": 1}
