"""Modbus PLC target plugin (pymodbus): config model and factory."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field, model_validator

from agent.config.base import Strict
from agent.config.plugin import Plugin
from agent.protocols.plc_common import PlcCommon

if TYPE_CHECKING:  # the runtime side is imported by the factory, not by the config
    pass


class SerialSettings(Strict):
    port: str = Field(description="Serial device, e.g. /dev/ttyUSB0.")
    baudrate: int = Field(19200, description="Baud rate.")
    parity: Literal["N", "E", "O"] = Field("E", description="Parity.")
    stopbits: Literal[1, 2] = Field(1, description="Stop bits.")
    bytesize: Literal[7, 8] = Field(8, description="Data bits.")


class ModbusPlcConfig(PlcCommon):
    type: Literal["modbus"] = Field(description="Modbus PLC (TCP or RTU).")
    transport: Literal["tcp", "rtu"] = Field("tcp", description="Modbus TCP or RTU over serial.")
    host: str | None = Field(None, description="PLC host (tcp).")
    port: int = Field(502, ge=1, le=65535, description="PLC port (tcp).")
    serial: SerialSettings | None = Field(None, description="Serial line settings (rtu).")
    device_id: int = Field(1, ge=0, le=255, description="Modbus unit / device id.")
    word_order: Literal["big", "little"] = Field("big", description="Order of the two registers of 32-bit values (big = high word first).")
    verify_writes: bool = Field(False, description="Read back every command write and compare.")
    poll_ms: int = Field(20, ge=5, le=10000, description="Poll period of trigger and reset inputs.")

    @model_validator(mode="after")
    def _transport_settings(self) -> ModbusPlcConfig:
        if self.transport == "tcp" and not self.host:
            raise ValueError("transport tcp needs `host`")
        if self.transport == "rtu" and self.serial is None:
            raise ValueError("transport rtu needs `serial` settings")
        return self


PLC = Plugin("modbus", ModbusPlcConfig, "agent.protocols.modbus.factory:build")
