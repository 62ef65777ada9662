"""Heartbeat: a counter the PLC watchdog watches, plus the status bits word.

The counter means "inspecting now": it advances only while every station mapped to the
PLC inspects fresh, changing frames. A paused station, a frozen or stalled camera, a
failing model, or a PLC that refuses the heartbeat's own writes all hold it, and the
PLC's watchdog trips. The agent dying must never look like "no defects". The status
word is written every interval regardless, so the PLC can show why.

A PLC that refuses writes (the link's `PlcRejected`: a Modbus exception, a Bad OPC UA
status) is marked *refusing* until one whole interval's writes are accepted again;
meanwhile the unchanged counter value is written as a probe. Write errors are logged
once, then at DEBUG with a WARNING summary every `SUMMARY_S`, and once on recovery.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from agent.protocols.link import PlcError, PlcLink, PlcRejected, PlcUnavailable
from agent.protocols.plc_common import HeartbeatConfig
from agent.tasks import OwnedTask

log = logging.getLogger(__name__)

SUMMARY_S = 60.0  # while writes keep failing: one WARNING summary this often


@dataclass(frozen=True)
class StatusBits:
    healthy: bool
    camera_ok: bool
    model_ok: bool
    degraded: bool
    paused: bool = False

    def word(self) -> int:
        """bit0 healthy (the counter advances), bit1 camera ok, bit2 model ok, bit3 degraded,
        bit4 paused by an operator."""
        return (int(self.healthy) | int(self.camera_ok) << 1 | int(self.model_ok) << 2
                | int(self.degraded) << 3 | int(self.paused) << 4)


@dataclass
class HeartbeatStats:
    beats: int = 0  # counter writes acknowledged
    held: int = 0  # intervals the counter was held (chain unhealthy or PLC refusing)
    status_writes: int = 0
    write_failures: int = 0
    refused: int = 0  # writes the PLC refused (part of write_failures)
    counter: int = 0
    refusing: bool = False  # the PLC refuses the heartbeat's writes right now


@dataclass(frozen=True)
class Refusal:
    """The PLC refuses the heartbeat's writes: since when (monotonic), and the last error."""

    since: float
    error: str


class _FailureLog:
    """One beat's outcome to the log: the first failure at WARNING, repeats at DEBUG with a
    WARNING summary every SUMMARY_S, the recovery once at INFO. A beat with one refused
    and one accepted write is one failure, never a failure and a recovery (that flip-flop
    once wrote 99 lines in 20 s)."""

    def __init__(self, what: str, clock: Callable[[], float]) -> None:
        self.what = what
        self._clock = clock
        self.failures = 0
        self._summary_at = 0.0
        self._since_summary = 0

    def failed(self, error: str, logged: bool = False) -> None:
        """`logged`: the caller has just logged this failure itself."""
        now = self._clock()
        self.failures += 1
        self._since_summary += 1
        if self.failures == 1 or logged:
            if not logged:
                log.warning("%s: %s", self.what, error)
            self._summary_at, self._since_summary = now + SUMMARY_S, 0
        elif now >= self._summary_at:
            log.warning("%s: still failing: %d failed interval(s) in the last %.0f s; last: %s",
                        self.what, self._since_summary, SUMMARY_S, error)
            self._summary_at, self._since_summary = now + SUMMARY_S, 0
        else:
            log.debug("%s: %s (repeat %d)", self.what, error, self.failures)

    def ok(self, logged: bool = False) -> None:
        if self.failures and not logged:
            log.info("%s: writes accepted again after %d failed interval(s)", self.what,
                     self.failures)
        self.failures = 0


class Heartbeat:
    def __init__(
        self,
        link: PlcLink,
        cfg: HeartbeatConfig,
        status: Callable[[], StatusBits],
        *,
        timeout: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.link = link
        self.cfg = cfg
        self.status = status
        self.interval = cfg.interval_ms / 1000
        self.timeout = timeout if timeout is not None else min(0.5, self.interval)
        self._clock = clock
        self._bg = OwnedTask(f"heartbeat-{self.link.name}")
        self._stats = HeartbeatStats()
        self._log = _FailureLog(f"heartbeat to plc {link.name}", clock)
        self._refusal: Refusal | None = None

    def stats(self) -> HeartbeatStats:
        return self._stats

    @property
    def refusal(self) -> Refusal | None:
        """Set while the PLC refuses the heartbeat's writes (for health and alarms)."""
        return self._refusal

    async def start(self) -> None:
        if self.cfg.counter or self.cfg.status:
            self._bg.start(self._run)

    async def stop(self) -> None:
        await self._bg.stop()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while True:
            await self.beat()
            next_at += self.interval
            now = loop.time()
            if next_at < now:  # fell behind (PLC down, slow writes): no burst to catch up
                next_at = now + self.interval
            await asyncio.sleep(next_at - now)

    async def beat(self) -> None:
        """One interval: counter (advanced only while healthy and accepted), then status."""
        bits = self.status()
        advance = bits.healthy and self._refusal is None
        errors: list[PlcError] = []
        if self.cfg.counter:
            if not advance:
                self._stats.held += 1
            if advance or self._refusal is not None:  # held by a refusal: probe, unchanged
                nxt = (self._stats.counter + int(advance)) % 0x10000
                if await self._write(self.cfg.counter, nxt, errors) and advance:
                    self._stats.counter = nxt
                    self._stats.beats += 1
        if self.cfg.status:
            word = bits.word() & ~1 if self._refusal is not None else bits.word()
            if await self._write(self.cfg.status, word, errors):
                self._stats.status_writes += 1
        self._settle(errors)

    async def _write(self, address: str, value: int, errors: list[PlcError]) -> bool:
        try:
            await self.link.write(address, value, self.timeout)
        except (PlcUnavailable, PlcRejected) as exc:
            self._stats.write_failures += 1
            errors.append(exc)
            return False
        return True

    def _settle(self, errors: list[PlcError]) -> None:
        """After a beat: refusing or not, and one line of log at most."""
        refused = [e for e in errors if isinstance(e, PlcRejected)]
        self._stats.refused += len(refused)
        text = "; ".join(f"write {e}" for e in errors)
        began = ended = False
        if refused:
            prev = self._refusal
            began = prev is None
            since = self._clock() if prev is None else prev.since
            self._refusal = Refusal(since, f"refuses writes: {refused[-1]}")
            if began:
                log.error("plc %s refuses the heartbeat's writes (%s): the counter is held "
                          "until it accepts them", self.link.name, text)
        elif not errors and self._refusal is not None:
            ended = True
            log.warning("plc %s accepts the heartbeat's writes again after %.1f s: counting",
                        self.link.name, self._clock() - self._refusal.since)
            self._refusal = None
        self._stats.refusing = self._refusal is not None
        if errors:
            self._log.failed(text, logged=began)
        else:
            self._log.ok(logged=ended)
