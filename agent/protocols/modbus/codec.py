"""Values <-> Modbus registers for the address types of `modbus_address`.

32-bit types take two 16-bit registers; `word_order` "big" puts the high word
first (Modicon convention), "little" the low word first. Bytes inside a
register are always big-endian, as the Modbus spec says. `register_runs` groups
writes to holding registers that follow each other into runs, each one FC16 request.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field
from typing import Literal

from agent.protocols.modbus.address import ModbusAddress

WordOrder = Literal["big", "little"]
_RANGES = {
    "u16": (0, 0xFFFF),
    "i16": (-0x8000, 0x7FFF),
    "u32": (0, 0xFFFFFFFF),
    "i32": (-0x80000000, 0x7FFFFFFF),
}
_FORMAT = {"u16": ">H", "i16": ">h", "u32": ">I", "i32": ">i", "f32": ">f"}


class CodecError(ValueError):
    """The value does not fit the address type."""


def check_value(addr: ModbusAddress, value: int | bool | float) -> int | bool | float:
    """Refuse a value the address type cannot hold; return it normalised."""
    if addr.dtype == "bool":
        if isinstance(value, bool) or value in (0, 1):
            return bool(value)
        raise CodecError(f"{addr} holds a bit; got {value!r}")
    if addr.dtype == "f32":
        if isinstance(value, bool) or not math.isfinite(float(value)):
            raise CodecError(f"{addr} holds f32; got {value!r}")
        return float(value)
    if isinstance(value, bool) or not float(value).is_integer():
        raise CodecError(f"{addr} holds {addr.dtype}; got {value!r}")
    lo, hi = _RANGES[addr.dtype]
    if not lo <= int(value) <= hi:
        raise CodecError(f"{addr} holds {addr.dtype} ({lo}..{hi}); got {value!r}")
    return int(value)


def encode(addr: ModbusAddress, value: int | bool | float, word_order: WordOrder) -> list[int]:
    """Registers to write for `value` (not for coils)."""
    raw = struct.pack(_FORMAT[addr.dtype], check_value(addr, value))
    words = [int.from_bytes(raw[i : i + 2], "big") for i in range(0, len(raw), 2)]
    return words if word_order == "big" else list(reversed(words))


def decode(addr: ModbusAddress, registers: list[int], word_order: WordOrder) -> int | float:
    """Value from the registers read at `addr` (not for coils/discrete inputs)."""
    if len(registers) != addr.width:
        raise CodecError(f"{addr}: expected {addr.width} register(s), got {len(registers)}")
    words = registers if word_order == "big" else list(reversed(registers))
    raw = b"".join(int(w).to_bytes(2, "big") for w in words)
    value = struct.unpack(_FORMAT[addr.dtype], raw)[0]
    return float(value) if addr.dtype == "f32" else int(value)


@dataclass
class RegisterRun:
    """Writes that one request can carry: holding registers back to back, or one write."""

    addresses: list[ModbusAddress] = field(default_factory=list)
    values: list[int | bool | float] = field(default_factory=list)
    words: list[int] = field(default_factory=list)

    @property
    def start(self) -> int:
        return self.addresses[0].index

    @property
    def label(self) -> str:
        last = self.addresses[-1]
        return f"hr:{self.start}..{last.index + last.width - 1}"

    def takes(self, addr: ModbusAddress) -> bool:
        last = self.addresses[-1] if self.addresses else None
        return (last is not None and last.table == "hr" and addr.table == "hr"
                and addr.index == last.index + last.width)


def register_runs(items: list[tuple[ModbusAddress, int | bool | float]],
                  word_order: WordOrder) -> list[RegisterRun]:
    """Split `items` (in order) into runs; each value checked against its address type."""
    runs: list[RegisterRun] = []
    for addr, value in items:
        value = check_value(addr, value)
        if not runs or not runs[-1].takes(addr):
            runs.append(RegisterRun())
        run = runs[-1]
        run.addresses.append(addr)
        run.values.append(value)
        if addr.table == "hr":
            run.words.extend(encode(addr, value, word_order))
    return runs
