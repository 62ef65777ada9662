"""One asyncio task per sink: lease a batch in order -> send -> delete only after the ack.

While a full batch is out waiting for its acknowledgement the next one is leased (the
outbox's writer thread reads it meanwhile); it is sent only after the first succeeded.
If the first fails, the early-leased batch goes back untouched (not counted as
retried, not marked replayed) and both are leased again, in order.

unavailable -> the batch goes back to ready, capped exponential backoff with jitter;
rejected    -> the named records (all, when none are named) go to dead with the
               reason, the rest are sent again at once;
anything else raised by a sink is treated as unavailable (and logged with its traceback).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import random
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from typing import Any

from agent.backoff import Backoff
from agent.logutil import RepeatLimiter
from agent.outbox.codec import Leased
from agent.outbox.group_commit import StoreUnavailable
from agent.outbox.store import Outbox
from agent.protocols.base import Sink, SinkRejected, SinkUnavailable
from agent.protocols.outbox_policy import OutboxPolicy
from agent.tasks import cancel_and_wait

log = logging.getLogger(__name__)


class ForwarderState(enum.StrEnum):
    IDLE = "idle"
    SENDING = "sending"
    BACKOFF = "backoff"
    STOPPED = "stopped"


@dataclass(frozen=True)
class ForwarderStats:
    sink: str
    state: ForwarderState
    backoff_s: float  # the delay of the current (or last) backoff; 0 after a success
    last_error: str | None
    batches_sent: int
    failed_sends: int  # unavailable or unexpected errors
    rejected_sends: int


class Forwarder:
    poll_s = 1.0  # look for records another process made ready (outbox retry)
    stop_wait_s = 5.0  # how long stop() lets an in-flight send finish

    def __init__(self, outbox: Outbox, sink: Sink, policy: OutboxPolicy,
                 rng: random.Random | None = None) -> None:
        self._outbox = outbox
        self._sink = sink
        self._policy = policy
        self._backoff = Backoff(policy.retry_initial_ms / 1000.0, policy.retry_cap_s, jitter=0.5,
                                rng=rng)
        self._wake = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._state = ForwarderState.STOPPED
        self._leased: list[int] = []  # in flight now
        self._prefetch: asyncio.Task[list[Leased]] | None = None  # the next batch, leased early
        self._unacked: list[int] = []  # acknowledged by the sink, delete failed: try again
        self._acks: set[asyncio.Future[int]] = set()  # deletes queued, not yet committed
        self._last_error: str | None = None
        self._counts = {"sent": 0, "failed": 0, "rejected": 0}
        self._down = RepeatLimiter(log, f"sink {sink.name}")

    @property
    def name(self) -> str:
        return self._sink.name

    async def start(self) -> None:
        if self._task is not None:
            return
        self._stopping = False
        self._outbox.add_listener(self.name, self.wake)
        self._task = asyncio.create_task(self._run(), name=f"forwarder-{self.name}")

    def wake(self) -> None:
        """New records: deliver now instead of at the next poll (a backoff is not cut short)."""
        self._wake.set()

    async def stop(self) -> None:
        """Let the in-flight send finish (bounded), leave everything else in the store."""
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping = True
        self._wake.set()
        self._outbox.remove_listener(self.name, self.wake)
        _, pending = await asyncio.wait({task}, timeout=self.stop_wait_s)
        if pending:
            log.warning("sink %s: send still running after %.1f s at stop; abandoned, its "
                        "records stay in the outbox", self.name, self.stop_wait_s)
            await cancel_and_wait(task)
        await self._give_back()
        if self._acks:
            await asyncio.wait(set(self._acks), timeout=self.stop_wait_s)
        self._state = ForwarderState.STOPPED

    def stats(self) -> ForwarderStats:
        return ForwarderStats(self.name, self._state, self._backoff.current_s, self._last_error,
                              self._counts["sent"], self._counts["failed"],
                              self._counts["rejected"])

    # --- the task ------------------------------------------------------------

    async def _run(self) -> None:
        while not self._stopping:
            try:
                delivered = await self._step()
            except StoreUnavailable as exc:
                self._note_failure(f"outbox: {exc}")
                delivered = False
            if delivered is None:
                await self._idle()
            elif not delivered:
                await self._pause(self._backoff.next_delay())

    async def _step(self) -> bool | None:
        """One batch: True delivered (or dead-lettered), False failed, None nothing to send."""
        self._wake.clear()  # before the lease: a wake from now on is not lost
        if self._unacked:
            retry, self._unacked = self._unacked, []
            try:
                await self._outbox.ack(self.name, retry)
            except StoreUnavailable:
                self._unacked = retry + self._unacked
                raise
        batch = await self._prefetched() or await self._lease()
        if not batch:
            return None
        self._leased = [item.seq for item in batch]
        if self._stopping:
            await self._give_back()
            return True
        return await self._deliver(batch)

    def _lease(self) -> Coroutine[Any, Any, list[Leased]]:
        decode = not getattr(self._sink, "sends_stored_json", False)
        return self._outbox.lease(self.name, self._policy.batch_size, decode)

    async def _deliver(self, batch: Sequence[Leased]) -> bool:
        self._state = ForwarderState.SENDING
        send = asyncio.ensure_future(self._sink.send([item.record for item in batch]))
        if len(batch) == self._policy.batch_size:  # probably more behind it: lease them now
            self._prefetch = asyncio.ensure_future(self._lease())
        try:
            await send
        except SinkUnavailable as exc:
            return await self._failed(str(exc) or type(exc).__name__)
        except SinkRejected as exc:
            await self._rejected(batch, exc)
            return True
        except Exception as exc:  # noqa: BLE001 - a sink bug must not end delivery
            log.exception("sink %s: send raised %s; treated as unavailable",
                          self.name, type(exc).__name__)
            return await self._failed(f"{type(exc).__name__}: {exc}")
        acked, self._leased = self._leased, []
        self._counts["sent"] += 1
        self._backoff.reset()
        self._last_error = None
        self._down.recovered("delivering again")
        self._ack(acked)
        return True

    def _ack(self, seqs: list[int]) -> None:
        """Delete in the background: the next lease is queued behind it, so it sees it done."""
        fut = self._outbox.ack_nowait(self.name, seqs)
        self._acks.add(fut)

        def done(f: asyncio.Future[int]) -> None:
            self._acks.discard(f)
            if f.cancelled() or f.exception() is not None:
                self._unacked.extend(seqs)  # delivered; the delete is tried again
        fut.add_done_callback(done)

    async def _failed(self, error: str) -> bool:
        self._counts["failed"] += 1
        self._note_failure(error)
        await self._give_back()
        return False

    async def _rejected(self, batch: Sequence[Leased], exc: SinkRejected) -> None:
        self._counts["rejected"] += 1
        named = set(exc.record_ids)
        dead = [i.seq for i in batch if i.record.id in named] if named else [i.seq for i in batch]
        if not dead:
            log.error("sink %s rejected ids %s that are not in the batch; dead-lettering the "
                      "whole batch of %d", self.name, sorted(named)[:5], len(batch))
            dead = [i.seq for i in batch]
        log.error("sink %s rejected %d record(s) for good: %s (dead-lettered; "
                  "`edge-agent outbox dead` lists them)", self.name, len(dead), exc.reason)
        self._last_error = f"rejected: {exc.reason}"
        await self._outbox.bury(self.name, dead, exc.reason)
        self._leased = [s for s in self._leased if s not in set(dead)]
        await self._give_back()

    def _note_failure(self, error: str) -> None:
        self._last_error = error
        self._down.failure("unavailable: %s; records stay in the outbox", error)

    async def _prefetched(self) -> list[Leased]:
        task, self._prefetch = self._prefetch, None
        return await task if task is not None else []

    async def _return_prefetched(self) -> None:
        """The early-leased batch was never sent: back to ready as it was."""
        task, self._prefetch = self._prefetch, None
        if task is None:
            return
        try:
            batch = await task
        except StoreUnavailable:
            return  # not leased (or in flight until the next start): nothing lost either way
        if batch:
            try:
                await self._outbox.unlease(self.name, [item.seq for item in batch])
            except StoreUnavailable as exc:
                log.warning("sink %s: cannot return %d early-leased record(s) (%s); they are "
                            "ready again at the next start", self.name, len(batch), exc)

    async def _give_back(self) -> None:
        """Return the leased records to ready (they are re-sent first, marked replayed)."""
        await self._return_prefetched()
        leased, self._leased = self._leased, []
        if leased:
            try:
                await self._outbox.release(self.name, leased)
            except StoreUnavailable as exc:
                log.warning("sink %s: cannot release %d record(s) (%s); they are ready again "
                            "at the next start", self.name, len(leased), exc)

    async def _idle(self) -> None:
        self._state = ForwarderState.IDLE
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), self.poll_s)

    async def _pause(self, delay: float) -> None:
        """Back off; only stop() ends it early (new records do not)."""
        self._state = ForwarderState.BACKOFF
        loop = asyncio.get_running_loop()
        until = loop.time() + delay
        while not self._stopping and loop.time() < until:
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), until - loop.time())
