"""Progress watchdog: WATCHDOG=1 pings only while the pipeline makes progress.

systemd restarts a Type=notify service whose pings stop for longer than WatchdogSec=.
Pinging from a timer alone would prove only that the event loop runs; this watchdog
pings only when every progress source (each inference worker, the asyncio loop
heartbeat, ...) reported progress within `max_stall_s`, so a hung inference or a
dead loop stops the pings and systemd restarts the daemon.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from agent.health.sdnotify import SdNotifier
from agent.logutil import RepeatLimiter
from agent.tasks import cancel_and_wait

log = logging.getLogger(__name__)

DEFAULT_INTERVAL_S = 1.0  # check cadence when systemd did not ask for a watchdog


@dataclass(frozen=True, slots=True)
class WatchdogStats:
    pings: int
    withheld: int  # checks where a stalled source kept the ping back
    stalled: tuple[str, ...]  # sources stale at the last check


class ProgressWatchdog:
    """Ping the service manager at `notifier.watchdog_interval_s` while all sources progress.

    `progress()` returns name -> monotonic time (same clock as `clock`) of that source's
    last progress. An empty mapping counts as "no progress proven": no ping.
    """

    def __init__(
        self,
        notifier: SdNotifier,
        progress: Callable[[], dict[str, float]],
        max_stall_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_stall_s <= 0:
            raise ValueError(f"max_stall_s must be > 0, got {max_stall_s}")
        self._notifier = notifier
        self._progress = progress
        self._max_stall_s = max_stall_s
        self._clock = clock
        self._task: asyncio.Task[None] | None = None
        self._limiter = RepeatLimiter(log, "watchdog")
        self._pings = self._withheld = 0
        self._stalled: tuple[str, ...] = ()

    @property
    def interval_s(self) -> float:
        return self._notifier.watchdog_interval_s or DEFAULT_INTERVAL_S

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="sd-watchdog")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            await cancel_and_wait(task)

    def stats(self) -> WatchdogStats:
        return WatchdogStats(pings=self._pings, withheld=self._withheld, stalled=self._stalled)

    def stalled(self) -> tuple[str, ...]:
        """Sources that were stale at the last check (for /healthz and STATUS=)."""
        return self._stalled

    def check(self) -> bool:
        """One check: ping if every source is fresh. Returns whether it pinged."""
        self._stalled = self._stale_sources()
        if self._stalled:
            self._withheld += 1
            self._limiter.failure("no progress from %s: withholding WATCHDOG=1",
                                  ", ".join(self._stalled))
            return False
        self._limiter.recovered("all progress sources fresh again")
        if self._notifier.watchdog_interval_s is not None:
            self._notifier.watchdog()
            self._pings += 1
        return True

    def _stale_sources(self) -> tuple[str, ...]:
        try:
            progress = self._progress()
        except Exception as exc:  # a broken source must stop the pings, not the watchdog
            log.exception("watchdog: progress source failed")
            return (f"progress() raised {type(exc).__name__}",)
        if not progress:
            return ("(no progress sources)",)
        now = self._clock()
        return tuple(sorted(n for n, t in progress.items() if now - t > self._max_stall_s))

    async def _run(self) -> None:
        while True:
            self.check()
            await asyncio.sleep(self.interval_s)
