"""TriggerHandshake over the in-memory PLC link: the order of the handshake's writes, one
part per rising edge of the trigger, UNKNOWN when the camera trigger or the inspection
fails, and a failed step named and retried by the loop."""

from __future__ import annotations

import asyncio

import pytest

from agent.config.station import StationSignals, TriggerTimeouts
from agent.control.trigger import Arm, HandshakeStep, TriggerHandshake
from agent.protocols.link import PlcUnavailable, Value
from agent.types import Result, Verdict
from tests.support.fake_plc_link import FakePlcLink, wait_for

TRIG, PART, BUSY, DONE = "coil:20", "hr:20", "coil:21", "coil:22"
RESULT, CODE, ECHO = "hr:21", "hr:22", "hr:23"
SIG = StationSignals(trigger=TRIG, part_id=PART, busy=BUSY, done=DONE, result=RESULT,
                     result_code=CODE, result_part_id=ECHO)


class Plc:
    """The PLC side: clears the trigger when it sees `done` (unless told to hold it)."""

    def __init__(self, link: FakePlcLink) -> None:
        self.link = link
        self.clears = True
        link.on_write = self.on_write

    def on_write(self, address: str, value: Value) -> None:
        if address == DONE and value and self.clears:
            self.link.set(TRIG, False)

    def new_part(self, part_id: int) -> None:
        self.link.set(PART, part_id)
        self.link.set(TRIG, True)


class Inspector:
    def __init__(self, result: Result = Result.NG, code: int = 7) -> None:
        self.calls: list[tuple[str, float]] = []
        self.result, self.code = result, code
        self.error: Exception | None = None

    async def __call__(self, part_id: str, t: float) -> Verdict:
        self.calls.append((part_id, t))
        if self.error is not None:
            raise self.error
        return Verdict("line1", "station1", "cam1", self.result, 1, part_id=part_id,
                       defect_code=self.code)


async def rig(inspector: Inspector,
              arm: Arm | None = None) -> tuple[FakePlcLink, Plc, TriggerHandshake]:
    link = FakePlcLink()
    await link.start()
    plc = Plc(link)
    trig = TriggerHandshake(link, "line1", "station1", SIG,
                            TriggerTimeouts(frame_ms=50, clear_ms=50), inspector, poll_ms=2,
                            arm=arm)
    return link, plc, trig


def handshake_writes(link: FakePlcLink) -> list[tuple[str, Value]]:
    return [(a, v) for _, a, v in link.writes()]


async def test_one_part_answers_in_order_and_the_trigger_time_precedes_the_frames() -> None:
    inspector = Inspector(Result.NG, 7)
    link, plc, trig = await rig(inspector)
    plc.new_part(42)
    await trig.poll()
    assert handshake_writes(link) == [
        (BUSY, True), (RESULT, 2), (CODE, 7), (ECHO, 42), (DONE, True), (BUSY, False),
        (DONE, False)]
    trigger_seen = link.attempts(TRIG, op="read")[0].answered_at
    assert inspector.calls and inspector.calls[0][0] == "42"
    assert trigger_seen is not None and inspector.calls[0][1] >= trigger_seen  # frames after it
    st = trig.stats()
    assert (st.triggers, st.completed, st.ng, st.last_part_id) == (1, 1, 1, "42")


async def test_a_trigger_held_high_is_one_part_and_the_next_needs_a_new_edge() -> None:
    inspector = Inspector(Result.OK, 0)
    link, plc, trig = await rig(inspector)
    plc.clears = False
    plc.new_part(1)
    await trig.start()
    try:
        await wait_for(lambda: trig.stats().clear_timeouts == 1, what="clear timeout")
        await asyncio.sleep(0.05)  # many polls with the trigger still high
        assert [p for p, _ in inspector.calls] == ["1"] and link.values[DONE] is True
        link.set(TRIG, False)  # the PLC clears it late: done drops, no new part
        await wait_for(lambda: link.values[DONE] is False, what="done cleared")
        plc.clears = True
        plc.new_part(2)  # a new rising edge: a new part
        await wait_for(lambda: trig.stats().completed == 2, what="second part")
    finally:
        await trig.stop()
    assert [p for p, _ in inspector.calls] == ["1", "2"]
    assert trig.stats().triggers == 2 and trig.stats().ok == 2


async def test_a_failed_camera_trigger_answers_unknown_without_inspecting() -> None:
    async def arm(_t: float) -> float:
        raise OSError("TriggerSoftware not writable")

    inspector = Inspector()
    link, plc, trig = await rig(inspector, arm=arm)
    plc.new_part(5)
    await trig.poll()
    assert inspector.calls == [] and link.written(RESULT) == [3] and link.written(CODE) == [0]
    assert trig.stats().camera_trigger_errors == 1 and trig.stats().unknown == 1
    assert link.values[DONE] is False and trig.stats().completed == 1  # the PLC got its answer


async def test_a_camera_trigger_that_hangs_times_out_and_its_time_is_used_when_it_answers(
        ) -> None:
    async def hung(_t: float) -> float:
        await asyncio.sleep(10)
        return 0.0

    inspector = Inspector(Result.OK, 0)
    link, plc, trig = await rig(inspector, arm=hung)
    plc.new_part(6)
    await trig.poll()  # frame_ms = 50: UNKNOWN after that
    assert inspector.calls == [] and link.written(RESULT) == [3]

    async def fired(_t: float) -> float:
        return 1234.5

    link2, plc2, trig2 = await rig(inspector, arm=fired)
    plc2.new_part(7)
    await trig2.poll()
    assert inspector.calls == [("7", 1234.5)] and link2.written(RESULT) == [1]


async def test_an_inspection_that_raises_answers_unknown() -> None:
    inspector = Inspector()
    inspector.error = RuntimeError("model crashed")
    link, plc, trig = await rig(inspector)
    plc.new_part(8)
    await trig.poll()
    assert link.written(RESULT) == [3] and link.written(CODE) == [0]
    assert trig.stats().inspect_errors == 1 and link.values[DONE] is False


async def test_a_failed_read_is_counted_and_the_part_is_taken_on_the_next_poll() -> None:
    inspector = Inspector(Result.OK, 0)
    link, plc, trig = await rig(inspector)
    link.feed(PART, [PlcUnavailable("fake: link dropped")])
    plc.new_part(9)
    await trig.start()
    try:
        await wait_for(lambda: trig.stats().completed == 1, what="the part answered")
    finally:
        await trig.stop()
    assert trig.stats().plc_errors == 1 and [p for p, _ in inspector.calls] == ["9"]
    assert link.written(BUSY) == [True, False]  # busy not raised before the part id was read


async def test_a_refused_handshake_write_names_the_signal() -> None:
    link, plc, trig = await rig(Inspector())
    link.refuse(RESULT, "illegal data address")
    plc.new_part(10)
    with pytest.raises(HandshakeStep, match=r"writing result \(hr:21\) failed: .*illegal data"):
        await trig.poll()
    assert trig.stats().completed == 0 and link.written(DONE) == []


def test_triggered_mode_needs_its_signals() -> None:
    with pytest.raises(ValueError, match="'busy', 'done'"):
        TriggerHandshake(FakePlcLink(), "line1", "station1",
                         StationSignals(trigger=TRIG, result=RESULT), TriggerTimeouts(),
                         Inspector(), poll_ms=10)
