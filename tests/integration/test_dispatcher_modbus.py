"""CommandDispatcher over Modbus against the soft PLC and plain servers."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from agent.control.dispatcher import CommandDispatcher
from agent.protocols.base import SinkState
from agent.types import CommandKind, CommandOutcome, OutcomeStatus
from plc.softplc import SoftPlc
from tests.integration.plc_helpers import (
    STATION,
    TAGS,
    command,
    modbus_link,
    plain_modbus_server,
    signals,
    wait_for,
)
from tests.support.ports import free_port

KEY = ("line1", "station1")


async def test_stop_reaches_the_soft_plc_and_latches(tmp_path: Path, port: int) -> None:
    plc = SoftPlc(TAGS, modbus_port=port)
    await plc.start()
    link = modbus_link(tmp_path, port)
    outcomes: list[CommandOutcome] = []
    disp = CommandDispatcher(link, {KEY: signals("modbus")}, outcomes.append)
    await link.start()
    await disp.start()
    try:
        assert await link.wait_connected(5)
        cmd = command(CommandKind.STOP, deadline_s=2.0, code=301)
        disp.submit(cmd)
        await wait_for(lambda: outcomes, what="stop outcome")
        out = outcomes[0]
        assert out.status is OutcomeStatus.ACKED and out.command is cmd
        assert out.latency_ms is not None and 0 < out.latency_ms < 2000
        s = plc.state
        assert s.get(f"{STATION}.stop_request") is True
        assert s.get(f"{STATION}.defect_code") == 301
        assert s.get(f"{STATION}.defect_count") == 1
        assert s.get(f"{STATION}.last_event_seq") == 1
        await wait_for(lambda: not plc.conveyor.running, what="conveyor stops")
        disp.submit(command(CommandKind.RESET, deadline_s=2.0))
        await wait_for(lambda: len(outcomes) == 2, what="reset outcome")
        assert s.get(f"{STATION}.stop_request") is False
        assert not plc.conveyor.running  # the PLC keeps the stop latched until an operator reset
        plc.press_reset()
        await wait_for(lambda: plc.conveyor.running, what="conveyor runs after reset")
    finally:
        await disp.stop()
        await link.close()
        await plc.stop()


async def test_reject_pulses_and_counts(tmp_path: Path, port: int) -> None:
    plc = SoftPlc(TAGS, modbus_port=port)
    await plc.start()
    link = modbus_link(tmp_path, port)
    outcomes: list[CommandOutcome] = []
    disp = CommandDispatcher(link, {KEY: signals("modbus")}, outcomes.append,
                             reject_pulse_ms={KEY: 50})
    await link.start()
    await disp.start()
    try:
        assert await link.wait_connected(5)
        disp.submit(command(CommandKind.REJECT, deadline_s=2.0, code=101))
        await wait_for(lambda: outcomes, what="reject outcome")
        assert outcomes[0].status is OutcomeStatus.ACKED
        await wait_for(lambda: plc.conveyor.stations[STATION].rejects == 1, what="pulse seen")
        await wait_for(lambda: plc.state.get(f"{STATION}.reject") is False, what="pulse ended")
        assert plc.state.get(f"{STATION}.defect_code") == 101
        assert plc.conveyor.running  # a reject does not stop the line
    finally:
        await disp.stop()
        await link.close()
        await plc.stop()


async def test_stop_expired_while_plc_down_is_never_written(tmp_path: Path, port: int) -> None:
    link = modbus_link(tmp_path, port)
    outcomes: list[CommandOutcome] = []
    disp = CommandDispatcher(link, {KEY: signals("modbus")}, outcomes.append)
    await link.start()
    await disp.start()
    try:
        disp.submit(command(CommandKind.STOP, deadline_s=0.3))
        await wait_for(lambda: outcomes, what="stop outcome")
        assert outcomes[0].status is OutcomeStatus.EXPIRED
        assert outcomes[0].attempts == 0 and outcomes[0].latency_ms is None
        server = await plain_modbus_server(port)  # the PLC comes back
        assert await link.wait_connected(5)
        seq = disp.counters.seq  # the first was numbered before it expired waiting for the link
        disp.submit(command(CommandKind.STOP, deadline_s=-0.01))  # already stale at submit
        await wait_for(lambda: len(outcomes) == 2, what="second outcome")
        assert outcomes[1].status is OutcomeStatus.EXPIRED
        await asyncio.sleep(0.3)  # give any stray retry time to land
        assert await server.async_getValues(1, 1, 0, 1) == [False]  # stop coil never written
        assert await server.async_getValues(1, 3, 10, 1) == [0]  # nor the defect code
        assert disp.stats().expired == 2 and disp.stats().acked == 0
        assert disp.counters.seq == seq  # stale when its turn came: it took no number
        await server.shutdown()
    finally:
        await disp.stop()
        await link.close()


async def test_unresponsive_plc_is_unconfirmed_not_failed(tmp_path: Path) -> None:
    port = free_port()

    writers: list[asyncio.StreamWriter] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        with contextlib.suppress(OSError):
            while await reader.read(1 << 16):  # accept, read, never answer
                pass
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", port)
    link = modbus_link(tmp_path, port, timeout_ms=50)
    outcomes: list[CommandOutcome] = []
    disp = CommandDispatcher(link, {KEY: signals("modbus")}, outcomes.append, request_timeout=0.05)
    await link.start()
    await disp.start()
    try:
        assert await link.wait_connected(5)
        disp.submit(command(CommandKind.STOP, deadline_s=0.4))
        await wait_for(lambda: outcomes, what="stop outcome")
        out = outcomes[0]
        assert out.status is OutcomeStatus.UNCONFIRMED and out.attempts >= 1  # sent, no answer
        assert "stop_request" in (out.error or "") and "may have taken effect" in (out.error or "")
        assert link.stats().timeouts >= 1
    finally:
        await disp.stop()
        await link.close()
        server.close()
        for w in writers:
            w.close()
        await asyncio.wait_for(server.wait_closed(), 5)


async def test_refused_signal_fails_at_once_naming_it(tmp_path: Path, port: int) -> None:
    plc = SoftPlc(TAGS, modbus_port=port)
    await plc.start()
    link = modbus_link(tmp_path, port)
    outcomes: list[CommandOutcome] = []
    bad = signals("modbus").model_copy(update={"stop_request": "coil:999"})
    disp = CommandDispatcher(link, {KEY: bad}, outcomes.append)
    await link.start()
    await disp.start()
    try:
        assert await link.wait_connected(5)
        disp.submit(command(CommandKind.STOP, deadline_s=5.0))
        await wait_for(lambda: outcomes, timeout=2.0, what="fails before the deadline")
        assert outcomes[0].status is OutcomeStatus.FAILED
        assert "stop_request" in (outcomes[0].error or "") and "coil:999" in (outcomes[0].error or "")
        assert link.state is SinkState.CONNECTED
        bad_map = disp.stats().bad_signals  # also found on its own at the first connect
        await wait_for(lambda: "line1/station1 stop_request" in bad_map, what="start-up check")
        assert "coil:999" in bad_map["line1/station1 stop_request"] and len(bad_map) == 1
    finally:
        await disp.stop()
        await link.close()
        await plc.stop()


async def test_stop_flushes_pending_commands_each_reported_once(tmp_path: Path, port: int) -> None:
    plc = SoftPlc(TAGS, modbus_port=port)
    await plc.start()
    link = modbus_link(tmp_path, port)
    outcomes: list[CommandOutcome] = []
    disp = CommandDispatcher(link, {KEY: signals("modbus")}, outcomes.append)
    await link.start()
    await disp.start()
    try:
        assert await link.wait_connected(5)
        cmds = [command(CommandKind.ALARM, deadline_s=2.0) for _ in range(5)]
        for c in cmds:
            disp.submit(c)
        await disp.stop()
        assert sorted(o.command.event_id for o in outcomes) == sorted(c.event_id for c in cmds)
        assert all(o.status is OutcomeStatus.ACKED for o in outcomes)
        assert plc.state.get(f"{STATION}.alarm") is True
    finally:
        await disp.stop()
        await link.close()
        await plc.stop()


async def test_stop_mid_command_still_reports_it_once(tmp_path: Path, port: int) -> None:
    link = modbus_link(tmp_path, port)  # nothing listens: the command waits for the link
    outcomes: list[CommandOutcome] = []
    disp = CommandDispatcher(link, {KEY: signals("modbus")}, outcomes.append, flush_timeout=0.1)
    await link.start()
    await disp.start()
    try:
        cmds = [command(CommandKind.STOP, deadline_s=30.0) for _ in range(3)]
        for c in cmds:
            disp.submit(c)
        await asyncio.sleep(0.05)
        await disp.stop()  # flush bound (0.1 s) far below the deadlines
        assert sorted(o.command.event_id for o in outcomes) == sorted(c.event_id for c in cmds)
        assert all(o.status is OutcomeStatus.EXPIRED and o.attempts == 0 for o in outcomes)
    finally:
        await disp.stop()
        await link.close()


async def test_a_command_that_breaks_the_link_code_is_reported_and_the_next_one_goes(
        tmp_path: Path, port: int) -> None:
    """A bug below the dispatcher (here: the link's write raising something it should not)
    fails that command with the error named; the dispatcher task lives on."""
    plc = SoftPlc(TAGS, modbus_port=port)
    await plc.start()
    link = modbus_link(tmp_path, port)
    outcomes: list[CommandOutcome] = []
    disp = CommandDispatcher(link, {KEY: signals("modbus")}, outcomes.append)
    await link.start()
    await disp.start()
    write = link.write

    async def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("bug in a link")

    try:
        assert await link.wait_connected(5)
        link.write = broken  # type: ignore[method-assign]
        disp.submit(command(CommandKind.STOP, deadline_s=2.0, code=301))
        await wait_for(lambda: outcomes, what="first outcome")
        assert outcomes[0].status is OutcomeStatus.FAILED
        assert "internal error: RuntimeError: bug in a link" in (outcomes[0].error or "")
        link.write = write  # type: ignore[method-assign]
        disp.submit(command(CommandKind.STOP, deadline_s=2.0, code=302))
        await wait_for(lambda: len(outcomes) == 2, what="second outcome")
        assert outcomes[1].status is OutcomeStatus.ACKED
        assert plc.state.get(f"{STATION}.defect_code") == 302
    finally:
        await disp.stop()
        await link.close()
        await plc.stop()
