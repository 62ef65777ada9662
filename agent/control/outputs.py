"""OutputKeeper: the PLC outputs a dispatcher owns stay in the state it intends.

The dispatcher tells it what each bit should be once a command has (maybe) set it:
`stop_request` as latched, `alarm` as it is, `reject` high for the pulse and low
after. The keeper's own task
- ends every pulse when it is due, and retries the end until the PLC acknowledged
  it, across any number of reconnects: a pulse never stays high;
- after every reconnect, writes each owned output again to its intended state (a
  PLC restarted, or a write cut off with the link, is put right);
- at the first connect, writes every reject bit low (a pulse left high by a
  previous run that died mid-pulse ends).
A bit whose pulse is still being written by a command is left alone, and nothing is
written while a command is on the link (`may_write`): the command goes first.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable

from agent.logutil import RepeatLimiter
from agent.protocols.base import SinkState
from agent.protocols.link import PlcLink, PlcRejected, PlcUnavailable
from agent.tasks import cancel_and_wait

log = logging.getLogger(__name__)
IN_FLIGHT = float("inf")  # pulse end not scheduled yet: its ON write is in progress


class OutputKeeper:
    def __init__(self, link: PlcLink, request_timeout: float, *, poll_s: float = 0.02,
                 clock: Callable[[], float] = time.monotonic,
                 low_at_start: Iterable[str] = (),
                 may_write: Callable[[], bool] = lambda: True) -> None:
        self.link = link
        self.request_timeout = request_timeout
        self.poll_s = poll_s
        self.may_write = may_write  # False while a command is on the link: it goes first
        self.clock = clock
        self.intended: dict[str, bool] = {a: False for a in low_at_start}
        self._dirty: set[str] = set(self.intended)
        self._pulse_end: dict[str, float] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._connects = 0
        self.restores = 0  # reconnects after which the owned outputs were written again
        self.write_failures = 0
        self._limiter = RepeatLimiter(log, f"outputs on plc {link.name}")

    # -- what the dispatcher tells it ---------------------------------------------------
    def pulse_begins(self, address: str) -> None:
        """A command is about to write `address` high: leave it alone until told."""
        self.intended[address] = True
        self._pulse_end[address] = IN_FLIGHT
        self._dirty.discard(address)

    def pulse_sent(self, address: str, length_s: float) -> None:
        """The ON write went out (acknowledged or not): end the pulse after `length_s`."""
        self._pulse_end[address] = self.clock() + length_s
        self._wake.set()

    def hold(self, address: str, value: bool) -> None:
        """`address` was (maybe) just written `value`: keep it so after reconnects."""
        self.intended[address] = value
        self._pulse_end.pop(address, None)

    def busy(self) -> bool:
        """Pulses not ended yet, or outputs still to be written."""
        return bool(self._pulse_end or self._dirty)

    # -- lifecycle ------------------------------------------------------------------------
    def start(self) -> None:
        if self._task is None:
            self._connects = self.link.stats().connects
            if self._dirty:
                self._connects -= 1  # the first connect writes the low_at_start bits
            self._task = asyncio.create_task(self._run(), name=f"outputs-{self.link.name}")

    async def stop(self, timeout: float) -> None:
        """Let due pulse ends be written (bounded by `timeout`), then end the task."""
        end = self.clock() + timeout
        while self.busy() and self.clock() < end and self._task is not None:
            await asyncio.sleep(self.poll_s)
        if self.busy():
            log.error("plc %s: outputs not put back before shutdown: %s", self.link.name,
                      sorted(set(self._pulse_end) | self._dirty))
        if self._task is not None:
            await cancel_and_wait(self._task)
            self._task = None

    # -- task -------------------------------------------------------------------------------
    async def _run(self) -> None:
        while True:
            self._due_pulses()
            if self.link.state is SinkState.CONNECTED:
                self._after_reconnect()
                if self.may_write():
                    await self._flush()
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._sleep_s())

    def _due_pulses(self) -> None:
        now = self.clock()
        for address, due in list(self._pulse_end.items()):
            if due <= now:
                del self._pulse_end[address]
                self.intended[address] = False
                self._dirty.add(address)

    def _after_reconnect(self) -> None:
        connects = self.link.stats().connects
        if connects == self._connects:
            return
        self._connects = connects
        self._dirty |= {a for a in self.intended if a not in self._pulse_end}
        self.restores += 1

    async def _flush(self) -> None:
        for address in sorted(self._dirty):
            if not self.may_write():
                return
            if address in self._pulse_end:  # a new pulse took it over
                self._dirty.discard(address)
                continue
            value = self.intended[address]
            try:
                await self.link.write(address, value, self.request_timeout)
            except PlcRejected as exc:
                self.write_failures += 1
                self._dirty.discard(address)
                log.error("plc %s: refused putting %s back to %s: %s", self.link.name,
                          address, value, exc)
                continue
            except PlcUnavailable as exc:
                self.write_failures += 1
                self._limiter.failure("putting %s back to %s: %s (retrying)", address, value, exc)
                return
            self._dirty.discard(address)
            self._limiter.recovered("outputs written again")

    def _sleep_s(self) -> float:
        if self._dirty:
            return self.poll_s
        due = min(self._pulse_end.values(), default=IN_FLIGHT)
        return max(0.0, min(self.poll_s * 5, due - self.clock()))
