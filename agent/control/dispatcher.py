"""CommandDispatcher: stop / reject / alarm / reset to one PLC, on their own task.

Commands never queue behind records (records do not use this path). Each
command is written at once (data before the strobe bit, see `command_plan`),
retried while a retry can still arrive before its deadline, and reported exactly
once through `on_outcome`: ACKED (latency = strobe acknowledged - command
created), UNCONFIRMED (sent, no answer by the deadline: may have taken effect),
FAILED (refused by the PLC, or never sent) or EXPIRED (its deadline passed before
anything was sent: never written, also not after a reconnect); see `delivery`.
The outputs it sets are kept as intended by an `OutputKeeper` (pulse ends retried
until done, everything written again after a reconnect); `defect_count` and
`last_event_seq` come from `CommandCounters` (persisted when given a file).

`submit` returns the command's "sent" future: resolved once its first attempt is over
(the strobe answered, refused or failed: the PLC has seen it if it could), or, when no
attempt is made, once its outcome is reported (expired, no signal mapped, stopped).
Whatever follows a command off the stop path (its audit line, the bookkeeping of the
decision, records held for evidence) chains on it; `stop()` never leaves one pending.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from agent.config.station import StationSignals
from agent.control.command_plan import METHOD, Plan, plan_writes
from agent.control.counters import CommandCounters
from agent.control.delivery import Delivery
from agent.control.outputs import OutputKeeper
from agent.control.signal_check import verify_when_connected
from agent.logutil import RepeatLimiter
from agent.protocols.link import PlcLink
from agent.tasks import cancel_and_wait
from agent.types import Command, CommandKind, CommandOutcome, OutcomeStatus

log = logging.getLogger(__name__)
StationKey = tuple[str, str]
Job = tuple[Command, "asyncio.Future[None]"]  # a command and its "sent" future


@dataclass
class DispatcherStats:
    submitted: int = 0
    acked: int = 0
    unconfirmed: int = 0
    failed: int = 0
    refused: int = 0  # failed because the PLC refused the strobe for good (also in `failed`)
    expired: int = 0
    write_attempts: int = 0
    retries: int = 0
    pulse_failures: int = 0
    outcome_callback_errors: int = 0
    pending: int = 0
    last_latency_ms: float | None = None
    last_refusal: str | None = None
    bad_signals: dict[str, str] = field(default_factory=dict)  # found at first connect


class CommandDispatcher:
    def __init__(
        self,
        link: PlcLink,
        signals: Mapping[StationKey, StationSignals],
        on_outcome: Callable[[CommandOutcome], None],
        clock: Callable[[], float] = time.monotonic,
        *,
        reject_pulse_ms: Mapping[StationKey, int] | None = None,
        request_timeout: float = 0.2,
        retry_s: float = 0.01,
        flush_timeout: float = 2.0,
        counters: CommandCounters | None = None,
    ) -> None:
        self.link = link
        self.signals = signals
        self.on_outcome = on_outcome
        self.clock = clock
        self.reject_pulse_ms = dict(reject_pulse_ms or {})
        self.request_timeout = request_timeout
        self.retry_s = retry_s
        self.flush_timeout = flush_timeout
        self.counters = counters or CommandCounters()
        self._busy = False  # a command is on the link
        self.outputs = OutputKeeper(link, request_timeout, clock=clock, low_at_start=sorted(
            {sig.reject for sig in signals.values() if sig.reject}),
            may_write=lambda: not self._busy)
        self._queue: asyncio.Queue[Job] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._check: asyncio.Task[None] | None = None
        self._current: Delivery | None = None  # of the command in progress
        self._sent: asyncio.Future[None] | None = None  # of the command in progress
        self._stopped = False  # stop() ran: a command submitted now is reported, never sent
        self._stats = DispatcherStats()
        self._limiter = RepeatLimiter(log, f"commands to plc {link.name}")

    def stats(self) -> DispatcherStats:
        self._stats.pending = self._queue.qsize()
        self._stats.pulse_failures = self.outputs.write_failures
        return self._stats

    # -- lifecycle ------------------------------------------------------------------
    async def start(self) -> None:
        if self._task is None:
            self.outputs.start()
            self._task = asyncio.create_task(self._run(), name=f"commands-{self.link.name}")
            self._check = asyncio.create_task(verify_when_connected(
                self.link, self.signals, self.request_timeout, self._stats.bad_signals),
                name=f"signal-check-{self.link.name}")

    async def stop(self) -> None:
        """Flush pending commands (bounded; deadlines still honoured), end pulses, then end."""
        try:
            if self._check is not None:
                await cancel_and_wait(self._check)
                self._check = None
            if self._task is not None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._queue.join(), self.flush_timeout)
                await cancel_and_wait(self._task)
                self._task = None
        finally:  # also when the caller's own time limit cuts this stop short
            self._stopped = True
            while not self._queue.empty():  # left over after the flush: reported, never sent
                cmd, sent = self._queue.get_nowait()
                self._expire(cmd, sent)
                self._queue.task_done()
        await self.outputs.stop(self.flush_timeout)
        await self.counters.close()

    def submit(self, cmd: Command) -> asyncio.Future[None]:
        """Non-blocking (on the loop): queue the command for the dispatcher task; returns
        its "sent" future (see the module docstring), never failed or cancelled by us."""
        self._stats.submitted += 1
        sent: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self._stopped:  # e.g. an operator reset arriving during shutdown: never sent
            self._expire(cmd, sent)
        else:
            self._queue.put_nowait((cmd, sent))
        return sent

    def _expire(self, cmd: Command, sent: asyncio.Future[None]) -> None:
        self._finish(cmd, sent, self._outcome(cmd, OutcomeStatus.EXPIRED, 0,
                                              error="dispatcher stopped before it was sent"))

    # -- worker ---------------------------------------------------------------------
    async def _run(self) -> None:
        while True:
            cmd, sent = await self._queue.get()
            self._current, self._sent, self._busy = None, sent, True
            try:
                outcome = await self._execute(cmd)
            except asyncio.CancelledError:  # stopped mid-command: still reported, exactly once
                self._finish(cmd, sent, self._stopped_mid_command(cmd))
                raise
            except Exception as exc:  # a bug in a link or a plan: reported, the task goes on
                log.exception("plc %s: %s %s failed unexpectedly", self.link.name, cmd.kind,
                              cmd.event_id)
                outcome = self._failed_unexpectedly(cmd, exc)
            finally:
                self._busy = self._queue.qsize() > 0
                self._queue.task_done()
            self._finish(cmd, sent, outcome)

    async def _execute(self, cmd: Command) -> CommandOutcome:
        if cmd.expired(self.clock()):  # before planning: an unsent command takes no number
            return self._outcome(cmd, OutcomeStatus.EXPIRED, 0,
                                 error="deadline passed before it could be sent")
        plan = self._plan(cmd)
        if plan is None:
            return self._outcome(cmd, OutcomeStatus.FAILED, 0,
                                 error=f"no PLC signal mapped for {cmd.kind} at {cmd.line}/{cmd.station}")
        self._current = d = Delivery(self.link, cmd, plan, self.request_timeout, self.retry_s,
                                     self.clock, self._count_request, self._attempted)
        if cmd.kind is CommandKind.REJECT:
            self.outputs.pulse_begins(plan.strobe.address)
        att = await d.run()
        self._keep_outputs(cmd, plan, d)
        if att.strobes > 1:
            self._stats.retries += att.strobes - 1
        latency = None if att.acked_at is None else (att.acked_at - cmd.created) * 1000
        return self._outcome(cmd, att.status(), att.strobes, latency_ms=latency, error=d.error())

    def _plan(self, cmd: Command) -> Plan | None:
        key = (cmd.line, cmd.station)
        sig = self.signals.get(key)
        if sig is None:
            return None
        count = self.counters.count(key, cmd.kind in (CommandKind.STOP, CommandKind.REJECT))
        seq = self.counters.next_seq()
        return plan_writes(cmd, sig, count, seq, getattr(self.link, "stop_method", None))

    def _count_request(self) -> None:
        self._stats.write_attempts += 1

    def _attempted(self) -> None:
        """The first attempt of the command in progress is over: it is "sent"."""
        if self._sent is not None:
            _resolve(self._sent)

    def _keep_outputs(self, cmd: Command, plan: Plan, d: Delivery) -> None:
        """Tell the keeper what the PLC's outputs should now be."""
        strobe = plan.strobe
        if cmd.kind is CommandKind.REJECT:
            pulse_s = self.reject_pulse_ms.get((cmd.line, cmd.station), 200) / 1000
            self.outputs.pulse_sent(strobe.address, pulse_s if d.att.strobe_may_be_set else 0.0)
        elif d.att.strobe_may_be_set and strobe.signal != METHOD:
            for w in [strobe, *plan.after]:
                self.outputs.hold(w.address, bool(w.value))

    def _failed_unexpectedly(self, cmd: Command, exc: Exception) -> CommandOutcome:
        """What the wire saw before the error (acked, unconfirmed), else failed: never sent.
        The outputs are kept as after any command: a reject pulse begun still ends."""
        d = self._current
        if d is not None:
            with contextlib.suppress(Exception):  # (the error itself is logged by the caller)
                self._keep_outputs(cmd, d.plan, d)
        status = OutcomeStatus.FAILED if d is None else d.att.status()
        if status is OutcomeStatus.EXPIRED:
            status = OutcomeStatus.FAILED
        return self._outcome(cmd, status, 0 if d is None else d.att.strobes,
                             error=f"internal error: {type(exc).__name__}: {exc}")

    def _stopped_mid_command(self, cmd: Command) -> CommandOutcome:
        d = self._current
        if d is None:
            return self._outcome(cmd, OutcomeStatus.EXPIRED, 0,
                                 error="dispatcher stopped before it was sent")
        if cmd.kind is CommandKind.REJECT:
            self.outputs.pulse_sent(d.plan.strobe.address, 0.0)
        status = d.att.status()
        return self._outcome(cmd, status, d.att.strobes,
                             error=f"dispatcher stopped mid-command: {d.error()}")

    # -- outcomes -------------------------------------------------------------------
    def _outcome(self, cmd: Command, status: OutcomeStatus, attempts: int, *,
                 latency_ms: float | None = None, error: str | None = None) -> CommandOutcome:
        return CommandOutcome(cmd, status, attempts, self.clock(), latency_ms, error)

    def _finish(self, cmd: Command, sent: asyncio.Future[None], outcome: CommandOutcome) -> None:
        _resolve(sent)  # its callbacks run before the outcome's (scheduled in this order)
        self._count(outcome)
        if outcome.status is not OutcomeStatus.ACKED:
            log.error("plc %s: %s %s for %s/%s %s: %s", self.link.name, cmd.kind, outcome.status,
                      cmd.line, cmd.station, cmd.event_id, outcome.error)
        elif outcome.error:
            self._limiter.failure("%s %s acked, but %s", cmd.kind, cmd.event_id, outcome.error)
        else:
            self._limiter.recovered("commands acknowledged again")
        try:
            self.on_outcome(outcome)
        except Exception:  # noqa: BLE001 - a broken callback must not kill the command path
            self._stats.outcome_callback_errors += 1
            log.exception("plc %s: outcome callback failed", self.link.name)

    def _count(self, outcome: CommandOutcome) -> None:
        st = self._stats
        if outcome.status is OutcomeStatus.ACKED:
            st.acked += 1
            st.last_latency_ms = outcome.latency_ms
        elif outcome.status is OutcomeStatus.UNCONFIRMED:
            st.unconfirmed += 1
        elif outcome.status is OutcomeStatus.EXPIRED:
            st.expired += 1
        else:
            st.failed += 1
            if outcome.error and outcome.error.startswith("PLC refused"):
                st.refused += 1
                st.last_refusal = outcome.error


def _resolve(sent: asyncio.Future[None]) -> None:
    if not sent.done():
        sent.set_result(None)
