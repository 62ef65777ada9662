"""Data before strobe over OPC UA, against the soft PLC's OPC UA face in another
process that prints every Write request it gets (`tests.support.opcua_peer`)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from agent.control.dispatcher import CommandDispatcher
from agent.types import CommandKind, CommandOutcome, OutcomeStatus
from tests.integration.plc_helpers import command, opcua_link, signals, wait_for
from tests.support.opcua_peer import OpcUaPeer

KEY = ("line1", "station1")
N = "ns=2;s=Line1.Station1."


async def test_defect_data_is_one_write_before_the_reject_bit(tmp_path: Path, port: int) -> None:
    peer = await OpcUaPeer(port).start()
    link = opcua_link(tmp_path, peer.endpoint)
    outcomes: list[CommandOutcome] = []
    disp = CommandDispatcher(link, {KEY: signals("opcua")}, outcomes.append,
                             request_timeout=1.0, reject_pulse_ms={KEY: 50})
    await link.start()
    await disp.start()
    try:
        assert await link.wait_connected(10)
        await asyncio.sleep(0.5)  # the reject bit is written low at connect
        t0 = time.monotonic()
        disp.submit(command(CommandKind.REJECT, deadline_s=3.0, code=201))
        await wait_for(lambda: outcomes, timeout=10, what="reject outcome")
        assert outcomes[0].status is OutcomeStatus.ACKED, outcomes[0].error
        await wait_for(lambda: len(after(peer, t0)) >= 3, what="the pulse end")
    finally:
        await disp.stop()
        await link.close()
        await peer.stop()
    data, bit, end = after(peer, t0)[:3]
    assert data["nodes"] == [N + "DefectCode", N + "DefectCount", N + "LastEventSeq"]
    assert data["values"] == [201, 1, 1]  # in one Write request, before the bit
    assert (bit["nodes"], bit["values"]) == ([N + "Reject"], [True])
    assert (end["nodes"], end["values"]) == ([N + "Reject"], [False])


def after(peer: OpcUaPeer, t0: float) -> list[dict[str, Any]]:
    return [w for w in peer.writes if w["t"] >= t0]
