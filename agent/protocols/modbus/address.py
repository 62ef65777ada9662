"""Modbus signal addresses: `<table>:<index>[:<type>]`.

table: coil | di (discrete input) | hr (holding register) | ir (input register)
type (registers only): u16 (default) | i16 | u32 | i32 | f32. 32-bit types take
two registers, ordered by the PLC's `word_order`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Table = Literal["coil", "di", "hr", "ir"]
_RE = re.compile(r"^(coil|di|hr|ir):(\d+)(?::(u16|i16|u32|i32|f32))?$")
WIDTH = {"bool": 1, "u16": 1, "i16": 1, "u32": 2, "i32": 2, "f32": 2}
MAX_INDEX = 65535


@dataclass(frozen=True)
class ModbusAddress:
    table: Table
    index: int
    dtype: str  # bool for coil/di

    @property
    def width(self) -> int:
        return WIDTH[self.dtype]

    @property
    def writable(self) -> bool:
        return self.table in ("coil", "hr")

    def cells(self) -> list[tuple[str, int]]:
        """(table, index) of every cell this address occupies."""
        return [(self.table, self.index + i) for i in range(self.width)]

    def __str__(self) -> str:
        suffix = f":{self.dtype}" if self.table in ("hr", "ir") and self.dtype != "u16" else ""
        return f"{self.table}:{self.index}{suffix}"


def parse_modbus_address(text: str) -> ModbusAddress:
    """Parse and range-check; raise ValueError saying what is wrong."""
    m = _RE.match(text.strip())
    if not m:
        raise ValueError(
            f"bad Modbus address {text!r}: expected coil:N, di:N, hr:N[:u16|i16|u32|i32|f32] or ir:N[:type]"
        )
    table, index, dtype = m.group(1), int(m.group(2)), m.group(3)
    if table in ("coil", "di"):
        if dtype:
            raise ValueError(f"bad Modbus address {text!r}: {table} holds one bit, no type")
        dtype = "bool"
    dtype = dtype or "u16"
    addr = ModbusAddress(table, index, dtype)  # type: ignore[arg-type]
    if index + addr.width - 1 > MAX_INDEX:
        raise ValueError(f"Modbus address {text!r} out of range (0..{MAX_INDEX})")
    return addr
