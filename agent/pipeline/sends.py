"""Work that waits for commands to be sent: chained on their "sent" futures
(`CommandDispatcher.submit`), never on scheduling order.

- `when_sent`: run once every one (or the first) of some commands is sent;
- `InOrder`: per station, run each decision's record routing once its commands are sent
  (the first of them: before any of their outcomes is routed), and in decision order: a
  decision that sent nothing still waits behind one of its station that is waiting.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)
Sent = asyncio.Future[None]


def when_sent(sends: list[Sent], fn: Callable[..., Any], *args: Any) -> None:
    """`fn(*args)` once every one of `sends` is resolved; at once when there is none."""
    if not sends:
        fn(*args)
        return
    waiting = len(sends)

    def one_done(_: Sent) -> None:
        nonlocal waiting
        waiting -= 1
        if waiting == 0:
            fn(*args)

    for sent in sends:
        sent.add_done_callback(one_done)


class InOrder:
    def __init__(self) -> None:
        self._waiting: dict[str, deque[tuple[list[Sent], Callable[[], None]]]] = {}

    def run(self, key: str, sends: list[Sent], fn: Callable[[], None]) -> None:
        """`fn()` once one of `sends` is resolved (at once when there is none) and every
        earlier one of station `key` has run."""
        queue = self._waiting.setdefault(key, deque())
        if not queue and _ready(sends):
            fn()
            return
        queue.append((sends, fn))
        for sent in sends:
            sent.add_done_callback(lambda _: self._drain(key))

    def _drain(self, key: str) -> None:
        queue = self._waiting[key]
        while queue and _ready(queue[0][0]):
            _, fn = queue.popleft()
            try:
                fn()
            except Exception:  # the station's next decisions must not be held back by it
                log.exception("record routing of station %s failed", key)

    def pending(self) -> int:
        return sum(len(q) for q in self._waiting.values())


def _ready(sends: list[Sent]) -> bool:
    return not sends or any(s.done() for s in sends)
