"""Work chained on commands' "sent" futures (agent.pipeline.sends): `when_sent` waits for
every one; `InOrder` routes each station's decisions in order, each once one of its
commands is sent, and a failing one does not hold back the next."""

from __future__ import annotations

import asyncio
import logging

import pytest

from agent.pipeline.sends import InOrder, Sent, when_sent


def futures(n: int) -> list[Sent]:
    loop = asyncio.get_running_loop()
    return [loop.create_future() for _ in range(n)]


async def settle() -> None:
    for _ in range(3):
        await asyncio.sleep(0)


async def test_when_sent_waits_for_every_send() -> None:
    ran: list[str] = []
    when_sent([], ran.append, "none")
    assert ran == ["none"]  # nothing to wait for: at once
    a, b = futures(2)
    when_sent([a, b], ran.append, "both")
    a.set_result(None)
    await settle()
    assert ran == ["none"]
    b.set_result(None)
    await settle()
    assert ran == ["none", "both"]


async def test_a_station_s_decisions_are_routed_in_order() -> None:
    order = InOrder()
    ran: list[str] = []
    first, second = futures(2)
    order.run("l1/s1", [first], lambda: ran.append("n1"))  # waits for its command
    order.run("l1/s1", [], lambda: ran.append("n2"))  # sent nothing: waits behind n1
    order.run("l1/s2", [], lambda: ran.append("other"))  # another station: at once
    order.run("l1/s1", [second], lambda: ran.append("n3"))
    assert ran == ["other"] and order.pending() == 3
    second.set_result(None)  # n3's command is sent, n1's not yet: nothing of s1 runs
    await settle()
    assert ran == ["other"]
    first.set_result(None)
    await settle()
    assert ran == ["other", "n1", "n2", "n3"] and order.pending() == 0


async def test_the_first_of_a_decision_s_commands_sent_is_enough() -> None:
    order = InOrder()
    ran: list[str] = []
    a, b = futures(2)
    order.run("l1/s1", [a, b], lambda: ran.append("n1"))
    b.set_result(None)
    await settle()
    assert ran == ["n1"]  # before the other command's outcome can be routed


async def test_a_failing_routing_does_not_hold_back_the_next(
        caplog: pytest.LogCaptureFixture) -> None:
    order = InOrder()
    ran: list[str] = []
    (sent,) = futures(1)

    def boom() -> None:
        raise RuntimeError("sink gone")

    order.run("l1/s1", [sent], boom)
    order.run("l1/s1", [], lambda: ran.append("n2"))
    with caplog.at_level(logging.ERROR):
        sent.set_result(None)
        await settle()
    assert ran == ["n2"] and "record routing of station l1/s1 failed" in caplog.text
