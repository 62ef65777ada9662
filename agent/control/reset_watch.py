"""ResetWatch: polls the PLC's `reset` signal; a rising edge calls back with the PLC name.

The agent uses it to clear its own latched-stop state when an operator resets
the line at the PLC. Read failures are counted and logged once per outage.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from agent.logutil import RepeatLimiter
from agent.protocols.link import PlcLink, PlcRejected, PlcUnavailable
from agent.tasks import Loop

log = logging.getLogger(__name__)


@dataclass
class ResetWatchStats:
    polls: int = 0
    resets: int = 0
    read_failures: int = 0


class ResetWatch(Loop[ResetWatchStats]):
    def __init__(
        self,
        link: PlcLink,
        address: str,
        callback: Callable[[str], None],
        poll_ms: int,
        *,
        timeout: float = 0.2,
    ) -> None:
        super().__init__(f"reset-watch-{link.name}", ResetWatchStats())
        self.link = link
        self.address = address
        self.callback = callback
        self.poll_s = poll_ms / 1000
        self.timeout = timeout
        self._last: bool | None = None
        self._limiter = RepeatLimiter(log, f"reset watch {link.name} {address}")

    async def _run(self) -> None:
        while True:
            await self.poll()
            await asyncio.sleep(self.poll_s)

    async def poll(self) -> None:
        try:
            value = bool(await self.link.read(self.address, self.timeout))
        except (PlcUnavailable, PlcRejected) as exc:
            self._stats.read_failures += 1
            self._limiter.failure("read failed: %s", exc)
            self._last = None  # after an outage, do not invent an edge from a stale value
            return
        self._limiter.recovered()
        self._stats.polls += 1
        rising = value and self._last is False
        self._last = value
        if rising:
            self._stats.resets += 1
            log.info("plc %s: operator reset seen at %s", self.link.name, self.address)
            self.callback(self.link.name)
