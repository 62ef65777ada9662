"""Shared machinery of PLC links: the reconnect supervisor and the request gate.

A subclass supplies three small steps: `_open()` (build a *fresh* client and
connect it; raise on failure), `_close_client()` (drop it) and `_alive()`
(cheap liveness check). The supervisor loops connect -> watch -> drop ->
backoff and never reuses a dead client. `_request()` runs one request at a
time under a lock, with a timeout; transport errors mark the link lost so the
supervisor reconnects.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from agent.control.backoff import Backoff
from agent.control.plc_link import PlcRejected, PlcStats, PlcUnavailable
from agent.logutil import RepeatLimiter
from agent.sinks.base import SinkState
from agent.tasks import cancel_and_wait

log = logging.getLogger(__name__)
T = TypeVar("T")
WATCH_PERIOD_S = 0.25


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
                await asyncio.sleep(self._backoff.max_s)
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
        try:
            async with asyncio.timeout(timeout):
                async with self._lock:
                    return await call()
        except PlcRejected:
            self._stats.rejected += 1
            raise
        except PlcUnavailable:
            raise
        except TimeoutError:
            self._stats.timeouts += 1
            self.mark_lost(f"{what} {address} timed out after {timeout * 1000:.0f} ms")
            raise PlcUnavailable(
                f"plc {self.name}: {what} {address} timed out after {timeout * 1000:.0f} ms"
            ) from None
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - transport errors
            self.mark_lost(f"{what} {address}: {exc}")
            raise PlcUnavailable(f"plc {self.name}: {what} {address} failed: {exc}") from exc
