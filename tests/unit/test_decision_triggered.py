"""Triggered mode: exactly one verdict per part id; UNKNOWN whenever it cannot be trusted."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from agent.decision.engine import DecisionEngine
from agent.types import CommandKind, Finding, Inspection, RecordKind, Result
from tests.support.decision import LINE, ST, config, engine, insp, rule


def trig_engine(tmp_path: Path, **station: object) -> DecisionEngine:
    rules = [rule("scratch", action="reject", defect_code=101),
             rule("crack", action="stop", k=2, n=3, defect_code=301),
             rule("dent", action="alert", defect_code=401)]
    return engine(config(tmp_path, rules, mode="triggered", latency_budget_ms=100,
                         publish_inspections=True, **station))


CASES = [
    # name, inspection, reason, now, result, reason fragment, reject?
    ("clean part", insp(1, now=1.0), None, 1.05, Result.OK, None, False),
    ("scratched part", insp(1, ("scratch", 0.9), now=1.0), None, 1.0, Result.NG, None, True),
    ("dent: alert only", insp(1, ("dent", 0.9), now=1.0), None, 1.0, Result.NG, None, False),
    ("no frame", None, None, 1.0, Result.UNKNOWN, "no frame", False),
    ("inference failed", insp(1, error="CUDA OOM", now=1.0), None, 1.0, Result.UNKNOWN,
     "inference error: CUDA OOM", False),
    ("camera stalled", None, "camera stalled", 1.0, Result.UNKNOWN, "camera stalled", False),
    ("stalled wins over a frame", insp(1, ("scratch", 0.9), now=1.0), "camera stalled", 1.0,
     Result.UNKNOWN, "camera stalled", False),
    ("late frame is never a late OK", insp(1, now=1.0), None, 1.2, Result.UNKNOWN,
     "late frame: 200 ms > budget 100 ms", False),
    ("late defect is still NG", insp(1, ("scratch", 0.9), now=1.0), None, 1.2, Result.NG, None,
     True),
    ("NaN score refused", insp(1, ("scratch", math.nan), now=1.0), None, 1.0, Result.UNKNOWN,
     "inspection refused: nan_score", False),
]


@pytest.mark.parametrize(("name", "inspection", "reason", "now", "result", "why", "rejects"),
                         CASES, ids=[c[0] for c in CASES])
def test_part_verdict(tmp_path: Path, name: str, inspection: Inspection | None,
                      reason: str | None, now: float, result: Result, why: str | None,
                      rejects: bool) -> None:
    eng = trig_engine(tmp_path)
    d = eng.on_part(LINE, ST, "P-1", inspection, now, reason)
    (v,) = d.verdicts
    assert v.result is result and v.part_id == "P-1" and v.station == ST
    assert v.reason == why if why is None else why in (v.reason or "")
    assert [c.kind for c in d.commands] == ([CommandKind.REJECT] if rejects else [])
    if rejects:
        assert d.commands[0].part_id == "P-1" and d.commands[0].defect_code == 101
    (rec,) = [r for r in d.records if r.kind is RecordKind.INSPECTION]
    assert rec.payload["verdict"] == result.value and rec.payload["part_id"] == "P-1"
    assert rec.payload["reason"] == v.reason
    assert eng.stats().verdicts == {result.value: 1}


def test_exactly_one_verdict_per_part_id(tmp_path: Path) -> None:
    eng = trig_engine(tmp_path)
    assert len(eng.on_part(LINE, ST, "P-1", insp(1, now=1.0), 1.0).verdicts) == 1
    again = eng.on_part(LINE, ST, "P-1", insp(2, ("scratch", 0.9), now=2.0), 2.0)
    assert not again.verdicts and not again.commands and not again.records
    assert eng.stats().rejected == {"duplicate_part_id": 1}
    assert len(eng.on_part(LINE, ST, "P-2", None, 3.0, "camera stalled").verdicts) == 1


def test_stop_needs_k_of_n_parts_and_rejects_each_part(tmp_path: Path) -> None:
    eng = trig_engine(tmp_path)
    first = eng.on_part(LINE, ST, "P-1", insp(1, ("crack", 0.9), now=1.0), 1.0)
    assert first.verdicts[0].result is Result.NG
    assert [c.kind for c in first.commands] == [CommandKind.REJECT]  # the part goes, the line runs
    assert not [r for r in first.records if r.kind is RecordKind.DEFECT]
    second = eng.on_part(LINE, ST, "P-2", insp(2, ("crack", 0.9), now=2.0), 2.0)
    assert sorted(c.kind.value for c in second.commands) == ["reject", "stop"]
    (defect,) = [r for r in second.records if r.kind is RecordKind.DEFECT]
    assert defect.payload["part_id"] == "P-2" and defect.payload["frames"] == [1, 2]
    assert eng.station_state(LINE, ST).latched


def test_unknown_parts_do_not_count_as_clean(tmp_path: Path) -> None:
    eng = engine(config(tmp_path, [rule(k=2, n=2, clear_after=1)], mode="triggered"))
    eng.on_part(LINE, ST, "P-1", insp(1, ("scratch", 0.9), now=1.0), 1.0)
    eng.on_part(LINE, ST, "P-2", None, 2.0, "camera stalled")
    d = eng.on_part(LINE, ST, "P-3", insp(3, ("scratch", 0.9), now=3.0), 3.0)
    assert any(r.kind is RecordKind.DEFECT for r in d.records)


def test_part_of_unknown_station(tmp_path: Path) -> None:
    eng = trig_engine(tmp_path)
    assert not eng.on_part(LINE, "nowhere", "P-1", insp(1, now=1.0), 1.0).verdicts
    assert eng.stats().rejected == {"unknown_station": 1}


def test_roi_applies_per_part(tmp_path: Path) -> None:
    eng = engine(config(tmp_path, [rule(roi=[0.5, 0.0, 1.0, 1.0])], mode="triggered"))
    left = insp(1, Finding("scratch", 0.9, (0, 0, 10, 10)), now=1.0)
    right = insp(2, Finding("scratch", 0.9, (150, 0, 160, 10)), now=2.0)
    assert eng.on_part(LINE, ST, "A", left, 1.0).verdicts[0].result is Result.OK
    assert eng.on_part(LINE, ST, "B", right, 2.0).verdicts[0].result is Result.NG
