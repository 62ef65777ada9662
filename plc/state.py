"""One shared value store behind both servers of the soft PLC.

A write from Modbus, from OPC UA or from the simulation lands here; listeners
(the other protocol's mirror, the conveyor) hear about every change.
"""

from __future__ import annotations

from collections.abc import Callable

from plc.tags import TagMap

Value = bool | int | float
Listener = Callable[[str, Value, str], None]  # (tag key, new value, source)


class PlcState:
    def __init__(self, tags: TagMap) -> None:
        self.tags = tags
        self._values: dict[str, Value] = {k: t.default() for k, t in tags.tags.items()}
        self._listeners: list[Listener] = []
        self.writes: dict[str, int] = {k: 0 for k in tags.tags}  # writes seen per tag
        self.last_source: dict[str, str] = {}  # who wrote each tag last: modbus, opcua, ...

    def get(self, key: str) -> Value:
        return self._values[key]

    def snapshot(self) -> dict[str, Value]:
        return dict(self._values)

    def listen(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def set(self, key: str, value: Value, source: str = "sim") -> None:
        """Store a value; notify listeners only when it changed."""
        value = _coerce(self.tags.tags[key].type, value)
        if source != "sim":
            self.writes[key] += 1
            self.last_source[key] = source
        if self._values[key] == value and type(self._values[key]) is type(value):
            return
        self._values[key] = value
        for listener in list(self._listeners):
            listener(key, value, source)


def _coerce(dtype: str, value: Value) -> Value:
    if dtype == "bool":
        return bool(value)
    if dtype == "f32":
        return float(value)
    return int(value)
