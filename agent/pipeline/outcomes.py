"""What follows a PLC command, off the stop path: its audit line, and its outcome's audit
line, metrics, console tap, log line and `stop` record.

The command's audit line (fsynced: milliseconds) chains on its "sent" future
(`CommandDispatcher.submit`), so it never runs before the PLC has had the write. An
outcome is reported by the dispatcher's task right before it takes the next command for
the same PLC: its handling is scheduled behind that task's next step (`call_soon`), so
the next command is on the wire first.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from agent.audit import command_fields, outcome_fields
from agent.types import Command, CommandOutcome, Record

if TYPE_CHECKING:
    from agent.audit import AuditWriter
    from agent.decision.engine import DecisionEngine
    from agent.health.metrics import Metrics

log = logging.getLogger("agent.app")  # the outcome lines keep the logger operators grep for


class OutcomeTap(Protocol):
    """The console's frame tap (agent.web.tap), as far as outcomes go."""

    def on_outcome(self, outcome: CommandOutcome) -> None: ...


class OutcomeHandler:
    def __init__(self, audit: AuditWriter, metrics: Metrics, tap: OutcomeTap,
                 engine: DecisionEngine, route: Callable[[Record], None]) -> None:
        self.audit = audit
        self.metrics = metrics
        self.tap = tap
        self.engine = engine
        self.route = route  # the router, or the evidence capture that holds records

    def command_sent(self, cmd: Command, sent: asyncio.Future[None] | None) -> None:
        """The command's audit line once it is sent; at once (`sent: false`) when no PLC
        took it (`sent` is None)."""
        write = functools.partial(self.audit.write, "command", **command_fields(cmd),
                                  sent=sent is not None)
        if sent is None:
            write()
        else:
            sent.add_done_callback(lambda _: write())

    def __call__(self, outcome: CommandOutcome) -> None:
        """Every outcome, after the next command waiting for the same PLC has been sent."""
        asyncio.get_running_loop().call_soon(self._record, outcome)

    def _record(self, outcome: CommandOutcome) -> None:
        c = outcome.command
        self.audit.write("command_outcome", **outcome_fields(outcome))
        self.metrics.observe_outcome(outcome)
        self.tap.on_outcome(outcome)
        level = logging.INFO if outcome.status.value in ("acked", "suppressed") else logging.ERROR
        log.log(level, "%s %s/%s -> %s (%s attempts, %s ms)%s", c.kind.value, c.line, c.station,
                outcome.status.value, outcome.attempts,
                None if outcome.latency_ms is None else round(outcome.latency_ms, 2),
                f": {outcome.error}" if outcome.error else "")
        self.route(self.engine.outcome_record(outcome))
