"""An in-memory PLC link for unit tests of `agent.control`: it satisfies the `PlcLink`
Protocol, keeps the PLC's memory in a dict, records every request with its time, and
lets a test script what the next matching requests meet.

Like the real links (`protocols/link.SupervisedLink`) it serialises requests (one at
a time, the wait for the link counts against the request's timeout), refuses requests
while not connected (`PlcUnavailable`), and counts into `stats()` what the real ones
count. A request whose time runs out after it went out raises `PlcNoAnswer`; its value
reached the PLC (the answer is what was lost), unless the fault says otherwise. Unlike a
real link, a timeout does not drop the connection: script `Fault.drop_link()` for that.

    link = FakePlcLink()
    await link.start()                              # connected, stats().connects == 1
    link.script(Fault.no_answer(), address="coil:0")  # the next write of coil:0
    link.script(Fault.busy(), Fault.busy())         # the next two writes, any address
    link.refuse("hr:10", "illegal data address")    # every request to hr:10 until accept()
    link.set("coil:7", True)                        # what the PLC holds, for reads
    link.feed("coil:7", [False, True, False])       # the next three reads of coil:7
    link.disconnect(); link.connect()               # a reconnect (stats().connects + 1)
    link.written("coil:0")                          # [True, ...]: the values that landed
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal, NoReturn

from agent.protocols.base import SinkState
from agent.protocols.link import (
    PlcBusy,
    PlcLink,
    PlcNoAnswer,
    PlcRejected,
    PlcStats,
    PlcUnavailable,
    Value,
)
from agent.types import Command, CommandKind, new_event_id

Op = Literal["write", "read"]
Outcome = Literal["pending", "ok", "no_answer", "unavailable", "busy", "rejected", "error"]


@dataclass(frozen=True)
class Fault:
    """What one request meets. `delay_s`: the PLC answers after this long (a request
    timeout shorter than that makes it a `PlcNoAnswer`); `error`: raised after the delay
    (`PlcError`s as the real links raise them; anything else plays a bug in a link);
    `applied`: the write reached the PLC's memory; `drop`: the connection is lost with it."""

    delay_s: float = 0.0
    error: Exception | None = None
    applied: bool = True
    drop: bool = False

    @classmethod
    def ok(cls) -> Fault:
        """Answered at once (a placeholder to let a request through in a sequence)."""
        return cls()

    @classmethod
    def delay(cls, seconds: float) -> Fault:
        return cls(delay_s=seconds)

    @classmethod
    def no_answer(cls, after_s: float = 0.0, applied: bool = True) -> Fault:
        """It went out, no answer came (`PlcNoAnswer`): it may have taken effect."""
        return cls(delay_s=after_s, error=PlcNoAnswer("fake: no answer"), applied=applied)

    @classmethod
    def unavailable(cls) -> Fault:
        """Never sent (`PlcUnavailable`)."""
        return cls(error=PlcUnavailable("fake: not sent"), applied=False)

    @classmethod
    def busy(cls) -> Fault:
        """The PLC answered "not now" (`PlcBusy`): not done, retry."""
        return cls(error=PlcBusy("fake: busy"), applied=False)

    @classmethod
    def reject(cls, reason: str = "illegal data address") -> Fault:
        """Refused for good (`PlcRejected`); the address is filled in by the link."""
        return cls(error=PlcRejected("", reason), applied=False)

    @classmethod
    def drop_link(cls, applied: bool = True) -> Fault:
        """The connection drops while waiting for the answer: `PlcNoAnswer`, disconnected."""
        return cls(error=PlcNoAnswer("fake: connection dropped"), applied=applied, drop=True)

    @classmethod
    def raises(cls, exc: Exception, applied: bool = False) -> Fault:
        """Something no link should raise (a bug below the caller)."""
        return cls(error=exc, applied=applied)


@dataclass
class Request:
    """One request as the PLC side saw it. `t` is when it went out (the link's clock);
    `items` the (address, value) pairs it carried (one for a write, several for a
    `write_many`, the read address with None for a read)."""

    op: Op
    items: list[tuple[str, Value | None]]
    t: float
    outcome: Outcome = "pending"
    landed: bool = False  # a write that reached the PLC's memory
    answered_at: float | None = None
    value: Value | None = None  # what a read returned

    @property
    def addresses(self) -> list[str]:
        return [a for a, _ in self.items]


@dataclass
class _Scripted:
    fault: Fault
    address: str | None
    op: Op


