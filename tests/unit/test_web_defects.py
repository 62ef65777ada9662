"""The defects page's index over the evidence store: newest first, filters, PLC outcomes,
refreshed off the event loop, ids gone by retention dropped."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from agent.evidence.store import EvidenceStore
from agent.types import Command, CommandKind, CommandOutcome, OutcomeStatus, new_event_id
from agent.web.defects import DefectIndex, Outcomes


def _store(tmp: Path, n: int) -> tuple[EvidenceStore, list[str]]:
    store = EvidenceStore(tmp / "evidence")
    ids = []
    for i, cls in enumerate(["scratch", "crack", "spot"][:n]):
        eid = new_event_id()
        store.write(eid, {"": b"\xff\xd8jpeg", ".annotated": b"\xff\xd8jpeg"}, {
            "line": "line1", "station": f"station{1 + i % 2}", "defect_class": cls,
            "verdict": "NG", "capture_time": f"2026-11-29T12:00:0{i}+00:00",
            "defect_event_id": f"ev-{cls}", "frame_seq": i})
        ids.append(eid)
        time.sleep(0.002)  # UUIDv7: ids sort by time
    return store, ids


def test_newest_first_filtered_with_choices(tmp_path: Path) -> None:
    store, ids = _store(tmp_path, 3)
    idx = DefectIndex(store, Outcomes())
    idx.refresh()
    got = idx.query("", 10)
    assert [i["id"] for i in got["items"]] == ids[::-1] and got["total"] == 3
    assert got["items"][0]["thumb"] == f"/evidence/{ids[2]}.annotated.jpg"
    assert got["choices"] == {"station": ["line1/station1", "line1/station2"],
                              "class": ["crack", "scratch", "spot"], "verdict": ["NG"]}
    assert [i["class"] for i in idx.query("class=crack", 10)["items"]] == ["crack"]
    assert [i["class"] for i in idx.query("station=line1%2Fstation1", 10)["items"]] == [
        "spot", "scratch"]
    assert idx.query("verdict=UNKNOWN", 10)["items"] == []
    assert len(idx.query("limit=1", 10)["items"]) == 1
    idx.close()


def test_detail_carries_the_sidecar_and_the_plc_outcome(tmp_path: Path) -> None:
    store, ids = _store(tmp_path, 2)
    outcomes = Outcomes(size=2)
    cmd = Command(CommandKind.STOP, "softplc", "line1", "station2", "ev-crack", 10.5, 10.0)
    outcomes.add(CommandOutcome(cmd, OutcomeStatus.ACKED, attempts=1, t_done=10.01,
                                latency_ms=1.234))
    idx = DefectIndex(store, outcomes)
    idx.refresh()
    crack = idx.detail(ids[1])
    assert crack is not None and crack["sidecar"]["defect_class"] == "crack"
    assert crack["plc"] == [{"kind": "stop", "plc": "softplc", "status": "acked",
                             "attempts": 1, "error": None, "latency_ms": 1.23}]
    assert isinstance(idx.detail(ids[0])["plc"], str)  # type: ignore[index]  # none seen
    assert idx.detail("not-an-id") is None
    for n in range(3):  # bounded: the oldest outcomes go
        outcomes.add(CommandOutcome(Command(CommandKind.REJECT, "p", "l", "s", f"e{n}", 1, 0),
                                    OutcomeStatus.ACKED, attempts=1, t_done=0.1))
    assert outcomes.of("ev-crack") is None and outcomes.of("e2") is not None
    idx.close()


def test_queries_refresh_in_the_background_and_forget_deleted(tmp_path: Path) -> None:
    store, ids = _store(tmp_path, 1)
    listed_on: list[str] = []
    ids_of = store.ids

    def ids_recorded():  # type: ignore[no-untyped-def]
        listed_on.append(threading.current_thread().name)
        return ids_of()

    store.ids = ids_recorded  # type: ignore[method-assign]
    idx = DefectIndex(store, Outcomes())
    try:
        deadline = time.monotonic() + 3
        while not idx.query("", 10)["items"]:
            assert time.monotonic() < deadline, "the worker thread never refreshed the index"
            time.sleep(0.05)
        assert listed_on and all(n.startswith("console-defects") for n in listed_on), listed_on
        store.delete(ids[0])  # retention
        idx.refresh()
        assert idx.query("", 10)["items"] == []
    finally:
        idx.close()
