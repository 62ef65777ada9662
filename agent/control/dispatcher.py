"""CommandDispatcher: stop / reject / alarm / reset to one PLC, on their own task.

Commands never queue behind records (records do not use this path). Each
command is written at once, retried until its deadline, and reported exactly
once through `on_outcome`: ACKED (latency = primary write acknowledged -
command created), FAILED (retried until the deadline, or refused by the PLC) or
EXPIRED (its deadline passed before anything was sent: never written, also
not after a reconnect).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from agent.config.station import StationSignals
from agent.control.command_plan import METHOD, Write, plan_writes
from agent.control.plc_link import PlcLink, PlcRejected, PlcUnavailable
from agent.control.signal_check import verify_when_connected
from agent.logutil import RepeatLimiter
from agent.sinks.base import SinkState
from agent.tasks import cancel_and_wait
from agent.types import Command, CommandKind, CommandOutcome, OutcomeStatus

log = logging.getLogger(__name__)
StationKey = tuple[str, str]


@dataclass
class DispatcherStats:
    submitted: int = 0
    acked: int = 0
    failed: int = 0
    expired: int = 0
    write_attempts: int = 0
    retries: int = 0
    pulse_failures: int = 0
    outcome_callback_errors: int = 0
    pending: int = 0
    last_latency_ms: float | None = None
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
    ) -> None:
        self.link = link
        self.signals = signals
        self.on_outcome = on_outcome
        self.clock = clock
        self.reject_pulse_ms = dict(reject_pulse_ms or {})
        self.request_timeout = request_timeout
        self.retry_s = retry_s
        self.flush_timeout = flush_timeout
        self._queue: asyncio.Queue[Command] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._check: asyncio.Task[None] | None = None
        self._pulses: set[asyncio.Task[None]] = set()
        self._counts: dict[StationKey, int] = {}
        self._attempts = 0  # of the command in progress
        self._seq = 0
        self._stats = DispatcherStats()
        self._limiter = RepeatLimiter(log, f"commands to plc {link.name}")

    def stats(self) -> DispatcherStats:
        self._stats.pending = self._queue.qsize()
        return self._stats

    # -- lifecycle ------------------------------------------------------------------
    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"commands-{self.link.name}")
            self._check = asyncio.create_task(verify_when_connected(
                self.link, self.signals, self.request_timeout, self._stats.bad_signals),
                name=f"signal-check-{self.link.name}")

    async def stop(self) -> None:
        """Flush pending commands (bounded; deadlines still honoured), then end."""
        if self._check is not None:
            await cancel_and_wait(self._check)
            self._check = None
        if self._task is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._queue.join(), self.flush_timeout)
            await cancel_and_wait(self._task)
            self._task = None
        while not self._queue.empty():  # left over after the flush: reported, never sent
            cmd = self._queue.get_nowait()
            self._finish(cmd, self._give_up(cmd, 0, "dispatcher stopped before it was sent"))
            self._queue.task_done()
        for pulse in list(self._pulses):
            with contextlib.suppress(asyncio.CancelledError):
                await pulse

    def submit(self, cmd: Command) -> None:
        """Non-blocking: queue the command for the dispatcher task."""
        self._stats.submitted += 1
        self._queue.put_nowait(cmd)

    # -- worker ---------------------------------------------------------------------
    async def _run(self) -> None:
        while True:
            cmd = await self._queue.get()
            self._attempts = 0
            try:
                outcome = await self._execute(cmd)
            except asyncio.CancelledError:  # stopped mid-command: still reported, exactly once
                self._finish(cmd, self._give_up(cmd, self._attempts, "dispatcher stopped mid-command"))
                raise
            finally:
                self._queue.task_done()
            self._finish(cmd, outcome)

    async def _execute(self, cmd: Command) -> CommandOutcome:
        sig = self.signals.get((cmd.line, cmd.station))
        method = getattr(self.link, "stop_method", None)
        writes = plan_writes(cmd, sig, self._next_count(cmd), self._next_seq(), method) if sig else []
        if not writes:
            return self._outcome(cmd, OutcomeStatus.FAILED, 0,
                                 error=f"no PLC signal mapped for {cmd.kind} at {cmd.line}/{cmd.station}")
        if cmd.expired(self.clock()):
            return self._give_up(cmd, 0, "deadline passed before it could be sent")
        primary, extra = writes[0], writes[1:]
        attempts, error = await self._write_until_deadline(cmd, primary)
        if error is not None:
            return self._give_up(cmd, attempts, error)
        latency_ms = (self.clock() - cmd.created) * 1000
        extra_error = await self._write_extras(cmd, extra)
        if cmd.kind is CommandKind.REJECT and sig is not None and sig.reject:
            self._schedule_pulse_end(cmd, sig.reject)
        return self._outcome(cmd, OutcomeStatus.ACKED, attempts + len(extra),
                             latency_ms=latency_ms, error=extra_error)

    async def _write_until_deadline(self, cmd: Command, w: Write) -> tuple[int, str | None]:
        """Write until acknowledged; (attempts, None) on ack, (attempts, error) otherwise."""
        attempts, last = 0, "never sent"
        while (remaining := cmd.deadline - self.clock()) > 0:
            if self.link.state is not SinkState.CONNECTED:  # nothing sent: wait for the link
                last = last if attempts else f"plc {self.link.name} {self.link.state}"
                await asyncio.sleep(max(0.0, min(self.retry_s, remaining)))
                continue
            attempts += 1
            self._attempts = attempts
            self._stats.write_attempts += 1
            try:
                await self._send(w, min(self.request_timeout, remaining))
                self._limiter.recovered("writes acknowledged again")
                return attempts, None
            except PlcRejected as exc:
                return attempts, f"PLC refused {w.signal} ({exc})"
            except PlcUnavailable as exc:
                last = str(exc)
                self._limiter.failure("%s %s not acknowledged yet: %s", cmd.kind, cmd.event_id, exc)
            self._stats.retries += 1
            await asyncio.sleep(max(0.0, min(self.retry_s, cmd.deadline - self.clock())))
        what = "not acknowledged" if attempts else "never sent"
        return attempts, f"{w.signal} ({w.address}) {what} by the deadline: {last}"

    async def _write_extras(self, cmd: Command, writes: list[Write]) -> str | None:
        failed: list[str] = []
        for w in writes:
            remaining = cmd.deadline - self.clock()
            if remaining <= 0:
                failed.append(f"{w.signal}: deadline passed")
                continue
            try:
                await self._send(w, min(self.request_timeout, remaining))
            except (PlcRejected, PlcUnavailable) as exc:
                failed.append(f"{w.signal}: {exc}")
        return ("not written: " + "; ".join(failed)) if failed else None

    async def _send(self, w: Write, timeout: float) -> None:
        if w.signal == METHOD:
            obj, method = w.address.split("|", 1)
            await self.link.call_stop_method(obj, method, [w.value], timeout)  # type: ignore[attr-defined]
        else:
            await self.link.write(w.address, w.value, timeout)

    def _schedule_pulse_end(self, cmd: Command, address: str) -> None:
        ms = self.reject_pulse_ms.get((cmd.line, cmd.station), 200)
        task = asyncio.create_task(self._end_pulse(address, ms / 1000), name="reject-pulse")
        self._pulses.add(task)
        task.add_done_callback(self._pulses.discard)

    async def _end_pulse(self, address: str, after_s: float) -> None:
        await asyncio.sleep(after_s)
        for _ in range(5):
            try:
                await self.link.write(address, False, self.request_timeout)
                return
            except (PlcRejected, PlcUnavailable) as exc:
                self._limiter.failure("ending reject pulse at %s failed: %s", address, exc)
                await asyncio.sleep(self.retry_s * 10)
        self._stats.pulse_failures += 1

    # -- outcomes -------------------------------------------------------------------
    def _give_up(self, cmd: Command, attempts: int, error: str) -> CommandOutcome:
        status = OutcomeStatus.EXPIRED if attempts == 0 else OutcomeStatus.FAILED
        return self._outcome(cmd, status, attempts, error=error)

    def _outcome(self, cmd: Command, status: OutcomeStatus, attempts: int, *,
                 latency_ms: float | None = None, error: str | None = None) -> CommandOutcome:
        return CommandOutcome(cmd, status, attempts, self.clock(), latency_ms, error)

    def _finish(self, cmd: Command, outcome: CommandOutcome) -> None:
        self._count(outcome)
        if outcome.status is not OutcomeStatus.ACKED:
            log.error("plc %s: %s %s for %s/%s %s: %s", self.link.name, cmd.kind, outcome.status,
                      cmd.line, cmd.station, cmd.event_id, outcome.error)
        try:
            self.on_outcome(outcome)
        except Exception:  # noqa: BLE001 - a broken callback must not kill the command path
            self._stats.outcome_callback_errors += 1
            log.exception("plc %s: outcome callback failed", self.link.name)

    def _count(self, outcome: CommandOutcome) -> None:
        if outcome.status is OutcomeStatus.ACKED:
            self._stats.acked += 1
            self._stats.last_latency_ms = outcome.latency_ms
        elif outcome.status is OutcomeStatus.EXPIRED:
            self._stats.expired += 1
        else:
            self._stats.failed += 1

    def _next_count(self, cmd: Command) -> int:
        key = (cmd.line, cmd.station)
        if cmd.kind in (CommandKind.STOP, CommandKind.REJECT):
            self._counts[key] = (self._counts.get(key, 0) + 1) % 0x10000
        return self._counts.get(key, 0)

    def _next_seq(self) -> int:
        self._seq = (self._seq + 1) % 0x100000000
        return self._seq
