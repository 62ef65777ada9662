"""defect_count and last_event_seq kept across restarts in state_dir."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

import pytest

from agent.config.station import StationSignals
from agent.control.command_plan import plan_writes
from agent.control.counters import RESERVE, CommandCounters
from agent.types import Command, CommandKind

A, B = ("line1", "station1"), ("line1", "station2")


async def test_counters_continue_after_a_reload(tmp_path: Path) -> None:
    path = tmp_path / "plc-x.counters.json"
    c = CommandCounters.load(path)
    assert (c.count(A, True), c.next_seq()) == (1, 1)
    assert (c.count(B, True), c.next_seq()) == (1, 2)
    assert (c.count(A, False), c.next_seq()) == (1, 3)  # an alarm: count unchanged, seq on
    await c.close()
    again = CommandCounters.load(path)
    assert again.count(A, True) == 2 and again.count(B, False) == 1  # counts exact
    seq = again.next_seq()
    assert 3 < seq <= 3 + RESERVE  # above anything sent before: may skip, never repeats
    assert not path.with_name(path.name + ".tmp").exists()  # renamed over, nothing left over


def test_the_sequence_reserve_is_raised_before_a_number_above_it_is_handed_out(
        tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    c = CommandCounters.load(path)
    for _ in range(RESERVE + 5):
        last = c.next_seq()
    assert json.loads(path.read_text())["last_event_seq"] >= last  # no crash can repeat it
    assert CommandCounters.load(path).next_seq() > last


async def test_write_behind_and_reserve_never_race_or_go_back(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    c = CommandCounters.load(path)
    for i in range(3 * RESERVE):
        c.count(A, True)
        last = c.next_seq()
        if i % 7 == 0:
            await asyncio.sleep(0)  # let the write-behind thread run between stops
    await c.close()
    assert c.save_failures == 0
    again = CommandCounters.load(path)
    assert again.count(A, False) == 3 * RESERVE and again.next_seq() > last


async def test_the_next_block_is_reserved_off_the_event_loop(tmp_path: Path) -> None:
    """Only the load writes on the loop's thread: each later block of sequence numbers is
    reserved by the write-behind thread half-way through the block before it."""
    import threading

    path = tmp_path / "c.json"
    c = CommandCounters.load(path)
    loop_thread = threading.get_ident()
    writers: list[int] = []
    replace = c._replace

    def recording(p: Path, body: str) -> bool:
        writers.append(threading.get_ident())
        return replace(p, body)

    c._replace = recording  # type: ignore[method-assign]
    for i in range(3 * RESERVE):
        last = c.next_seq()
        if i % 50 == 0:
            await asyncio.sleep(0.001)  # a line's pace: the reserve write lands in time
    await c.close()
    assert writers and loop_thread not in writers
    assert json.loads(path.read_text())["last_event_seq"] >= last
    assert CommandCounters.load(path).next_seq() > last


def test_a_mark_that_cannot_be_written_is_not_believed(tmp_path: Path) -> None:
    c = CommandCounters.load(tmp_path / "missing-dir" / "c.json")
    c.next_seq()
    assert c.reserved == 0  # nothing on disk: every number is still checked against the disk


def test_counters_wrap_at_the_plc_register_width() -> None:
    c = CommandCounters(None, seq=0xFFFFFFFF, counts={"line1/station1": 0xFFFF})
    assert (c.count(A, True), c.next_seq()) == (0, 0)


def test_unreadable_file_is_set_aside_and_named(tmp_path: Path,
                                                caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "plc-x.counters.json"
    path.write_text("{not json")
    with caplog.at_level(logging.ERROR):
        c = CommandCounters.load(path)
    assert c.seq == 0 and (tmp_path / "plc-x.counters.json.corrupt").exists()
    assert str(path) in caplog.text and "set aside" in caplog.text


def test_unwritable_state_dir_never_stops_a_command(tmp_path: Path) -> None:
    c = CommandCounters.load(tmp_path / "missing-dir" / "plc-x.counters.json")
    assert c.next_seq() == 1 and c.count(A, True) == 1  # logged and counted, not raised
    assert c.save_failures >= 1


def test_plan_puts_the_data_before_the_strobe() -> None:
    sig = StationSignals(stop_request="coil:0", reject="coil:1", alarm="coil:2",
                         defect_code="hr:10", defect_count="hr:11", last_event_seq="hr:12:u32")
    cmd = Command(CommandKind.REJECT, "plc", *A, "e1", deadline=1.0, created=0.0, defect_code=7)
    plan = plan_writes(cmd, sig, 3, 9)
    assert plan is not None and plan.strobe.signal == "reject" and plan.after == []
    assert [(w.signal, w.value) for w in plan.data] == [
        ("defect_code", 7), ("defect_count", 3), ("last_event_seq", 9)]
    reset = plan_writes(Command(CommandKind.RESET, "plc", *A, "e2", 1.0, 0.0), sig, 3, 10)
    assert reset is not None and reset.data == []
    assert [(w.signal, w.value) for w in [reset.strobe, *reset.after]] == [
        ("stop_request", False), ("alarm", False)]
    assert plan_writes(cmd, StationSignals(stop_request="coil:0"), 1, 1) is None
