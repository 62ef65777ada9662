"""Heartbeat over the in-memory PLC link: the counter advances only while inspecting and
while the PLC accepts the writes, a failed beat is never skipped, and no burst after a
stall."""

from __future__ import annotations

import asyncio

from agent.control.heartbeat import Heartbeat, StatusBits
from agent.protocols.plc_common import HeartbeatConfig
from tests.support.fake_plc_link import FakePlcLink, Fault, wait_for

COUNTER, STATUS = "hr:0", "hr:1"
HEALTHY = StatusBits(healthy=True, camera_ok=True, model_ok=True, degraded=False)
PAUSED = StatusBits(healthy=False, camera_ok=True, model_ok=True, degraded=False, paused=True)


class Health:
    def __init__(self) -> None:
        self.bits = HEALTHY

    def __call__(self) -> StatusBits:
        return self.bits


async def rig(interval_ms: int = 500, status: str | None = STATUS,
              timeout: float | None = None) -> tuple[FakePlcLink, Heartbeat, Health]:
    link, health = FakePlcLink(), Health()
    await link.start()
    hb = Heartbeat(link, HeartbeatConfig(counter=COUNTER, status=status, interval_ms=interval_ms),
                   health, timeout=timeout)
    return link, hb, health


async def test_the_counter_holds_while_not_inspecting_and_goes_on_without_a_jump() -> None:
    link, hb, health = await rig()
    await hb.beat()
    health.bits = PAUSED
    await hb.beat()
    await hb.beat()
    health.bits = HEALTHY
    await hb.beat()
    assert link.written(COUNTER) == [1, 2]  # nothing written while held: the watchdog trips
    assert link.written(STATUS) == [0b00111, 0b10110, 0b10110, 0b00111]  # written every beat
    assert hb.stats().held == 2 and hb.stats().beats == 2 and not hb.stats().refusing


async def test_a_beat_whose_write_failed_is_written_again_not_skipped() -> None:
    link, hb, _ = await rig(status=None)
    await hb.beat()
    link.script(Fault.unavailable(), address=COUNTER)
    await hb.beat()
    link.script(Fault.no_answer(applied=False), address=COUNTER)
    await hb.beat()
    await hb.beat()
    assert [r.items[0][1] for r in link.attempts(COUNTER)] == [1, 2, 2, 2]
    assert link.written(COUNTER) == [1, 2] and hb.stats().counter == 2
    assert hb.stats().write_failures == 2 and not hb.stats().refusing  # transient: not refusing
    assert hb.refusal is None


async def test_refused_counter_is_held_and_probed_until_a_whole_beat_is_accepted() -> None:
    link, hb, _ = await rig()
    await hb.beat()  # counter 1
    link.refuse(COUNTER, "illegal data address")
    await hb.beat()  # 2 refused: refusing from now
    refusal = hb.refusal
    assert refusal is not None and "illegal data address" in refusal.error
    await hb.beat()  # healthy, yet held: the unchanged value probes the PLC
    link.accept(COUNTER)
    await hb.beat()  # the probe is accepted: counting again from the next beat
    assert hb.refusal is None and not hb.stats().refusing
    await hb.beat()
    assert [(r.items[0][1], r.outcome) for r in link.attempts(COUNTER)] == [
        (1, "ok"), (2, "rejected"), (1, "rejected"), (1, "ok"), (2, "ok")]
    # bit0 (healthy) is cleared while the PLC refuses, though every station inspects
    assert link.written(STATUS) == [0b111, 0b111, 0b110, 0b110, 0b111]
    assert hb.stats().held == 2 and hb.stats().refused == 2


async def test_a_refused_status_word_holds_the_counter_too() -> None:
    link, hb, _ = await rig()
    link.refuse(STATUS, "Bad_NotWritable")
    await hb.beat()  # counter 1 accepted, status refused
    await hb.beat()  # held: probe 1
    assert hb.stats().refusing and link.written(COUNTER) == [1, 1]
    link.accept(STATUS)
    await hb.beat()  # probe accepted, status accepted
    await hb.beat()
    assert link.written(COUNTER) == [1, 1, 1, 2] and not hb.stats().refusing


async def test_the_loop_holds_while_not_inspecting_and_does_not_burst_after_a_stall() -> None:
    link, hb, health = await rig(interval_ms=20, status=None, timeout=0.5)
    link.script(Fault.delay(0.15), address=COUNTER)  # the first write stalls 7 intervals
    await hb.start()
    try:
        await wait_for(lambda: len(link.written(COUNTER)) >= 5, what="five beats")
        health.bits = PAUSED
        await asyncio.sleep(0.03)  # a beat under way when paused may still land
        held_at = len(link.written(COUNTER))
        await asyncio.sleep(0.1)
        assert len(link.written(COUNTER)) == held_at and hb.stats().held >= 2
    finally:
        await hb.stop()
    times = [r.t for r, _, _ in link.writes(COUNTER)]
    # the stalled beat is not made up for by a burst: three more beats take three intervals
    assert times[1] - times[0] >= 0.15 and times[4] - times[1] >= 0.035, times
    assert link.written(COUNTER)[:5] == [1, 2, 3, 4, 5]


async def test_nothing_to_beat_starts_no_task() -> None:
    link = FakePlcLink()
    await link.start()
    hb = Heartbeat(link, HeartbeatConfig(interval_ms=20), Health())
    await hb.start()
    await asyncio.sleep(0.05)
    await hb.stop()
    assert link.requests == []