@dataclass
class FakePlcLink:
    """In-memory `PlcLink`; see the module docstring."""

    name: str = "plc1"
    clock: Callable[[], float] = time.monotonic
    batch: bool = True  # write_many is one request (Modbus FC16, one OPC UA Write)
    connect_on_start: bool = True
    round_trip_s: float | None = None  # what `Delivery` reads as the smoothed round trip
    stop_method: tuple[str, str] | None = None  # an OPC UA stop method (call_stop_method)
    values: dict[str, Value] = field(default_factory=dict)  # the PLC's memory
    requests: list[Request] = field(default_factory=list)
    on_write: Callable[[str, Value], None] | None = None  # the PLC reacting to a landed write
    _state: SinkState = field(default=SinkState.STARTING, init=False)
    _stats: PlcStats = field(default_factory=PlcStats, init=False)
    _script: list[_Scripted] = field(default_factory=list, init=False)
    _refusing: dict[str, str] = field(default_factory=dict, init=False)
    _feeds: dict[str, deque[Value | Exception]] = field(default_factory=dict, init=False)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock, init=False)
    _connected: asyncio.Event = field(default_factory=asyncio.Event, init=False)

    # -- PlcLink ------------------------------------------------------------------------
    @property
    def state(self) -> SinkState:
        return self._state

    def stats(self) -> PlcStats:
        return self._stats

    async def start(self) -> None:
        if self.connect_on_start and self._state is SinkState.STARTING:
            self.connect()

    async def close(self) -> None:
        self._connected.clear()
        self._state = SinkState.CLOSED

    async def write(self, address: str, value: Value, timeout: float) -> None:
        await self._request("write", [(address, value)], timeout)

    async def write_many(self, items: Sequence[tuple[str, Value]], timeout: float) -> None:
        if self.batch:
            await self._request("write", list(items), timeout)
            return
        end = time.monotonic() + timeout
        for address, value in items:
            await self.write(address, value, max(0.001, end - time.monotonic()))

    async def read(self, address: str, timeout: float) -> Value:
        req = await self._request("read", [(address, None)], timeout)
        assert req.value is not None
        return req.value

    async def probe_signal(self, signal: str, address: str, timeout: float) -> str:
        """PlcLink's commissioning check: like the links' default, the address reads back."""
        return f"reads {await self.read(address, timeout)!r}"

    async def call_stop_method(self, obj: str, method: str, args: list[Value],
                               timeout: float) -> None:
        """An OPC UA method call, recorded as a write of its first argument to `obj|method`."""
        await self._request("write", [(f"{obj}|{method}", args[0])], timeout)

    async def wait_connected(self, timeout: float) -> bool:
        try:
            await asyncio.wait_for(self._connected.wait(), timeout)
        except TimeoutError:
            return False
        return True

    # -- the test's controls ------------------------------------------------------------
    def connect(self) -> None:
        """(Re)connected: as after a reconnect of a real link, `stats().connects` rises."""
        self._stats.connects += 1
        self._state = SinkState.CONNECTED
        self._connected.set()

    def disconnect(self, reason: str = "fake: connection lost") -> None:
        if self._state is SinkState.CONNECTED:
            self._stats.disconnects += 1
        self._stats.last_error = reason
        self._state = SinkState.DISCONNECTED
        self._connected.clear()

    def script(self, *faults: Fault, address: str | None = None, op: Op = "write") -> None:
        """The next requests of `op` (to `address`, or any) meet these faults, in order."""
        self._script.extend(_Scripted(f, address, op) for f in faults)

    def refuse(self, address: str, reason: str = "illegal data address") -> None:
        """Every request to `address` is refused for good until `accept(address)`."""
        self._refusing[address] = reason

    def accept(self, address: str) -> None:
        self._refusing.pop(address, None)

    def set(self, address: str, value: Value) -> None:
        self.values[address] = value

    def feed(self, address: str, values: Iterable[Value | Exception]) -> None:
        """The next reads of `address` return these (an exception is raised), in order;
        after them, reads return the memory again."""
        self._feeds.setdefault(address, deque()).extend(values)

    @property
    def pending_faults(self) -> int:
        return len(self._script)

    # -- what the PLC saw ---------------------------------------------------------------
    def writes(self, address: str | None = None) -> list[tuple[Request, str, Value]]:
        """(request, address, value) of every write item that landed, oldest first."""
        return [(r, a, v) for r in self.requests if r.op == "write" and r.landed
                for a, v in r.items if v is not None and (address is None or a == address)]

    def written(self, address: str) -> list[Value]:
        """The values that reached `address`, oldest first."""
        return [v for _, _, v in self.writes(address)]

    def attempts(self, address: str | None = None, op: Op = "write") -> list[Request]:
        """Every request of `op` (touching `address`), whatever became of it."""
        return [r for r in self.requests
                if r.op == op and (address is None or address in r.addresses)]

    # -- the request gate -----------------------------------------------------------------
    async def _request(self, op: Op, items: list[tuple[str, Value | None]],
                       timeout: float) -> Request:
        req = Request(op, items, self.clock())
        self.requests.append(req)
        if self._state is not SinkState.CONNECTED:
            self._failed(req, "unavailable")
            raise PlcUnavailable(f"plc {self.name} not connected ({self._state})")
        locked = False
        fault = self._next_fault(op, req.addresses)
        try:
            async with asyncio.timeout(timeout):
                async with self._lock:
                    locked = True
                    req.t = self.clock()  # it goes out now
                    await self._serve(req, fault)
        except TimeoutError:
            if not locked:
                self._failed(req, "unavailable")
                raise PlcUnavailable(f"plc {self.name}: link busy for {timeout}s") from None
            self._stats.timeouts += 1
            self._land(req, fault.applied)
            self._failed(req, "no_answer")
            raise PlcNoAnswer(f"plc {self.name}: {op} {req.addresses} timed out") from None
        self._answered(req)
        return req

    async def _serve(self, req: Request, fault: Fault) -> None:
        if fault.delay_s:
            await asyncio.sleep(fault.delay_s)
        refused = [a for a in req.addresses if a in self._refusing]
        error = fault.error
        if refused:
            error = PlcRejected(refused[0], self._refusing[refused[0]])
        elif isinstance(error, PlcRejected):
            error = PlcRejected(req.addresses[0], error.reason)
        if not refused and fault.applied:
            self._land(req, True)
        if fault.drop:
            self.disconnect(str(error))
        if error is not None:
            self._raise(req, error)
        if req.op == "read":
            value = self._read_value(req.addresses[0])
            if isinstance(value, Exception):
                self._raise(req, value)
            req.value = value

    def _raise(self, req: Request, error: Exception) -> NoReturn:
        if isinstance(error, PlcRejected):
            self._stats.rejected += 1
            self._stats.refused[error.address] = error.reason
            self._failed(req, "rejected")
        elif isinstance(error, PlcBusy):
            self._stats.busy += 1
            self._failed(req, "busy")
        elif isinstance(error, PlcNoAnswer):
            self._failed(req, "no_answer")
        elif isinstance(error, PlcUnavailable):
            self._failed(req, "unavailable")
        else:
            self._failed(req, "error")
        raise error

    def _read_value(self, address: str) -> Value | Exception:
        feed = self._feeds.get(address)
        if feed:
            return feed.popleft()
        return self.values.get(address, 0)

    def _next_fault(self, op: Op, addresses: list[str]) -> Fault:
        for i, s in enumerate(self._script):
            if s.op == op and (s.address is None or s.address in addresses):
                return self._script.pop(i).fault
        return Fault()

    def _land(self, req: Request, applied: bool) -> None:
        if req.op != "write" or not applied or req.landed:
            return
        req.landed = True
        for address, value in req.items:
            assert value is not None
            self.values[address] = value
            if self.on_write is not None:
                self.on_write(address, value)

    def _answered(self, req: Request) -> None:
        req.outcome, req.answered_at = "ok", self.clock()
        if req.op == "write":
            self._stats.writes += 1
        else:
            self._stats.reads += 1
        for address in req.addresses:
            self._stats.refused.pop(address, None)

    def _failed(self, req: Request, outcome: Outcome) -> None:
        req.outcome, req.answered_at = outcome, self.clock()
        if req.op == "write":
            self._stats.write_failures += 1
        else:
            self._stats.read_failures += 1


def as_plc_link(link: FakePlcLink) -> PlcLink:
    """Typed proof that the fake is a `PlcLink` (mypy checks this assignment)."""
    return link


# -- small helpers of the control tests ---------------------------------------------------
def command(kind: CommandKind = CommandKind.STOP, deadline_s: float = 1.0, code: int = 301,
            line: str = "line1", station: str = "station1") -> Command:
    """A command created now, due `deadline_s` from now."""
    now = time.monotonic()
    return Command(kind=kind, plc="plc1", line=line, station=station, event_id=new_event_id(),
                   deadline=now + deadline_s, created=now, defect_code=code)


async def wait_for(cond: Callable[[], object], timeout: float = 2.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or cond}")
        await asyncio.sleep(0.002)
