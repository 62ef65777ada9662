"""Records -> the durable outbox, in order per sink, then wake that sink's forwarder.

One task drains a queue so that records of one sink are enqueued in the order
the decision engine produced them; `enqueue` returns only after the commit.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence

from agent.outbox.forwarder import Forwarder
from agent.outbox.store import Outbox
from agent.types import Record

log = logging.getLogger(__name__)


class RecordRouter:
    def __init__(self, outbox: Outbox, forwarders: Mapping[str, Forwarder],
                 sinks_for: Callable[[Record], Sequence[str]]) -> None:
        self.outbox = outbox
        self.forwarders = forwarders
        self.sinks_for = sinks_for
        self._queue: asyncio.Queue[Record | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self.routed = 0
        self.unrouted = 0
        self.refused = 0

    def submit(self, record: Record) -> None:
        """Called on the loop; never blocks."""
        self._queue.put_nowait(record)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="record-router")

    async def stop(self) -> None:
        """Enqueue everything already submitted, then end."""
        if self._task is None:
            return
        self._queue.put_nowait(None)
        await self._task
        self._task = None

    async def _run(self) -> None:
        while True:
            record = await self._queue.get()
            if record is None:
                return
            await self._route(record)

    async def _route(self, record: Record) -> None:
        sinks = self.sinks_for(record)
        if not sinks:
            self.unrouted += 1
            log.debug("record %s (%s) has no sink", record.id, record.kind)
            return
        for sink in sinks:
            try:
                ok = await self.outbox.enqueue(sink, record)
            except Exception:  # the outbox reports its own errors; never kill the router
                log.exception("outbox enqueue failed for sink %s", sink)
                ok = False
            if ok:
                self.routed += 1
                fwd = self.forwarders.get(sink)
                if fwd is not None:
                    fwd.wake()
            else:
                self.refused += 1
