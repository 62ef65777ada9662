"""Full trigger handshake against the soft PLC in triggered mode, part ids echoed."""

from __future__ import annotations

import asyncio
from pathlib import Path

from agent.config.station import TriggerTimeouts
from agent.control.trigger import TriggerHandshake
from agent.types import Result, Verdict
from plc.conveyor import ConveyorSettings
from plc.softplc import SoftPlc
from tests.integration.plc_helpers import STATION, TAGS, modbus_link, signals, wait_for


def verdict(part_id: str, result: Result, code: int = 0) -> Verdict:
    return Verdict(line="line1", station="station1", camera_id="cam1", result=result,
                   frame_seq=0, part_id=part_id, defect_code=code)


async def test_handshake_with_part_ids(tmp_path: Path, port: int) -> None:
    plc = SoftPlc(TAGS, modbus_port=port,
                  settings=ConveyorSettings(part_period_s=0.15, triggered=True, done_timeout_s=2))
    seen: list[tuple[str, float]] = []

    async def inspect(part_id: str, t_trigger: float) -> Verdict:
        seen.append((part_id, t_trigger))
        if int(part_id) % 3 == 0:
            await asyncio.sleep(1.0)  # slower than frame_ms: must be answered UNKNOWN
        n = int(part_id)
        return verdict(part_id, Result.NG if n % 2 == 0 else Result.OK, 101 if n % 2 == 0 else 0)

    link = modbus_link(tmp_path, port)
    trig = TriggerHandshake(link, "line1", "station1", signals("modbus"),
                            TriggerTimeouts(frame_ms=200, clear_ms=1000), inspect, poll_ms=5)
    await plc.start()
    await link.start()
    try:
        assert await link.wait_connected(5)
        await trig.start()
        sim = plc.conveyor.stations[STATION]
        await wait_for(lambda: len(sim.results) >= 4, timeout=10, what="4 handshakes")
        for r in sim.results[:4]:
            assert r.echoed_part_id == r.part_id
            if r.part_id % 3 == 0:
                assert (r.result, r.result_code) == (3, 0)  # late: UNKNOWN, never a late OK
            elif r.part_id % 2 == 0:
                assert (r.result, r.result_code) == (2, 101)
            else:
                assert (r.result, r.result_code) == (1, 0)
        assert [p for p, _ in seen[:4]] == [str(r.part_id) for r in sim.results[:4]]
        st = trig.stats()
        await wait_for(lambda: st.completed >= 4, what="agent side done cleared")
        assert st.inspect_timeouts >= 1 and st.unknown >= 1 and st.ng >= 1 and st.ok >= 1
        assert sim.handshake_timeouts == 0
        assert plc.state.get(f"{STATION}.busy") is False
    finally:
        await trig.stop()
        await link.close()
        await plc.stop()


async def test_trigger_not_cleared_is_reported_and_part_not_reinspected(tmp_path: Path, port: int) -> None:
    plc = SoftPlc(TAGS, modbus_port=port)  # continuous: the test plays the PLC side by hand
    calls: list[str] = []

    async def inspect(part_id: str, _t: float) -> Verdict:
        calls.append(part_id)
        return verdict(part_id, Result.OK)

    link = modbus_link(tmp_path, port)
    trig = TriggerHandshake(link, "line1", "station1", signals("modbus"),
                            TriggerTimeouts(frame_ms=200, clear_ms=100), inspect, poll_ms=5)
    await plc.start()
    await link.start()
    s = plc.state
    try:
        assert await link.wait_connected(5)
        await trig.start()
        s.set(f"{STATION}.part_id", 41)
        s.set(f"{STATION}.trigger", True)
        await wait_for(lambda: trig.stats().clear_timeouts == 1, what="clear timeout reported")
        assert s.get(f"{STATION}.done") is True and s.get(f"{STATION}.result_part_id") == 41
        await asyncio.sleep(0.2)
        assert calls == ["41"]  # the same trigger is not taken for a new part
        s.set(f"{STATION}.trigger", False)  # the PLC finally clears it
        await wait_for(lambda: s.get(f"{STATION}.done") is False, what="done cleared")
        assert trig.stats().completed == 1 and trig.stats().plc_errors >= 1
    finally:
        await trig.stop()
        await link.close()
        await plc.stop()
