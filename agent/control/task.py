"""One named asyncio task owned by an object: start once, stop by cancelling and awaiting."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from typing import Any


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
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
