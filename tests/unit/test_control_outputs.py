"""OutputKeeper over the in-memory PLC link: reject bits low at the first connect, a
command on the link goes first, a pulse being written is left alone by a restore."""

from __future__ import annotations

import asyncio

from agent.control.outputs import OutputKeeper
from agent.protocols.link import PlcLink
from tests.support.fake_plc_link import FakePlcLink, as_plc_link, wait_for

STOP, REJECT, REJECT2 = "coil:0", "coil:1", "coil:3"


async def test_the_keeper_waits_for_the_command_on_the_link_and_spares_a_pulse_in_flight(
        ) -> None:
    link = FakePlcLink(connect_on_start=False)
    assert isinstance(link, PlcLink) and as_plc_link(link) is link
    command_on_link = True
    keeper = OutputKeeper(link, 0.1, poll_s=0.002, low_at_start=[REJECT, REJECT2],
                          may_write=lambda: not command_on_link)
    keeper.start()
    try:
        await link.start()
        await asyncio.sleep(0.02)
        assert link.requests == []  # not before the link is up, nor while a command is on it
        link.connect()
        await asyncio.sleep(0.02)
        assert link.requests == []
        command_on_link = False
        await wait_for(lambda: not keeper.busy(), what="reject bits low")
        assert link.values == {REJECT: False, REJECT2: False}  # a pulse left by a dead run ends
        keeper.hold(STOP, True)
        keeper.pulse_begins(REJECT)  # the command's ON write is in progress
        n = len(link.requests)
        link.disconnect()
        link.connect()
        await wait_for(lambda: keeper.restores == 2, what="restore")
        await wait_for(lambda: STOP in link.values, what="stop written again")
        await asyncio.sleep(0.02)
        assert sorted(a for r in link.requests[n:] for a in r.addresses) == [STOP, REJECT2]
        keeper.pulse_sent(REJECT, 0.0)
        await wait_for(lambda: not keeper.busy(), what="pulse ended")
        assert link.written(REJECT) == [False, False]  # low at start, then the pulse end
    finally:
        await keeper.stop(0.1)
