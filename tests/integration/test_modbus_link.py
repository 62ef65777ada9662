"""ModbusLink against a plain pymodbus server and the soft PLC: typed writes,
refusals naming the address, reconnect after a server restart."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.protocols.base import SinkState
from agent.protocols.link import PlcRejected, PlcUnavailable
from plc.softplc import SoftPlc
from tests.integration.plc_helpers import TAGS, modbus_link, plain_modbus_server, wait_for


async def test_typed_writes_reach_the_plain_server(tmp_path: Path, port: int) -> None:
    server = await plain_modbus_server(port)
    link = modbus_link(tmp_path, port, word_order="little")
    await link.start()
    try:
        assert await link.wait_connected(5)
        await link.write("coil:5", True, 1)
        await link.write("hr:10:i16", -2, 1)
        await link.write("hr:20:u32", 0x12345678, 1)
        await link.write("hr:30:f32", 1.5, 1)
        assert await server.async_getValues(1, 1, 5, 1) == [True]
        assert await server.async_getValues(1, 3, 10, 1) == [0xFFFE]
        assert await server.async_getValues(1, 3, 20, 2) == [0x5678, 0x1234]  # low word first
        assert await link.read("hr:20:u32", 1) == 0x12345678
        assert await link.read("hr:30:f32", 1) == 1.5
        assert link.stats().writes == 4
    finally:
        await link.close()
        await server.shutdown()


async def test_a_write_whose_time_runs_out_waiting_for_the_link_leaves_it_connected(
        tmp_path: Path, port: int) -> None:
    """A command near its deadline queued behind another request (a heartbeat write) was
    never sent: it fails as not sent, and the link is not dropped and reconnected."""
    server = await plain_modbus_server(port)
    link = modbus_link(tmp_path, port)
    await link.start()
    try:
        assert await link.wait_connected(5)
        async with link._lock:  # another request on the link for longer than this one's time
            with pytest.raises(PlcUnavailable, match="not sent: the link was busy"):
                await link.write("coil:5", True, 0.05)
        assert link.state is SinkState.CONNECTED and link.stats().disconnects == 0
        await link.write("coil:5", True, 1)
        assert await server.async_getValues(1, 1, 5, 1) == [True]
    finally:
        await link.close()
        await server.shutdown()


async def test_refusals_name_the_address(tmp_path: Path, port: int) -> None:
    plc = SoftPlc(TAGS, modbus_port=port)
    await plc.start()
    link = modbus_link(tmp_path, port)
    await link.start()
    try:
        assert await link.wait_connected(5)
        with pytest.raises(PlcRejected, match=r"coil:999.*illegal data address"):
            await link.write("coil:999", True, 1)
        with pytest.raises(PlcRejected, match=r"hr:10.*u16"):
            await link.write("hr:10", 70000, 1)
        with pytest.raises(PlcRejected, match="read-only"):
            await link.write("di:0", True, 1)
        with pytest.raises(PlcRejected, match="bad Modbus address"):
            await link.write("coil:x", True, 1)
        assert link.state is SinkState.CONNECTED  # a refusal is not a lost link
        assert link.stats().rejected >= 1
    finally:
        await link.close()
        await plc.stop()


async def test_plc_down_at_start_then_restart_mid_run(tmp_path: Path, port: int) -> None:
    link = modbus_link(tmp_path, port)
    await link.start()  # nobody listens yet: start must not fail
    try:
        with pytest.raises(PlcUnavailable):
            await link.write("coil:0", True, 0.2)
        await wait_for(lambda: link.state is SinkState.DISCONNECTED, what="first connect fails")
        assert link.stats().connect_failures >= 1
        server = await plain_modbus_server(port)
        assert await link.wait_connected(5)
        await link.write("coil:1", True, 1)
        await server.shutdown()
        await wait_for(lambda: link.state is not SinkState.CONNECTED, what="loss noticed")
        server = await plain_modbus_server(port)  # a fresh server: the old values are gone
        assert await link.wait_connected(5)
        await link.write("coil:2", True, 1)
        assert await server.async_getValues(1, 1, 2, 1) == [True]
        assert link.stats().connects >= 2 and link.stats().disconnects >= 1
        await server.shutdown()
    finally:
        await link.close()


async def test_rtu_factory_builds_a_serial_client(tmp_path: Path) -> None:
    from pymodbus.client import AsyncModbusSerialClient

    from agent.protocols.modbus.config import ModbusPlcConfig
    from agent.protocols.modbus.factory import build
    from tests.integration.plc_helpers import ctx

    cfg = ModbusPlcConfig.model_validate({
        "type": "modbus", "transport": "rtu", "device_id": 7, "word_order": "little",
        "serial": {"port": "/dev/ttyUSB9", "baudrate": 38400, "parity": "N"}})
    link = build("rtu1", cfg, ctx(tmp_path))
    client = link._factory()
    assert isinstance(client, AsyncModbusSerialClient)
    assert client.comm_params.host == "/dev/ttyUSB9" and client.comm_params.baudrate == 38400
    assert link.device_id == 7 and link.word_order == "little"
    assert "rtu /dev/ttyUSB9" in link.where
    with pytest.raises(ValueError, match="serial"):
        ModbusPlcConfig.model_validate({"type": "modbus", "transport": "rtu"})
