"""Which frames become evidence, and how records come to point to them (real engine, real writer)."""

from __future__ import annotations

import dataclasses
import hashlib
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from agent.config.evidence import EvidenceConfig
from agent.decision.engine import DecisionEngine
from agent.evidence.capture import EvidenceCapture
from agent.evidence.retention import Retention
from agent.evidence.store import EvidenceStore
from agent.evidence.writer import EvidenceWriter
from agent.types import (
    Command,
    CommandKind,
    CommandOutcome,
    Frame,
    Inspection,
    OutcomeStatus,
    Record,
    RecordKind,
)
from tests.support.decision import LINE, ST, T0, config, engine, insp, rule


@pytest.fixture(autouse=True)
def _stop_writers() -> Any:
    made: list[Rig] = []
    Rig.made = made
    yield
    for rig in made:
        rig.writer.stop(5)


class Rig:
    made: list[Rig] = []

    def __init__(self, tmp: Path, start: bool = True, **cfg: Any) -> None:
        self.cfg = EvidenceConfig(**cfg)
        self.store = EvidenceStore(tmp / "evidence")
        self.writer = EvidenceWriter(self.store, Retention(self.store, 10**9, 1e9, 0),
                                     self.cfg, "http://edge:9310")
        self.records: list[Record] = []
        self.alarms: list[tuple[str, str]] = []
        self.capture = EvidenceCapture(self.cfg, self.writer, self.records.append,
                                       lambda line, st: ("drop",), self._alarm, clock=self.now)
        self.t = 0.0
        Rig.made.append(self)
        if start:
            self.writer.start()

    def now(self) -> float:
        return self.t

    def _alarm(self, event: str, line: str, st: str, camera: str, reason: str) -> Record:
        self.alarms.append((event, reason))
        return Record(id=f"alarm-{event}", kind=RecordKind.ALARM, payload={"event": event})

    def settle(self) -> None:
        deadline = time.monotonic() + 5
        while self.writer.depth() or self.capture._holding:  # noqa: SLF001
            assert time.monotonic() < deadline, "writer did not finish"
            time.sleep(0.01)


def framed(i: Inspection, truth: str | None = None) -> Inspection:
    pixels = np.full((100, 200, 3), i.frame_seq % 250, np.uint8)
    frame = Frame(pixels, "cam1", i.frame_seq, i.t_capture, T0, part_id=f"p{i.frame_seq}",
                  truth=truth)
    return dataclasses.replace(i, frame=frame)


def feed(eng: DecisionEngine, rig: Rig, pattern: str, start: int = 0) -> None:
    for n, ch in enumerate(pattern, start):
        found = [("scratch", 0.9)] if ch == "X" else []
        i = framed(insp(n, *found, error="boom" if ch == "E" else None))
        rig.t = float(n)
        rig.capture.on_decision(eng.on_inspection(LINE, ST, i, float(n)), i)


