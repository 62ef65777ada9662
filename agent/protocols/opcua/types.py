"""Fit a Python value to an OPC UA node's VariantType, or refuse it (before any write)."""

from __future__ import annotations

import math

from asyncua import ua

from agent.protocols.link import PlcRejected, Value

V = ua.VariantType
INT_RANGES = {
    V.SByte: (-0x80, 0x7F), V.Byte: (0, 0xFF), V.Int16: (-0x8000, 0x7FFF), V.UInt16: (0, 0xFFFF),
    V.Int32: (-0x80000000, 0x7FFFFFFF), V.UInt32: (0, 0xFFFFFFFF),
    V.Int64: (-(1 << 63), (1 << 63) - 1), V.UInt64: (0, (1 << 64) - 1),
}


def coerce(address: str, vtype: ua.VariantType, value: Value) -> Value:
    """The value as the node's type takes it; PlcRejected naming the node when it does not fit."""
    if vtype is V.Boolean:
        if isinstance(value, bool) or value in (0, 1):
            return bool(value)
        raise PlcRejected(address, f"node is Boolean; refusing {value!r}")
    if vtype in INT_RANGES:
        if isinstance(value, float) and not value.is_integer():
            raise PlcRejected(address, f"node is {vtype.name}; refusing non-integer {value!r}")
        lo, hi = INT_RANGES[vtype]
        if not lo <= int(value) <= hi:
            raise PlcRejected(address, f"node is {vtype.name} ({lo}..{hi}); refusing {value!r}")
        return int(value)
    if vtype in (V.Float, V.Double):
        if isinstance(value, bool) or not math.isfinite(float(value)):
            raise PlcRejected(address, f"node is {vtype.name}; refusing {value!r}")
        return float(value)
    raise PlcRejected(address, f"node is {vtype.name}; the agent writes only bits and numbers")
