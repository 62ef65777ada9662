"""Modbus PLC link factory (the registry's `modbus` PLC): TCP or RTU client, backoff."""

from __future__ import annotations

from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient

from agent.backoff import Backoff
from agent.protocols.base import SinkContext
from agent.protocols.modbus.config import ModbusPlcConfig
from agent.protocols.modbus.link import ModbusClient, ModbusLink


def build(name: str, cfg: ModbusPlcConfig, ctx: SinkContext) -> ModbusLink:
    """Factory: a ModbusLink for this PLC target (not started)."""
    timeout = cfg.timeout_ms / 1000
    if cfg.transport == "tcp":
        host, port = cfg.host or "", cfg.port

        def factory() -> ModbusClient:
            return AsyncModbusTcpClient(host, port=port, timeout=timeout, retries=0,
                                        reconnect_delay=0, name=f"plc-{name}")

        where = f"modbus tcp {host}:{port} device {cfg.device_id}"
    else:
        serial = cfg.serial
        assert serial is not None

        def factory() -> ModbusClient:
            return AsyncModbusSerialClient(
                serial.port, baudrate=serial.baudrate, parity=serial.parity,
                stopbits=serial.stopbits, bytesize=serial.bytesize, timeout=timeout,
                retries=0, reconnect_delay=0, name=f"plc-{name}")

        where = f"modbus rtu {serial.port} device {cfg.device_id}"
    backoff = Backoff(cfg.reconnect_initial_ms / 1000, cfg.reconnect_max_ms / 1000)
    return ModbusLink(name, factory, cfg.device_id, cfg.word_order, backoff,
                      verify_writes=cfg.verify_writes, where=where)
