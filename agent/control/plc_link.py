"""The PlcLink seam: one connection to one PLC, typed reads and writes.

Implementations: `agent.sinks.modbus_link.ModbusLink` (addresses like `coil:0`,
`hr:12:u32`) and `agent.sinks.opcua_link.OpcUaLink` (node ids like
`ns=2;s=Line1.Station1.StopRequest`). Both run a reconnect supervisor and
serialise requests (one at a time per device).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from agent.sinks.base import SinkState

Value = int | bool | float


class PlcError(Exception):
    """Base of the two ways a PLC request can fail."""


class PlcUnavailable(PlcError):
    """Not connected, timed out or the connection dropped: may succeed later.

    `maybe_applied` is True when the request went out and no answer came (timeout,
    connection dropped while waiting, Modbus exception 5 "acknowledge"): the PLC may have
    acted on it. It is False when the request was never sent or was answered "not done".
    """

    maybe_applied: bool = False


class PlcNoAnswer(PlcUnavailable):
    """The request went out and no answer came back: it may have taken effect."""

    maybe_applied = True


class PlcBusy(PlcUnavailable):
    """The PLC answered "not now" (Modbus exception 5, 6, 10 or 11): retry within the deadline."""

    def __init__(self, message: str, maybe_applied: bool = False) -> None:
        super().__init__(message)
        self.maybe_applied = maybe_applied


class PlcRejected(PlcError):
    """The PLC refused this request for good (bad address, missing node, type mismatch)."""

    def __init__(self, address: str, reason: str) -> None:
        super().__init__(f"{address}: {reason}")
        self.address = address
        self.reason = reason


@dataclass
class PlcStats:
    """Plain counters of one link; the health module reads them at scrape time."""

    connects: int = 0
    disconnects: int = 0
    connect_failures: int = 0
    writes: int = 0
    reads: int = 0
    write_failures: int = 0
    read_failures: int = 0
    timeouts: int = 0
    rejected: int = 0
    verify_mismatches: int = 0
    busy: int = 0  # transient refusals (Modbus exception 5, 6, 10, 11): retried
    round_trip_ms: float | None = None  # smoothed round trip of answered requests
    last_error: str | None = None
    # Permanent refusals by the PLC (Modbus exception 1-4, OPC UA Bad_NotWritable...):
    # address -> reason, dropped when a request to that address is accepted again. Health
    # reads `refusing` (or this map) to degrade while the PLC refuses writes.
    refused: dict[str, str] = field(default_factory=dict)

    @property
    def refusing(self) -> bool:
        """True while the PLC refuses a request to at least one address for good."""
        return bool(self.refused)


@runtime_checkable
class PlcLink(Protocol):
    name: str

    @property
    def state(self) -> SinkState: ...

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def write(self, address: str, value: Value, timeout: float) -> None: ...

    async def read(self, address: str, timeout: float) -> Value: ...

    def stats(self) -> PlcStats: ...
