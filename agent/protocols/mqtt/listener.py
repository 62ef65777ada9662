"""The MQTT sink's operator command listener: authenticate, refuse replays, audit, answer.

Runs on the asyncio loop (the sink hands each message over from paho's thread). For
each message on the command topic:

1. `evaluate` (MAC, schema, client id, age and future skew), then the replay check: a
   command id seen within the age window is refused (`SeenIds`, kept in `state_dir`);
2. a signed answer on `.../cmd/result` (same key scheme as the commands);
3. one audit line per attempt, accepted or rejected, with id, client and reason;
4. an accepted command runs only after its id is on disk (written off the loop), so
   a restart cannot make a captured command valid again.

Rejections are logged at WARNING at most once per `SUMMARY_S`, with the counts by
reason since the last line; the others at DEBUG. A flood cannot flood the log.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from agent.protocols.mqtt.command_replay import SeenIds
from agent.protocols.mqtt.commands import (
    CommandPolicy,
    OperatorAction,
    OperatorCommand,
    Outcome,
    evaluate,
)
from agent.protocols.mqtt.topics import TopicMap

log = logging.getLogger(__name__)
audit_log = logging.getLogger("agent.audit.commands")
SUMMARY_S = 60.0

Handler = Callable[[OperatorCommand], None]
Audit = Callable[..., None]  # AuditWriter.write: (event, **fields)


def seen_ids_path(state_dir: Path, sink: str) -> Path:
    return state_dir / f"operator-command-ids.{re.sub(r'[^A-Za-z0-9_.-]', '_', sink)}.json"


def _post(loop: asyncio.AbstractEventLoop, fn: Callable[..., None], *args: Any) -> None:
    try:
        loop.call_soon_threadsafe(fn, *args)
    except RuntimeError:  # loop closed: the daemon is stopping
        pass


class RejectionLog:
    """First rejection at WARNING; then DEBUG, and at most one WARNING per `interval_s`
    that counts what was rejected since the previous one, by reason."""

    def __init__(self, logger: logging.Logger, what: str, interval_s: float = SUMMARY_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.logger, self.what, self.interval_s, self.clock = logger, what, interval_s, clock
        self.total = 0
        self._since: Counter[str] = Counter()
        self._last: float | None = None

    def rejected(self, o: Outcome) -> None:
        self.total += 1
        self._since[o.code] += 1
        detail = f"id={o.id!r} client={o.client_id!r}: {o.reason}"
        now = self.clock()
        if self._last is None or now - self._last >= self.interval_s:
            self._report(now, f"latest: {detail}")
        else:
            self.logger.debug("%s: operator command rejected (%s)", self.what, detail)

    def flush(self) -> None:
        """The pending count, if any (a periodic tick and close call this)."""
        now = self.clock()
        if self._since and (self._last is None or now - self._last >= self.interval_s):
            self._report(now, "")

    def _report(self, now: float, detail: str) -> None:
        n = sum(self._since.values())
        if n == 1 and detail:
            self.logger.warning("%s: operator command rejected, %s", self.what,
                                detail.removeprefix("latest: "))
        else:
            by = ", ".join(f"{k} {v}" for k, v in self._since.most_common())
            self.logger.warning("%s: %d operator command(s) rejected in the last %.0f s (%s)%s",
                                self.what, n, now - (self._last or now), by,
                                f"; {detail}" if detail else "")
        self._since.clear()
        self._last = now


class CommandListener:
    def __init__(self, where: str, sink: str, policy: CommandPolicy, topics: TopicMap,
                 seen: SeenIds, publish: Callable[[str, dict[str, Any]], bool],
                 rebirth: Callable[[], None]) -> None:
        self.where, self.sink, self.policy, self.topics = where, sink, policy, topics
        self.seen = seen
        self._publish = publish
        self._rebirth = rebirth
        self._handler: Handler | None = None
        self._audit: Audit | None = None
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cmd-ids")
        self.rejections = RejectionLog(audit_log, where)
        self.accepted = 0
        self.rejected_by: Counter[str] = Counter()

    def set_handler(self, handler: Handler, audit: Audit | None) -> None:
        self._handler, self._audit = handler, audit

    def on_message(self, raw: bytes) -> None:
        """One inbound command (on the loop). Never raises."""
        try:
            outcome = self._evaluate(raw)
            self._answer(outcome)
            if self._audit is not None:
                self._audit("operator_command", sink=self.sink, **outcome.audit_fields())
            if not outcome.accepted or outcome.command is None:
                self.rejected_by[outcome.code] += 1
                self.rejections.rejected(outcome)
                return
            self.accepted += 1
            cmd = outcome.command
            audit_log.info("%s: operator command %s line=%s station=%s id=%s client=%s accepted",
                           self.where, cmd.action, cmd.line, cmd.station, cmd.id, cmd.client_id)
            done = self._pool.submit(self.seen.save, self.seen.snapshot())
            loop = asyncio.get_running_loop()
            done.add_done_callback(lambda f: _post(loop, self._execute, cmd, f))
        except Exception:  # a command must never take the sink down
            log.exception("%s: error while handling an operator command", self.where)

    def tick(self) -> None:
        self.rejections.flush()

    async def close(self) -> None:
        await asyncio.to_thread(self._pool.shutdown, wait=True)
        self.rejections.flush()

    def _evaluate(self, raw: bytes) -> Outcome:
        outcome = evaluate(raw, self.policy, self.topics.command_topic)
        cmd = outcome.command
        if outcome.accepted and cmd is not None:
            why = self.seen.check_and_add(cmd.id, cmd.issued.timestamp(),
                                          cmd.received.timestamp())
            if why:
                return outcome.rejected("replay", why)
        return outcome

    def _answer(self, outcome: Outcome) -> None:
        topic = self.topics.command_result_topic
        body = outcome.reply()
        if self.policy.keyring is not None:
            body = self.policy.keyring.sign(topic, body)
        self._publish(topic, body)

    def _execute(self, cmd: OperatorCommand, saved: Future[None]) -> None:
        exc = saved.exception()
        if exc is not None:
            log.error("%s: command id %s not saved to %s (%s): executed, but a replay after a "
                      "restart within %g s would not be recognised", self.where, cmd.id,
                      self.seen.path, exc, self.policy.max_age_s)
        try:
            if cmd.action is OperatorAction.REBIRTH:
                self._rebirth()
            if self._handler is not None:
                self._handler(cmd)
        except Exception:
            log.exception("%s: error while handling an operator command", self.where)
