"""CommandDispatcher.submit's "sent" future: resolved once the command's first attempt is
over (the PLC answered its strobe), or once its outcome is reported when no attempt could be
made; never left pending after stop()."""

from __future__ import annotations

import asyncio
import time

from agent.config.station import StationSignals
from agent.control.dispatcher import CommandDispatcher
from agent.protocols.base import SinkState
from agent.protocols.link import PlcStats
from agent.types import Command, CommandKind, CommandOutcome, OutcomeStatus, new_event_id

KEY = ("l1", "s1")
SIGNALS = {KEY: StationSignals(stop_request="coil:1", defect_code="hr:10")}


class GatedLink:
    """A PLC link whose writes wait for `gate`; `seen` lists what the PLC took, in order."""

    name = "plc"

    def __init__(self, connected: bool = True) -> None:
        self.state = SinkState.CONNECTED if connected else SinkState.DISCONNECTED
        self.gate = asyncio.Event()
        self.seen: list[tuple[str, int | bool]] = []
        self._stats = PlcStats()

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def write(self, address: str, value: int | bool, timeout: float) -> None:
        await self.gate.wait()
        self.seen.append((address, value))

    async def read(self, address: str, timeout: float) -> int:
        await self.gate.wait()
        return 0

    def stats(self) -> PlcStats:
        return self._stats


def stop(deadline_s: float = 2.0) -> Command:
    now = time.monotonic()
    return Command(kind=CommandKind.STOP, plc="plc", line="l1", station="s1",
                   event_id=new_event_id(), deadline=now + deadline_s, created=now,
                   defect_code=301)


async def test_sent_resolves_once_the_plc_has_answered_the_strobe() -> None:
    link = GatedLink()
    outcomes: list[CommandOutcome] = []
    disp = CommandDispatcher(link, SIGNALS, outcomes.append)
    await disp.start()
    try:
        order: list[str] = []
        sent = disp.submit(stop())
        sent.add_done_callback(lambda _: order.append(f"sent after {len(link.seen)} writes"))
        await asyncio.sleep(0.05)
        assert not sent.done() and link.seen == []  # the write waits for the PLC
        link.gate.set()
        await asyncio.wait_for(sent, 2.0)
        await asyncio.sleep(0)
        assert ("coil:1", True) in link.seen
        assert order and order[0].startswith("sent after") and int(order[0].split()[2]) >= 2
    finally:
        await disp.stop()
    assert [o.status for o in outcomes] == [OutcomeStatus.ACKED]


async def test_sent_resolves_with_the_outcome_when_nothing_could_be_sent() -> None:
    link = GatedLink(connected=False)
    outcomes: list[CommandOutcome] = []
    disp = CommandDispatcher(link, SIGNALS, outcomes.append)
    await disp.start()
    try:
        sent = disp.submit(stop(deadline_s=0.1))
        await asyncio.wait_for(sent, 2.0)
        assert [o.status for o in outcomes] == [OutcomeStatus.EXPIRED]
    finally:
        await disp.stop()


async def test_stop_resolves_every_sent_future_it_reports() -> None:
    link = GatedLink()  # the first write hangs: the command behind it is never sent
    outcomes: list[CommandOutcome] = []
    disp = CommandDispatcher(link, SIGNALS, outcomes.append, flush_timeout=0.1)
    await disp.start()
    futures = [disp.submit(stop(deadline_s=30)) for _ in range(3)]
    await asyncio.sleep(0.05)
    assert not any(f.done() for f in futures)
    await disp.stop()
    assert all(f.done() and f.exception() is None for f in futures)
    assert len(outcomes) == 3


async def test_a_command_submitted_after_stop_is_reported_expired_at_once() -> None:
    """An operator reset arriving while the daemon shuts down: never sent, never pending."""
    link = GatedLink()
    link.gate.set()
    outcomes: list[CommandOutcome] = []
    disp = CommandDispatcher(link, SIGNALS, outcomes.append)
    await disp.start()
    await disp.stop()
    sent = disp.submit(stop())
    assert sent.done()
    assert [o.status for o in outcomes] == [OutcomeStatus.EXPIRED]
    assert "stopped" in (outcomes[0].error or "")
    assert link.seen == []


async def test_a_stop_cut_short_by_its_caller_still_reports_every_queued_command() -> None:
    link = GatedLink()  # the PLC never answers: the flush cannot finish
    outcomes: list[CommandOutcome] = []
    disp = CommandDispatcher(link, SIGNALS, outcomes.append)
    await disp.start()
    sents = [disp.submit(stop()) for _ in range(3)]
    await asyncio.sleep(0.05)
    try:
        await asyncio.wait_for(disp.stop(), 0.1)  # shorter than the dispatcher's own flush
    except TimeoutError:
        pass
    await asyncio.sleep(0)
    queued = sents[1:]  # the first is in progress, held by the PLC that never answers
    try:
        assert all(s.done() for s in queued)
        assert [o.status for o in outcomes].count(OutcomeStatus.EXPIRED) >= len(queued)
    finally:
        link.gate.set()
        await disp.stop()  # the cut-short stop left its task: a second stop ends it
