"""Soft PLC over Modbus: heartbeat watchdog, operator reset seen by ResetWatch,
state lines, unmapped addresses refused."""

from __future__ import annotations

from pathlib import Path

from agent.control.heartbeat import Heartbeat, StatusBits
from agent.control.reset_watch import ResetWatch
from agent.protocols.plc_common import HeartbeatConfig
from plc.conveyor import ConveyorSettings
from plc.softplc import SoftPlc
from tests.integration.plc_helpers import TAGS, modbus_link, wait_for


async def test_heartbeat_stops_when_unhealthy_and_watchdog_trips(tmp_path: Path, port: int) -> None:
    plc = SoftPlc(TAGS, modbus_port=port, settings=ConveyorSettings(watchdog_ms=300))
    await plc.start()
    link = modbus_link(tmp_path, port)
    healthy = StatusBits(True, True, True, False)
    camera_stalled = StatusBits(False, False, True, True)
    current = [healthy]
    hb = Heartbeat(link, HeartbeatConfig(counter=TAGS.agent("heartbeat").modbus,
                                         status=TAGS.agent("status").modbus, interval_ms=50),
                   lambda: current[0])
    await link.start()
    try:
        assert await link.wait_connected(5)
        await hb.start()
        await wait_for(lambda: plc.state.get("agent.heartbeat") >= 5, what="heartbeat counting")
        assert plc.state.get("agent.status") == 0b0111
        await wait_for(lambda: plc.conveyor.running, what="conveyor runs")
        current[0] = camera_stalled
        await wait_for(lambda: plc.conveyor.watchdog_tripped, what="watchdog trips")
        held_at = plc.state.get("agent.heartbeat")
        assert plc.state.get("agent.status") == 0b1100  # status keeps flowing: model ok + degraded, camera not ok
        assert not plc.conveyor.running and plc.state.get("plant.watchdog_tripped") is True
        assert plc.state.get("agent.heartbeat") == held_at and hb.stats().held > 0
        current[0] = healthy  # recovered upstream; the PLC still needs an operator reset
        await wait_for(lambda: plc.state.get("agent.heartbeat") != held_at, what="beats again")
        assert plc.conveyor.watchdog_tripped
        plc.press_reset()
        await wait_for(lambda: plc.conveyor.running, what="runs after reset")
    finally:
        await hb.stop()
        await link.close()
        await plc.stop()


async def test_operator_reset_reaches_reset_watch(tmp_path: Path, port: int) -> None:
    lines: list[str] = []
    plc = SoftPlc(TAGS, modbus_port=port, quiet=False, out=lines.append)
    await plc.start()
    link = modbus_link(tmp_path, port)
    seen: list[str] = []
    watch = ResetWatch(link, TAGS.agent("reset").modbus, seen.append, poll_ms=10)
    await link.start()
    try:
        assert await link.wait_connected(5)
        await watch.start()
        await wait_for(lambda: watch.stats().polls >= 2, what="polling")
        await link.write(TAGS.tags["line1.station1.stop_request"].modbus, True, 1)
        await wait_for(lambda: not plc.conveyor.running, what="latched")
        plc.press_reset()
        await wait_for(lambda: seen == ["plc1"], what="reset edge")
        await wait_for(lambda: plc.state.get("agent.reset") is False, what="pulse ends")
        assert watch.stats().resets == 1
        assert any("conveyor=STOP" in ln and "latched=1" in ln for ln in lines)
        assert lines[0].startswith("softplc: soft PLC up")
    finally:
        await watch.stop()
        await link.close()
        await plc.stop()
