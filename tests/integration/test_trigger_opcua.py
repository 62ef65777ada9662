"""Trigger handshake and heartbeat sharing one OPC UA link to the soft PLC."""

from __future__ import annotations

from pathlib import Path

from agent.config.station import TriggerTimeouts
from agent.control.heartbeat import Heartbeat, StatusBits
from agent.control.trigger import TriggerHandshake
from agent.protocols.plc_common import HeartbeatConfig
from agent.types import Result, Verdict
from plc.conveyor import ConveyorSettings
from plc.softplc import SoftPlc
from tests.integration.plc_helpers import STATION, TAGS, opcua_link, signals, wait_for
from tests.support.ports import free_port


async def test_handshake_and_heartbeat_over_opcua(tmp_path: Path) -> None:
    plc = SoftPlc(TAGS, opcua_port=free_port(),
                  settings=ConveyorSettings(part_period_s=0.2, triggered=True, watchdog_ms=400))

    async def inspect(part_id: str, _t: float) -> Verdict:
        bad = int(part_id) % 2 == 0
        return Verdict(line="line1", station="station1", camera_id="cam1", frame_seq=0,
                       result=Result.NG if bad else Result.OK, part_id=part_id,
                       defect_code=201 if bad else 0)

    link = opcua_link(tmp_path, plc.opcua_endpoint)
    trig = TriggerHandshake(link, "line1", "station1", signals("opcua"),
                            TriggerTimeouts(frame_ms=500, clear_ms=2000), inspect, poll_ms=10)
    hb = Heartbeat(link, HeartbeatConfig(counter=TAGS.agent("heartbeat").opcua,
                                         status=TAGS.agent("status").opcua, interval_ms=50),
                   lambda: StatusBits(True, True, True, False))
    await plc.start()
    await link.start()
    try:
        assert await link.wait_connected(10)
        await hb.start()
        await trig.start()
        sim = plc.conveyor.stations[STATION]
        await wait_for(lambda: len(sim.results) >= 3, timeout=15, what="3 handshakes")
        for r in sim.results[:3]:
            assert r.echoed_part_id == r.part_id
            assert (r.result, r.result_code) == ((2, 201) if r.part_id % 2 == 0 else (1, 0))
        assert not plc.conveyor.watchdog_tripped and hb.stats().write_failures == 0
        assert plc.state.get("agent.status") == 0b0111
    finally:
        await trig.stop()
        await hb.stop()
        await link.close()
        await plc.stop()
