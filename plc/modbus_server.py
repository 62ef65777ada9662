"""The soft PLC's Modbus TCP face: serves the tag map from the shared PlcState.

Only mapped cells exist: any other address answers Modbus exception 2
(illegal data address), as a real PLC does. 32-bit values are high word first.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from pymodbus.constants import ExcCodes
from pymodbus.datastore import ModbusServerContext
from pymodbus.exceptions import NoSuchIdException
from pymodbus.server import ModbusTcpServer

from agent.protocols.modbus.address import ModbusAddress, parse_modbus_address
from agent.protocols.modbus.codec import CodecError, decode, encode
from plc.state import PlcState

log = logging.getLogger(__name__)
_TABLE = {1: "coil", 5: "coil", 15: "coil", 2: "di", 3: "hr", 6: "hr", 16: "hr", 23: "hr", 4: "ir"}
Cell = tuple[str, int]


class TagContext(ModbusServerContext):
    """A pymodbus datastore whose cells are the tags of a PlcState."""

    def __init__(self, state: PlcState, device_id: int) -> None:  # no super(): own storage
        self.state = state
        self.device_id = device_id
        self.simdevices = []
        self.old_simulator = True  # pymodbus then calls our async_getValues/async_setValues
        self.cells: dict[Cell, tuple[str, ModbusAddress, int]] = {}
        for key, tag in state.tags.tags.items():
            addr = parse_modbus_address(tag.modbus)
            for offset, cell in enumerate(addr.cells()):
                self.cells[cell] = (key, addr, offset)

    def device_ids(self) -> list[int]:
        return [self.device_id]

    def _check_device(self, device_id: int) -> None:
        if device_id not in (self.device_id, 0):
            raise NoSuchIdException(f"device id {device_id} does not exist")

    async def async_getValues(  # type: ignore[override]
        self, device_id: int, func_code: int, address: int, count: int = 1
    ) -> list[int] | list[bool] | ExcCodes:
        self._check_device(device_id)
        table = _TABLE.get(func_code)
        if table is None:
            return ExcCodes.ILLEGAL_FUNCTION
        out: list = []
        for index in range(address, address + count):
            cell = self.cells.get((table, index))
            if cell is None:
                return ExcCodes.ILLEGAL_ADDRESS
            out.append(self._cell_value(*cell))
        return out

    def _cell_value(self, key: str, addr: ModbusAddress, offset: int) -> int | bool:
        value = self.state.get(key)
        if addr.dtype == "bool":
            return bool(value)
        return encode(addr, value, "big")[offset]

    async def async_setValues(  # type: ignore[override]
        self, device_id: int, func_code: int, address: int, values: Sequence[int] | Sequence[bool]
    ) -> ExcCodes | None:
        self._check_device(device_id)
        table = _TABLE.get(func_code)
        if table not in ("coil", "hr"):
            return ExcCodes.ILLEGAL_FUNCTION
        cells = [self.cells.get((table, address + i)) for i in range(len(values))]
        if any(c is None for c in cells):
            return ExcCodes.ILLEGAL_ADDRESS
        return self._apply(table, address, list(values))

    def _apply(self, table: str, address: int, values: list) -> ExcCodes | None:
        pending: dict[str, tuple[ModbusAddress, list[int]]] = {}
        for i, raw in enumerate(values):
            key, addr, offset = self.cells[(table, address + i)]
            if addr.dtype == "bool":
                self.state.set(key, bool(raw), "modbus")
                continue
            _, words = pending.setdefault(key, (addr, encode(addr, self.state.get(key), "big")))
            words[offset] = int(raw)
        for key, (addr, words) in pending.items():
            try:
                self.state.set(key, decode(addr, words, "big"), "modbus")
            except CodecError:
                return ExcCodes.ILLEGAL_VALUE
        return None


async def start_modbus_server(state: PlcState, host: str, port: int, device_id: int) -> ModbusTcpServer:
    """Listen in the background; `await server.shutdown()` stops it."""
    server = ModbusTcpServer(TagContext(state, device_id), address=(host, port))
    await server.serve_forever(background=True)
    return server
