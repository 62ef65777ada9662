"""PLC writes tell the truth: the command path against a Modbus server in another
process (`tests.support.modbus_peer`, which records every write it takes), behind a
TCP proxy that delays or cuts the traffic."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agent.config.station import StationSignals
from agent.control.counters import CommandCounters
from agent.control.dispatcher import CommandDispatcher
from agent.types import CommandKind, CommandOutcome, OutcomeStatus
from tests.integration.plc_helpers import command, modbus_link, wait_for
from tests.support.modbus_peer import ModbusPeer
from tests.support.tcp_proxy import TcpProxy, modbus_coil_write

KEY = ("line1", "station1")
FULL = StationSignals(stop_request="coil:0", reject="coil:1", alarm="coil:2",
                      defect_code="hr:10", defect_count="hr:11", last_event_seq="hr:12:u32")
REJECT_ONLY = StationSignals(reject="coil:1")


@pytest.fixture
async def peer(port: int) -> AsyncIterator[ModbusPeer]:
    p = await ModbusPeer(port).start()
    try:
        yield p
    finally:
        await p.stop()


class Rig:
    """Link + dispatcher (+ optional proxy) with the outcomes collected."""

    def __init__(self, tmp: Path, port: int, sig: StationSignals, timeout_ms: int = 300,
                 counters: CommandCounters | None = None) -> None:
        self.link = modbus_link(tmp, port, timeout_ms=timeout_ms)
        self.outcomes: list[CommandOutcome] = []
        self.disp = CommandDispatcher(self.link, {KEY: sig}, self.outcomes.append,
                                      request_timeout=timeout_ms / 1000, flush_timeout=0.5,
                                      reject_pulse_ms={KEY: 50}, counters=counters)

    async def __aenter__(self) -> Rig:
        await self.link.start()
        await self.disp.start()
        assert await self.link.wait_connected(5)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.disp.stop()
        await self.link.close()

    async def run(self, kind: CommandKind, deadline_s: float, code: int = 301) -> CommandOutcome:
        n = len(self.outcomes)
        self.disp.submit(command(kind, deadline_s=deadline_s, code=code))
        await wait_for(lambda: len(self.outcomes) > n, what=f"{kind} outcome")
        return self.outcomes[n]


async def test_slow_plc_reject_is_unconfirmed_sent_once_and_never_late(
        tmp_path: Path, peer: ModbusPeer) -> None:
    proxy = await TcpProxy(peer.port).start()
    try:
        async with Rig(tmp_path, proxy.port, REJECT_ONLY, timeout_ms=200) as rig:
            await asyncio.sleep(0.3)  # the keeper's first write (reject low) is through
            proxy.delay_up = (0.25, 0.35)
            t0 = time.monotonic()
            out = await rig.run(CommandKind.REJECT, deadline_s=0.5)
            await asyncio.sleep(1.0)  # anything still in the proxy lands by now
        ons = [t - t0 for v, t in peer.coil_writes(1) if v == 1]
        assert out.status is OutcomeStatus.UNCONFIRMED, out.error  # sent, no answer: not failed
        assert out.attempts == 1 and "may have taken effect" in (out.error or "")
        assert len(ons) == 1, f"reject reached the PLC {len(ons)} times"  # no second write
        assert ons[0] < 0.5, f"reject reached the PLC {ons[0] * 1000:.0f} ms after the decision"
    finally:
        await proxy.close()


async def test_slow_plc_with_data_mapped_reports_what_the_plc_got_and_nothing_late(
        tmp_path: Path, peer: ModbusPeer) -> None:
    proxy = await TcpProxy(peer.port).start()
    try:
        async with Rig(tmp_path, proxy.port, FULL, timeout_ms=200) as rig:
            await asyncio.sleep(0.3)
            proxy.delay_up = (0.25, 0.35)
            t0 = time.monotonic()
            out = await rig.run(CommandKind.REJECT, deadline_s=0.5)
            await asyncio.sleep(1.0)
        command_writes = [w for w in peer.writes if w["t"] > t0
                          and not (w["fc"] == 5 and w["values"] == [0])]  # the pulse end
        assert command_writes and all(w["t"] - t0 < 0.5 for w in command_writes), command_writes
        reject_on = any(w["fc"] == 5 and w["address"] == 1 for w in command_writes)
        expected = OutcomeStatus.UNCONFIRMED if reject_on else OutcomeStatus.FAILED
        assert out.status is expected, out.error  # the outcome says what the PLC got
    finally:
        await proxy.close()


async def test_link_cut_after_reject_on_still_ends_the_pulse(tmp_path: Path,
                                                             peer: ModbusPeer) -> None:
    proxy = await TcpProxy(peer.port).start()
    try:
        async with Rig(tmp_path, proxy.port, FULL) as rig:
            await asyncio.sleep(0.2)
            proxy.cut_after = modbus_coil_write(1, True)
            proxy.refuse_for(1.5)  # longer than the old pulse end kept trying
            out = await rig.run(CommandKind.REJECT, deadline_s=0.5)
            assert out.status is OutcomeStatus.UNCONFIRMED, out.error
            assert peer.coil_writes(1)[-1][0] == 1  # the ON reached the PLC
            await wait_for(lambda: peer.coil_writes(1)[-1][0] == 0, timeout=5,
                           what="the reject pulse ended after the reconnect")
            assert rig.disp.outputs.restores >= 1
            second = await rig.run(CommandKind.REJECT, deadline_s=1.0)
            assert second.status is OutcomeStatus.ACKED
            await wait_for(lambda: [v for v, _ in peer.coil_writes(1)][-2:] == [1, 0],
                           what="a second rising edge, then low again")
    finally:
        await proxy.close()


async def test_busy_and_gateway_exceptions_are_retried_within_the_deadline(
        tmp_path: Path, port: int) -> None:
    peer = await ModbusPeer(port, "--busy", "6,11").start()
    try:
        async with Rig(tmp_path, port, FULL) as rig:
            out = await rig.run(CommandKind.STOP, deadline_s=1.0)
        assert out.status is OutcomeStatus.ACKED, out.error
        assert out.attempts == 3  # busy (6), gateway target failed (11), accepted
        assert [v for v, _ in peer.coil_writes(0)] == [1]
        assert rig.link.stats().busy == 2 and not rig.link.stats().refusing
    finally:
        await peer.stop()


async def test_illegal_address_fails_at_once_naming_it_and_marks_the_link_refusing(
        tmp_path: Path, port: int) -> None:
    peer = await ModbusPeer(port, "--refuse", "2").start()
    try:
        async with Rig(tmp_path, port, FULL) as rig:
            t0 = time.monotonic()
            out = await rig.run(CommandKind.STOP, deadline_s=3.0)
            took = time.monotonic() - t0
            stats = rig.link.stats()
        assert out.status is OutcomeStatus.FAILED and out.attempts == 1
        assert "exception 2 (illegal data address)" in (out.error or "")
        assert took < 1.0  # refused for good: no retry until the deadline
        assert stats.refusing and "coil:0" in stats.refused
        assert "exception 2" in stats.refused["coil:0"]
        assert rig.disp.stats().refused == 1
    finally:
        await peer.stop()


async def test_data_goes_before_the_stop_bit_in_one_request(tmp_path: Path,
                                                            peer: ModbusPeer) -> None:
    async with Rig(tmp_path, peer.port, FULL) as rig:
        await asyncio.sleep(0.1)
        peer.writes.clear()
        out = await rig.run(CommandKind.STOP, deadline_s=1.0, code=302)
    assert out.status is OutcomeStatus.ACKED
    first, second = peer.writes[:2]
    assert (first["fc"], first["address"], first["values"]) == (16, 10, [302, 1, 0, 1])
    assert (second["fc"], second["address"], second["values"]) == (5, 0, [1])


async def test_counters_stay_monotonic_across_a_restart(tmp_path: Path,
                                                        peer: ModbusPeer) -> None:
    path = tmp_path / "plc-plc1.counters.json"
    for _ in range(2):  # two runs of the daemon, each with its own dispatcher
        async with Rig(tmp_path, peer.port, FULL, counters=CommandCounters.load(path)) as rig:
            for kind in (CommandKind.REJECT, CommandKind.STOP):
                assert (await rig.run(kind, deadline_s=1.0)).status is OutcomeStatus.ACKED
    blocks = [w["values"] for w in peer.writes if w["fc"] == 16 and w["address"] == 10]
    assert [b[1] for b in blocks] == [1, 2, 3, 4]  # defect_count goes on where it was
    seqs = [b[2] << 16 | b[3] for b in blocks]
    assert seqs[:2] == [1, 2] and seqs[2] > seqs[1] and seqs[3] == seqs[2] + 1  # never back


async def test_outputs_are_written_again_after_the_plc_restarts(tmp_path: Path, port: int) -> None:
    peer = await ModbusPeer(port).start()
    try:
        async with Rig(tmp_path, port, FULL) as rig:
            assert (await rig.run(CommandKind.STOP, deadline_s=1.0)).status is OutcomeStatus.ACKED
            assert (await rig.run(CommandKind.ALARM, deadline_s=1.0)).status is OutcomeStatus.ACKED
            await peer.stop()  # the PLC restarts and forgets its outputs
            peer = await ModbusPeer(port).start()
            await wait_for(lambda: {0, 1, 2} <= {w["address"] for w in peer.writes
                                                  if w["fc"] == 5}, timeout=5,
                           what="stop, reject and alarm written again")
        final = {w["address"]: w["values"][0] for w in peer.writes if w["fc"] == 5}
        assert final == {0: 1, 1: 0, 2: 1}  # stop as latched, reject low, alarm as it is
    finally:
        await peer.stop()


async def test_garbled_answer_is_unconfirmed_and_not_written_again_late(
        tmp_path: Path, peer: ModbusPeer) -> None:
    proxy = await TcpProxy(peer.port).start()
    try:
        async with Rig(tmp_path, proxy.port, REJECT_ONLY) as rig:
            await asyncio.sleep(0.2)
            proxy.corrupt_next = True  # the reject's answer arrives garbled: no usable answer
            out = await rig.run(CommandKind.REJECT, deadline_s=0.4)
            await wait_for(lambda: peer.coil_writes(1)[-1][0] == 0, what="pulse ended")
        assert [v for v, _ in peer.coil_writes(1) if v] == [1]  # it reached the PLC, once
        assert out.status is OutcomeStatus.UNCONFIRMED and out.attempts == 1, out.error
    finally:
        await proxy.close()
