"""One named asyncio task owned by an object: start once, stop by cancelling and awaiting;
`Loop`, the base of objects that are such a task (PLC trigger and reset polling)."""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from typing import Any, Generic, TypeVar

S = TypeVar("S")


class OwnedTask:
    def __init__(self, name: str) -> None:
        self.name = name
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self, run: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Start `run()` unless already started."""
        if self._task is None:
            self._task = asyncio.create_task(run(), name=self.name)

    async def stop(self) -> None:
        """Cancel and wait for the task; safe to call twice or before start."""
        task, self._task = self._task, None
        if task is not None:
            await cancel_and_wait(task)


class Loop(abc.ABC, Generic[S]):
    """An object that runs one owned task (`_run`) between start() and stop(), and counts
    what it does in a stats object."""

    def __init__(self, task_name: str, stats: S) -> None:
        self._bg = OwnedTask(task_name)
        self._stats = stats

    def stats(self) -> S:
        return self._stats

    async def start(self) -> None:
        self._bg.start(self._run)

    async def stop(self) -> None:
        await self._bg.stop()

    @abc.abstractmethod
    async def _run(self) -> None:
        """The task's body; runs until stop() cancels it."""


async def cancel_and_wait(task: asyncio.Task[Any], retry_s: float = 0.5) -> None:
    """Cancel `task` until it is done. On Python 3.11 `asyncio.wait_for` (used inside
    pymodbus, asyncua, ...) can swallow a cancellation that races with its own result,
    which would leave the task running and the caller waiting forever."""
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=retry_s)
    if not task.cancelled():
        with contextlib.suppress(Exception):
            task.result()


async def stop_within(aw: Coroutine[Any, Any, Any], timeout: float, what: str) -> None:
    """Await a component's stop for at most `timeout` seconds; log (never raise) past it."""
    try:
        await asyncio.wait_for(aw, timeout)
    except TimeoutError:
        logging.getLogger("agent.app").error("%s did not stop within %.1f s", what, timeout)
