"""Heartbeat: a counter the PLC watchdog watches, plus the status bits word.

The counter advances only while the whole chain is healthy: when the camera
stalls or the model fails, it stops, and the PLC's watchdog trips. The agent
dying must never look like "no defects". The status word is written every
interval regardless, so the PLC can show why.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from agent.control.plc_link import PlcLink, PlcRejected, PlcUnavailable
from agent.logutil import RepeatLimiter
from agent.sinks.plc_common import HeartbeatConfig
from agent.tasks import OwnedTask

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StatusBits:
    healthy: bool
    camera_ok: bool
    model_ok: bool
    degraded: bool

    def word(self) -> int:
        """bit0 healthy, bit1 camera ok, bit2 model ok, bit3 degraded."""
        return (int(self.healthy) | int(self.camera_ok) << 1 | int(self.model_ok) << 2
                | int(self.degraded) << 3)


@dataclass
class HeartbeatStats:
    beats: int = 0  # counter writes acknowledged
    held: int = 0  # intervals the counter was held because the chain was unhealthy
    status_writes: int = 0
    write_failures: int = 0
    counter: int = 0


class Heartbeat:
    def __init__(
        self,
        link: PlcLink,
        cfg: HeartbeatConfig,
        status: Callable[[], StatusBits],
        *,
        timeout: float | None = None,
    ) -> None:
        self.link = link
        self.cfg = cfg
        self.status = status
        self.interval = cfg.interval_ms / 1000
        self.timeout = timeout if timeout is not None else min(0.5, self.interval)
        self._bg = OwnedTask(f"heartbeat-{self.link.name}")
        self._stats = HeartbeatStats()
        self._limiter = RepeatLimiter(log, f"heartbeat to plc {link.name}")

    def stats(self) -> HeartbeatStats:
        return self._stats

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
        """One interval: counter (only while healthy), then the status word."""
        bits = self.status()
        if self.cfg.counter:
            if bits.healthy:
                nxt = (self._stats.counter + 1) % 0x10000
                if await self._write(self.cfg.counter, nxt):
                    self._stats.counter = nxt
                    self._stats.beats += 1
            else:
                self._stats.held += 1
        if self.cfg.status and await self._write(self.cfg.status, bits.word()):
            self._stats.status_writes += 1

    async def _write(self, address: str, value: int) -> bool:
        try:
            await self.link.write(address, value, self.timeout)
        except (PlcUnavailable, PlcRejected) as exc:
            self._stats.write_failures += 1
            self._limiter.failure("write %s failed: %s", address, exc)
            return False
        self._limiter.recovered("writing again")
        return True
