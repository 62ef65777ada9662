"""Records -> the durable outbox, in order per sink, then wake that sink's forwarder.

One task drains a queue so that records of one sink are enqueued in the order
the decision engine produced them. It takes everything waiting at once (up to
MAX_BATCH) and commits each sink's share in one transaction: a burst of records
costs one fsync, not one per record. While one batch is being committed the next
is gathered and queued behind it (DEPTH batches at most): the outbox's writer
takes operations in the order they were queued, so the order holds.

Where a record goes is the router's to know: a station's records go to the sinks its
config lists (`routes`, replaced by a reload), agent-level records (no station) to every
sink.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from agent.outbox.forwarder import Forwarder
from agent.outbox.store import Outbox
from agent.types import Record

if TYPE_CHECKING:
    from agent.configfile import AgentConfig

log = logging.getLogger(__name__)
MAX_BATCH = 512
DEPTH = 2


Routes = Mapping[str, Sequence[str]]  # station key "line/station" -> sink names


def station_routes(cfg: AgentConfig) -> dict[str, tuple[str, ...]]:
    """Each station's sinks, as its config lists them."""
    return {f"{line}/{name}": tuple(st.sinks) for line, name, st in cfg.stations()}


class RecordRouter:
    def __init__(self, outbox: Outbox, forwarders: Mapping[str, Forwarder], routes: Routes,
                 every: Iterable[str]) -> None:
        """`every`: the sinks of agent-level records; a record of a station not in
        `routes` goes nowhere (counted `unrouted`)."""
        self.outbox = outbox
        self.forwarders = forwarders
        self.routes: Routes = dict(routes)
        self.every = tuple(every)
        self._queue: asyncio.Queue[Record | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self.routed = 0
        self.unrouted = 0
        self.refused = 0

    def submit(self, record: Record) -> None:
        """Called on the loop; never blocks."""
        self._queue.put_nowait(record)

    def set_routes(self, routes: Routes) -> None:
        """A reload's station sinks: records routed from now on follow them."""
        self.routes = dict(routes)

    def sinks_for(self, record: Record) -> Sequence[str]:
        if record.line is None or record.station is None:
            return self.every
        return self.routes.get(f"{record.line}/{record.station}", ())

    def station_sinks(self, line: str, station: str) -> Sequence[str]:
        return self.routes.get(f"{line}/{station}", ())

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
        committing: set[asyncio.Task[None]] = set()
        try:
            while True:
                batch = [await self._queue.get()]
                while len(batch) < MAX_BATCH and not self._queue.empty():
                    batch.append(self._queue.get_nowait())
                while len(committing) >= DEPTH:
                    _, committing = await asyncio.wait(committing,
                                                       return_when=asyncio.FIRST_COMPLETED)
                records = [r for r in batch if r is not None]
                if records:  # queued for the writer now, in order; the results come later
                    committing.add(asyncio.create_task(self._route(records)))
                if None in batch:
                    return
        finally:
            if committing:
                await asyncio.wait(committing)

    def _route(self, records: list[Record]) -> Coroutine[Any, Any, None]:
        """Queue each sink's share for the outbox now; the coroutine settles the counts."""
        per_sink: dict[str, list[Record]] = {}
        for record in records:
            sinks = self.sinks_for(record)
            if not sinks:
                self.unrouted += 1
                log.debug("record %s (%s) has no sink", record.id, record.kind)
            for sink in sinks:
                per_sink.setdefault(sink, []).append(record)
        queued = []
        for sink, share in per_sink.items():
            try:
                queued.append((sink, len(share), self.outbox.enqueue_many_queued(sink, share)))
            except Exception:  # the outbox reports its own errors; never kill the router
                log.exception("outbox enqueue failed for sink %s", sink)
                self.refused += len(share)
        return self._settle(queued)

    async def _settle(self, queued: list[tuple[str, int, Coroutine[Any, Any, list[bool]]]]) -> None:
        for sink, n, result in queued:
            try:
                ok = sum(await result)
            except Exception:  # the outbox reports its own errors; never kill the router
                log.exception("outbox enqueue failed for sink %s", sink)
                ok = 0
            self.routed += ok
            self.refused += n - ok
            fwd = self.forwarders.get(sink)
            if ok and fwd is not None:
                fwd.wake()