def test_defect_records_wait_for_their_image_and_point_to_it(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    eng = engine(config(tmp_path, [rule(k=2, n=3, action="stop")], publish_inspections=True))
    feed(eng, rig, "..XX..E.")
    rig.settle()
    with_ev = [r for r in rig.records if "evidence" in r.payload]
    # the confirming frame (3) of the defect and the UNKNOWN frame (6); OK frames: none
    assert sorted((r.kind.value, r.payload.get("frame_seq")) for r in with_ev) == [
        ("defect", 3), ("inspection", 3), ("inspection", 6)]
    assert len(rig.records) == 9  # 8 inspections and the defect: none lost
    defect = next(r for r in with_ev if r.kind is RecordKind.DEFECT)
    ref = defect.payload["evidence"]
    assert defect.payload["schema_version"] == 2
    data = rig.store.image_path(ref["id"]).read_bytes()
    assert hashlib.sha256(data).hexdigest() == ref["sha256"] and len(data) == ref["bytes"]
    assert (ref["width"], ref["height"]) == (200, 100)
    assert ref["url"] == f"http://edge:9310/evidence/{ref['id']}.jpg"
    side = rig.store.sidecar(ref["id"])
    assert side is not None and side["reasons"] == ["defect"] and side["frame_seq"] == 3
    assert side["model"]["sha256"] == "ab" * 32 and side["rule"].startswith("scratch")
    assert side["part_id"] == "p3" and rig.store.waiting(ref["id"]) == ["drop"]
    # the command outcome of that defect carries the same reference
    cmd = Command(CommandKind.STOP, "p1", LINE, ST, defect.id, 1.0, 0.0)
    rig.capture.route(eng.outcome_record(CommandOutcome(cmd, OutcomeStatus.ACKED, 1, 0.1)))
    assert rig.records[-1].kind is RecordKind.STOP
    assert rig.records[-1].payload["evidence"] == ref


def test_a_full_queue_drops_evidence_never_records(tmp_path: Path) -> None:
    import threading

    rig = Rig(tmp_path, start=False, queue_size=1)
    gate = threading.Event()
    handle = rig.writer._handle
    rig.writer._handle = lambda job: (gate.wait(5), handle(job))  # type: ignore[method-assign]
    rig.writer.start()  # running, but stuck on its first job: the queue fills behind it
    eng = engine(config(tmp_path, [rule(k=1, n=1, clear_after=1)], publish_inspections=True))
    feed(eng, rig, "X.")
    deadline = time.monotonic() + 5
    while rig.writer.depth():  # the writer took the first job and waits on the gate
        assert time.monotonic() < deadline
        time.sleep(0.01)
    feed(eng, rig, "X.X.", start=2)
    assert rig.writer.stats.dropped == 1 and rig.writer.stats.queued == 2
    # the dropped frame's records wait behind the station's held ones: nothing out of order
    assert not [r for r in rig.records if r.kind is RecordKind.DEFECT]
    gate.set()
    rig.settle()  # the held ones go on once their image is written, the others behind them
    defects = [r for r in rig.records if r.kind is RecordKind.DEFECT]
    assert [r.payload["frame_seq"] for r in defects] == [0, 2, 4]
    assert "evidence" in defects[1].payload and "evidence" not in defects[2].payload
    seqs = [r.payload["frame_seq"] for r in rig.records if r.kind is RecordKind.INSPECTION]
    assert seqs == sorted(seqs)  # the station's records in the order they were decided


def test_a_store_that_could_not_start_holds_no_record(tmp_path: Path) -> None:
    rig = Rig(tmp_path, start=False)  # as when the writer's start raised (read-only volume)
    eng = engine(config(tmp_path, [rule(k=1, n=1, clear_after=1)], publish_inspections=True))
    feed(eng, rig, "X.X.")
    assert not rig.capture._holding  # noqa: SLF001 - nothing waits for an image never written
    assert len([r for r in rig.records if r.kind is RecordKind.DEFECT]) == 2
    assert rig.writer.stats.dropped == 2


def test_window_frames_and_ok_samples(tmp_path: Path) -> None:
    rig = Rig(tmp_path, window_frames=True, sample_ok_every_s=5.0)
    eng = engine(config(tmp_path, [rule(k=3, n=4, clear_after=1)]))
    feed(eng, rig, "X.XX.......")
    rig.settle()
    metas = [m for m in rig.store.sidecars()]
    assert sorted(m["frame_seq"] for m in metas if m["role"] == "window") == [0, 2]
    verdict = [m for m in metas if m["role"] == "verdict"]
    assert [(m["frame_seq"], m["reasons"]) for m in verdict] == [
        (0, ["sample"]), (3, ["defect"]), (5, ["sample"]), (10, ["sample"])]  # one per 5 s
    window = next(m for m in metas if m["role"] == "window")
    defect = next(m for m in verdict if m["reasons"] == ["defect"])
    assert window["defect_event_id"] == defect["defect_event_id"] is not None


def test_a_failing_store_raises_an_alarm_and_clears_it(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    eng = engine(config(tmp_path, [rule(k=1, n=1, clear_after=1)]))
    real = rig.store.root
    rig.store.root = tmp_path / "not-a-folder"  # a file where the folder should be: writes fail
    rig.store.root.write_text("")
    feed(eng, rig, "X.")
    rig.settle()
    assert rig.alarms == [("raised", rig.alarms[0][1])] and rig.writer.stats.failed == 1
    assert "not-a-folder" in rig.alarms[0][1]
    assert [r.kind for r in rig.records] == [RecordKind.DEFECT, RecordKind.ALARM]
    assert "evidence" not in rig.records[0].payload  # the record went on without it
    feed(eng, rig, "X", start=2)  # still failing: one alarm, not one per frame
    rig.settle()
    assert len(rig.alarms) == 1 and rig.writer.stats.failed == 2
    rig.store.root = real
    feed(eng, rig, ".X", start=3)
    rig.settle()
    assert [a[0] for a in rig.alarms] == ["raised", "cleared"]
    assert "evidence" in rig.records[-2].payload and rig.records[-1].id == "alarm-cleared"


def test_triggered_late_and_fail_safe(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    eng = engine(config(tmp_path, [rule(action="reject")], mode="triggered",
                        latency_budget_ms=100, fail_safe={"action": "alert", "after_s": 1}))
    ok = framed(insp(1, now=1.0))
    rig.capture.on_decision(eng.on_part(LINE, ST, "P-1", ok, 1.05), ok, triggered=True)
    late = framed(insp(2, ("scratch", 0.9), now=2.0))  # NG, 200 ms after capture
    rig.capture.on_decision(eng.on_part(LINE, ST, "P-2", late, 2.2), late, triggered=True)
    for t in (3.0, 4.5):  # inspection impossible: the fail-safe acts on the last frame
        rig.capture.on_decision(eng.on_inspection_impossible(LINE, ST, "camera stalled", t), None)
    rig.settle()
    got = {m["frame_seq"]: (m["reasons"], m["part_id"]) for m in rig.store.sidecars()}
    assert got[1] == (["triggered"], "P-1")
    reasons = sorted(tuple(m["reasons"]) for m in rig.store.sidecars())
    assert reasons == [("defect", "late", "triggered"), ("fail_safe",), ("triggered",)]
    fail_safe = next(m for m in rig.store.sidecars() if m["reasons"] == ["fail_safe"])
    assert fail_safe["frame_seq"] == 2  # the station's last frame
    alarm = next(r for r in rig.records if r.kind is RecordKind.ALARM)
    assert alarm.payload["evidence"]["id"] == fail_safe["evidence"]["id"]
