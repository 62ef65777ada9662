"""One command's writes until its deadline, and the outcome they earn (no I/O of its own
beyond the link it is given).

Each attempt writes the data not yet sent (one request where the link can), then
the strobe bit; data that went out without an answer is not sent again, so the bit
is not held back by it. No attempt starts that could not arrive before the deadline:
the estimate is the link's smoothed round trip (at most the request timeout: a
slow probe read says little about a write), or twice the longest wait in this
command that got no answer, whichever is longer (as a TCP retransmission timer
backs off). The outcome says what the PLC may have done:

- acked: the strobe was acknowledged;
- unconfirmed: a strobe went out and no answer came (it may have taken effect);
- failed: the PLC refused it, or it was never sent (busy answers until the deadline);
- expired: nothing of it was sent before the deadline.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from agent.control.command_plan import METHOD, Plan, Write
from agent.protocols.base import SinkState
from agent.protocols.link import PlcLink, PlcNoAnswer, PlcRejected, PlcUnavailable
from agent.types import Command, OutcomeStatus

# an attempt is started only if this much more than a round trip is left: the event loop's
# own delay between deciding and the request leaving must not carry it past the deadline
SEND_MARGIN_S = 0.001


@dataclass
class Attempts:
    """What happened so far to one command."""

    strobes: int = 0  # strobe writes started
    data_pending: bool = True
    data_sent: bool = False
    maybe_applied: bool = False  # a strobe went out without an answer
    acked_at: float | None = None
    refused: str | None = None
    unanswered_s: float = 0.0  # longest wait that got no answer
    last: str = "never sent"
    notes: list[str] = field(default_factory=list)  # data / after writes not done

    @property
    def strobe_may_be_set(self) -> bool:
        return self.acked_at is not None or self.maybe_applied

    def status(self) -> OutcomeStatus:
        if self.acked_at is not None:
            return OutcomeStatus.ACKED
        if self.refused is None and self.maybe_applied:
            return OutcomeStatus.UNCONFIRMED
        if self.refused is None and self.strobes == 0 and not self.data_sent:
            return OutcomeStatus.EXPIRED
        return OutcomeStatus.FAILED


class Delivery:
    """Runs the attempts of one command over `link`; `on_request()` counts each request,
    `on_attempt()` runs after each attempt (its strobe answered, refused or failed, or the
    data before it failed)."""

    def __init__(self, link: PlcLink, cmd: Command, plan: Plan, request_timeout: float,
                 retry_s: float, clock: Callable[[], float] = time.monotonic,
                 on_request: Callable[[], None] = lambda: None,
                 on_attempt: Callable[[], None] = lambda: None) -> None:
        self.link, self.cmd, self.plan = link, cmd, plan
        self.request_timeout, self.retry_s, self.clock = request_timeout, retry_s, clock
        self.on_request = on_request
        self.on_attempt = on_attempt
        self.att = Attempts(data_pending=bool(plan.data))

    def remaining(self) -> float:
        return self.cmd.deadline - self.clock()

    def needed_s(self) -> float:
        """How long a write needs to arrive (and be answered), as far as we can tell, plus
        the time from this decision to the request leaving (SEND_MARGIN_S)."""
        rtt = min(getattr(self.link, "round_trip_s", None) or 0.0, self.request_timeout)
        return max(rtt, 2 * self.att.unanswered_s) + SEND_MARGIN_S

    async def run(self) -> Attempts:
        att = self.att
        while att.acked_at is None and att.refused is None:
            remaining = self.remaining()
            if remaining <= 0:
                break
            if self.link.state is not SinkState.CONNECTED:  # nothing sent: wait for the link
                att.last = att.last if att.strobes else f"plc {self.link.name} {self.link.state}"
                await asyncio.sleep(max(0.0, min(self.retry_s, remaining)))
                continue
            if remaining <= self.needed_s():
                att.last += (f"; no retry: {remaining * 1000:.0f} ms left, a write needs "
                             f"about {self.needed_s() * 1000:.0f} ms")
                break
            tried = await self._attempt()
            self.on_attempt()
            if tried is False:
                await asyncio.sleep(max(0.0, min(self.retry_s, self.remaining())))
        if att.acked_at is not None:
            await self._after()
        return att

    async def _attempt(self) -> bool | None:
        """One try; False when the link failed (try again), None when done or refused."""
        if self.att.data_pending and not await self._data():
            return False
        return await self._strobe()

    async def _data(self) -> bool:
        att, items = self.att, [(w.address, w.value) for w in self.plan.data]
        t0 = self.clock()
        try:
            self.on_request()
            await write_many(self.link, items, self._timeout())
        except PlcRejected as exc:
            att.notes.append(f"{_names(self.plan.data)} not written: {exc}")
        except PlcUnavailable as exc:
            self._unanswered(exc, t0, strobe=False)
            if exc.maybe_applied:  # it went out: the next attempt sends the strobe at once
                att.data_sent, att.data_pending = True, False
                att.notes.append(f"{_names(self.plan.data)} sent, not acknowledged")
            return False
        att.data_pending, att.data_sent = False, True
        return True

    async def _strobe(self) -> bool | None:
        att, w = self.att, self.plan.strobe
        att.strobes += 1
        t0 = self.clock()
        try:
            self.on_request()
            await self._send(w, self._timeout())
        except PlcRejected as exc:
            att.refused = f"PLC refused {w.signal} ({exc})"
            return None
        except PlcUnavailable as exc:
            self._unanswered(exc, t0, strobe=True)
            return False
        att.acked_at = self.clock()
        return None

    def _unanswered(self, exc: PlcUnavailable, t0: float, strobe: bool) -> None:
        att = self.att
        att.last = str(exc)
        if isinstance(exc, PlcNoAnswer):
            att.unanswered_s = max(att.unanswered_s, self.clock() - t0)
        if strobe and exc.maybe_applied:
            att.maybe_applied = True

    async def _after(self) -> None:
        for w in self.plan.after:
            remaining = self.remaining()
            try:
                if remaining <= 0:
                    raise PlcUnavailable("deadline passed")
                self.on_request()
                await self._send(w, min(self.request_timeout, remaining))
            except (PlcRejected, PlcUnavailable) as exc:
                self.att.notes.append(f"{w.signal} not written: {exc}")

    def _timeout(self) -> float:
        return max(0.001, min(self.request_timeout, self.remaining()))

    async def _send(self, w: Write, timeout: float) -> None:
        if w.signal == METHOD:
            obj, method = w.address.split("|", 1)
            await self.link.call_stop_method(obj, method, [w.value], timeout)  # type: ignore[attr-defined]
        else:
            await self.link.write(w.address, w.value, timeout)

    def error(self) -> str | None:
        """Why it is not (fully) done, for the outcome; None when everything went out."""
        att, status = self.att, self.att.status()
        what = f"{self.plan.strobe.signal} ({self.plan.strobe.address})"
        if status is OutcomeStatus.ACKED:
            main = None
        elif att.refused is not None:
            main = att.refused
        elif status is OutcomeStatus.UNCONFIRMED:
            main = f"{what} sent, no answer by the deadline (may have taken effect): {att.last}"
        elif status is OutcomeStatus.EXPIRED:
            main = f"deadline passed before it could be sent: {att.last}"
        elif att.strobes == 0:
            main = f"{what} never sent (the data before it took the time): {att.last}"
        else:
            main = f"{what} not acknowledged by the deadline: {att.last}"
        parts = ([main] if main else []) + att.notes
        return "; ".join(parts) or None


async def write_many(link: PlcLink, items: list[tuple[str, int | bool]], timeout: float) -> None:
    """The link's `write_many` (one request where it can), else one write after another."""
    many = getattr(link, "write_many", None)
    if many is not None:
        await many(items, timeout)
        return
    end = time.monotonic() + timeout
    for address, value in items:
        await link.write(address, value, max(0.001, end - time.monotonic()))


def _names(writes: list[Write]) -> str:
    return ", ".join(w.signal for w in writes)
