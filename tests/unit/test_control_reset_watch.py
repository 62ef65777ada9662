"""ResetWatch and the start-up signal check over the in-memory PLC link."""

from __future__ import annotations

import asyncio

from agent.config.station import StationSignals
from agent.control.reset_watch import ResetWatch
from agent.control.signal_check import verify_when_connected
from agent.protocols.link import PlcRejected, PlcUnavailable
from tests.support.fake_plc_link import FakePlcLink, wait_for

RESET = "coil:30"


async def watch(values: list[bool | Exception]) -> tuple[ResetWatch, list[str]]:
    link = FakePlcLink(name="plcA")
    await link.start()
    link.feed(RESET, values)
    seen: list[str] = []
    w = ResetWatch(link, RESET, seen.append, poll_ms=2)
    for _ in values:
        await w.poll()
    return w, seen


async def test_only_a_rising_edge_is_a_reset() -> None:
    w, seen = await watch([True, True, False, True, True, False, False, True])
    assert seen == ["plcA", "plcA"]  # high at start is no edge; each low -> high is one
    assert w.stats().resets == 2 and w.stats().polls == 8


async def test_no_edge_is_made_up_across_a_failed_read() -> None:
    w, seen = await watch([False, PlcUnavailable("fake: down"), True,
                           False, PlcRejected(RESET, "illegal data address"), True,
                           False, True])
    assert seen == ["plcA"]  # only the last edge was seen whole
    assert w.stats().read_failures == 2 and w.stats().polls == 6


async def test_the_watch_loop_calls_back_on_a_reset_pressed_at_the_plc() -> None:
    link = FakePlcLink(name="plcA")
    await link.start()
    link.set(RESET, False)
    seen: list[str] = []
    w = ResetWatch(link, RESET, seen.append, poll_ms=2)
    await w.start()
    try:
        await wait_for(lambda: w.stats().polls >= 2, what="polls")
        link.set(RESET, True)
        await wait_for(lambda: seen, what="the reset")
    finally:
        await w.stop()
    assert seen == ["plcA"]


async def test_the_signal_check_waits_for_the_link_and_names_each_bad_signal() -> None:
    link = FakePlcLink(connect_on_start=False)
    await link.start()
    link.refuse("coil:1", "illegal data address")
    sig = StationSignals(stop_request="coil:0", reject="coil:1", defect_code="hr:10")
    bad: dict[str, str] = {}
    check = verify_when_connected(link, {("line1", "station1"): sig}, 0.1, bad, poll_s=0.002)
    task = asyncio.create_task(check)
    await asyncio.sleep(0.02)
    assert link.requests == [] and not task.done()  # nothing read before the link is up
    link.connect()
    await asyncio.wait_for(task, 1.0)
    assert bad == {"line1/station1 reject": "coil:1: illegal data address"}
    assert sorted(a for r in link.attempts(op="read") for a in r.addresses) == [
        "coil:0", "coil:1", "hr:10"]
