"""Helpers for PLC tests: link builders, a plain pymodbus server, waiting for a condition."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from agent.config.station import StationSignals
from agent.protocols.base import SinkContext
from agent.protocols.modbus.config import ModbusPlcConfig
from agent.protocols.modbus.factory import build as build_modbus
from agent.protocols.modbus.link import ModbusLink
from agent.types import Command, CommandKind, new_event_id
from plc.tags import load_tags

TAGS = load_tags()
STATION = "line1.station1"


def ctx(tmp: Path) -> SinkContext:
    return SinkContext(site="test", agent_id="edge-test", base_dir=tmp, state_dir=tmp)


def modbus_link(tmp: Path, port: int, **over: object) -> ModbusLink:
    cfg = ModbusPlcConfig.model_validate({
        "type": "modbus", "host": "127.0.0.1", "port": port, "timeout_ms": 300,
        "reconnect_initial_ms": 20, "reconnect_max_ms": 200, **over})
    return build_modbus("plc1", cfg, ctx(tmp))


def signals(protocol: str) -> StationSignals:
    return StationSignals(**TAGS.signals(STATION, protocol))


def command(kind: CommandKind = CommandKind.STOP, deadline_s: float = 1.0, code: int = 301) -> Command:
    now = time.monotonic()
    return Command(kind=kind, plc="plc1", line="line1", station="station1",
                   event_id=new_event_id(), deadline=now + deadline_s, created=now,
                   defect_code=code)


async def wait_for(cond: Callable[[], object], timeout: float = 5.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or cond}")
        await asyncio.sleep(0.01)


async def plain_modbus_server(port: int) -> ModbusTcpServer:
    """A plain pymodbus server: 100 coils and 100 holding registers at device id 1."""
    device = SimDevice(id=1, simdata=(
        [SimData(0, count=128, values=False, datatype=DataType.BITS)],
        [SimData(0, count=16, values=False, datatype=DataType.BITS)],
        [SimData(0, count=100, values=0, datatype=DataType.REGISTERS)],
        [SimData(0, count=16, values=0, datatype=DataType.REGISTERS)],
    ))
    server = ModbusTcpServer(device, address=("127.0.0.1", port))
    await server.serve_forever(background=True)
    return server


def opcua_link(tmp: Path, endpoint: str, **over: object):  # type: ignore[no-untyped-def]
    from agent.protocols.opcua.config import OpcUaPlcConfig
    from agent.protocols.opcua.factory import build as build_opcua

    cfg = OpcUaPlcConfig.model_validate({
        "type": "opcua", "endpoint": endpoint, "timeout_ms": 1000,
        "reconnect_initial_ms": 50, "reconnect_max_ms": 300, **over})
    return build_opcua("plc1", cfg, ctx(tmp))


async def server_certificate(tmp: Path, name: str = "server") -> tuple[Path, Path]:
    """A self-signed OPC UA server certificate (DER) and key (PEM) made for the test."""
    from cryptography.x509.oid import ExtendedKeyUsageOID

    from agent.protocols.opcua.certs import write_self_signed

    cert, key = tmp / f"{name}-cert.der", tmp / f"{name}-key.pem"
    write_self_signed(cert, key, "urn:edge-agent:softplc:server", [ExtendedKeyUsageOID.SERVER_AUTH])
    return cert, key
