"""The PlcLink seam: one connection to one PLC, typed reads and writes, and the shared
machinery every link is built on (`SupervisedLink`).

Implementations: `agent.protocols.modbus.link.ModbusLink` (addresses like `coil:0`,
`hr:12:u32`) and `agent.protocols.opcua.link.OpcUaLink` (node ids like
`ns=2;s=Line1.Station1.StopRequest`). Both run a reconnect supervisor and
serialise requests (one at a time per device).

SupervisedLink: Shared machinery of PLC links: the reconnect supervisor and the request gate.

A subclass supplies three small steps: `_open()` (build a *fresh* client and
connect it; raise on failure), `_close_client()` (drop it) and `_alive()`
(cheap liveness check). The supervisor loops connect -> watch -> drop ->
backoff and never reuses a dead client. `_request()` runs one request at a
time under a lock, with a timeout; transport errors mark the link lost so the
supervisor reconnects. A request that went out and got no answer raises
`PlcNoAnswer` (it may have taken effect), one never sent `PlcUnavailable`. The
link keeps a smoothed round trip of answered requests (`round_trip_s`) and the
addresses the PLC refuses for good (`stats().refused`).
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, TypeVar, runtime_checkable

from agent.backoff import Backoff
from agent.logutil import RepeatLimiter
from agent.protocols.base import SinkState
from agent.tasks import cancel_and_wait

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


# Signal kinds, for commissioning checks (`probe_signal`): which are bits, which the agent writes
BIT_SIGNALS = frozenset({"stop_request", "reject", "alarm", "trigger", "busy", "done", "reset"})
AGENT_WRITES = frozenset({"stop_request", "reject", "alarm", "defect_code", "defect_count",
                          "last_event_seq", "busy", "done", "result", "result_code",
                          "result_part_id", "heartbeat", "status"})


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

    async def probe_signal(self, signal: str, address: str, timeout: float) -> str:
        """Commissioning check, never actuating: the address fits `signal` and reads back;
        returns what was found, raises PlcRejected / PlcError when it does not fit."""
        ...


log = logging.getLogger(__name__)
T = TypeVar("T")
WATCH_PERIOD_S = 0.25
RTT_WEIGHT = 0.2  # of a new sample in the smoothed round trip


class ConfigurationFailure(Exception):
    """Raised by `_open()` when retrying cannot help (bad certificate, bad credentials)."""


class SupervisedLink(abc.ABC):
    name: str

    def __init__(self, name: str, backoff: Backoff) -> None:
        self.name = name
        self._backoff = backoff
        self._state = SinkState.STARTING
        self._stats = PlcStats()
        self._lock = asyncio.Lock()
        self._lost = asyncio.Event()
        self._connected = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._limiter = RepeatLimiter(log, f"plc {name}")
        self._rtt: float | None = None

    # -- steps supplied by subclasses -------------------------------------------------
    @abc.abstractmethod
    async def _open(self) -> None:
        """Create a fresh client and connect it (never reuse a dead one)."""

    @abc.abstractmethod
    async def _close_client(self) -> None:
        """Close the current client, if any."""

    @abc.abstractmethod
    def _alive(self) -> bool:
        """Is the current client still connected?"""

    @abc.abstractmethod
    async def write(self, address: str, value: Value, timeout: float) -> None:
        """Write one signal; acknowledged when it returns."""

    @abc.abstractmethod
    async def read(self, address: str, timeout: float) -> Value:
        """Read one signal."""

    async def write_many(self, items: Sequence[tuple[str, Value]], timeout: float) -> None:
        """Write several signals in this order within `timeout`; a link whose protocol can
        carry them in one request (Modbus FC16, one OPC UA Write) overrides this."""
        end = time.monotonic() + timeout
        for address, value in items:
            await self.write(address, value, max(0.001, end - time.monotonic()))

    @property
    def round_trip_s(self) -> float | None:
        """Smoothed round trip of the requests the PLC answered; None before the first."""
        return self._rtt

    # -- public ---------------------------------------------------------------------
    @property
    def state(self) -> SinkState:
        return self._state

    def stats(self) -> PlcStats:
        return self._stats

    async def start(self) -> None:
        self._closing = False
        if self._task is None:
            self._task = asyncio.create_task(self._supervise(), name=f"plc-{self.name}")

    async def probe_signal(self, signal: str, address: str, timeout: float) -> str:
        """Commissioning check (PlcLink): by default, the address reads back."""
        return f"reads {await self.read(address, timeout)!r}"

    async def wait_connected(self, timeout: float) -> bool:
        """For probe and tests: True once connected within `timeout` seconds."""
        try:
            await asyncio.wait_for(self._connected.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def close(self) -> None:
        self._closing = True  # the supervisor ends even if a cancellation is swallowed
        task, self._task = self._task, None
        if task is not None:
            await cancel_and_wait(task)
        await self._drop()
        self._state = SinkState.CLOSED

    # -- supervisor -----------------------------------------------------------------
    async def _supervise(self) -> None:
        while not self._closing:
            if await self._try_connect():
                await self._watch()
                await self._drop()
                self._stats.disconnects += 1
                self._limiter.failure("connection lost; reconnecting")
            if self._state is SinkState.FAILED:
                await asyncio.sleep(self._backoff.cap_s)
            else:
                await asyncio.sleep(self._backoff.next_delay())

    async def _try_connect(self) -> bool:
        try:
            await self._open()
        except ConfigurationFailure as exc:
            self._fail(str(exc), SinkState.FAILED)
            return False
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - any transport error means "retry later"
            self._fail(f"connect failed: {exc}", SinkState.DISCONNECTED)
            return False
        self._stats.connects += 1
        self._state = SinkState.CONNECTED
        self._lost.clear()
        self._connected.set()
        self._backoff.reset()
        self._limiter.recovered("connected")
        log.info("plc %s: connected", self.name)
        return True

    def _fail(self, msg: str, state: SinkState) -> None:
        self._stats.connect_failures += 1
        self._stats.last_error = msg
        self._state = state
        self._limiter.failure("%s", msg)

    async def _watch(self) -> None:
        while not self._lost.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._lost.wait(), WATCH_PERIOD_S)
            if not self._alive():
                return

    async def _drop(self) -> None:
        self._connected.clear()
        if self._state is SinkState.CONNECTED:
            self._state = SinkState.DISCONNECTED
        with contextlib.suppress(Exception):
            await self._close_client()

    def mark_lost(self, reason: str) -> None:
        self._stats.last_error = reason
        self._lost.set()
        self._connected.clear()
        if self._state is SinkState.CONNECTED:
            self._state = SinkState.DISCONNECTED

    # -- request gate ---------------------------------------------------------------
    async def _request(
        self, what: str, address: str, call: Callable[[], Awaitable[T]], timeout: float
    ) -> T:
        """Run `call` alone on the link within `timeout`; map failures to PlcError."""
        if self._state is not SinkState.CONNECTED:
            raise PlcUnavailable(f"plc {self.name} not connected ({self._state}); {what} {address}")
        locked = sent = False
        t0 = 0.0
        try:
            async with asyncio.timeout(timeout):
                async with self._lock:
                    locked = True
                    sent, t0 = self._alive(), time.monotonic()
                    result = await call()
        except PlcRejected as exc:
            self._stats.rejected += 1
            self._stats.refused[address] = exc.reason
            raise
        except PlcBusy:
            self._stats.busy += 1
            raise
        except PlcUnavailable:
            raise
        except TimeoutError:
            if not locked:  # its time ran out waiting for another request on the link: the
                # link is fine (a heartbeat write was on it), nothing of this one went out
                raise PlcUnavailable(f"plc {self.name}: {what} {address} not sent: the link "
                                     f"was busy for its {timeout * 1000:.0f} ms") from None
            self._stats.timeouts += 1
            msg = f"{what} {address} timed out after {timeout * 1000:.0f} ms"
            self.mark_lost(msg)
            raise (PlcNoAnswer if sent else PlcUnavailable)(f"plc {self.name}: {msg}") from None
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - transport errors
            self.mark_lost(f"{what} {address}: {exc}")
            kind = PlcNoAnswer if sent else PlcUnavailable
            raise kind(f"plc {self.name}: {what} {address} failed: {exc}") from exc
        self._answered(address, time.monotonic() - t0)
        return result

    def _answered(self, address: str, rtt: float) -> None:
        self._rtt = rtt if self._rtt is None else self._rtt + RTT_WEIGHT * (rtt - self._rtt)
        self._stats.round_trip_ms = self._rtt * 1000
        self._stats.refused.pop(address, None)
