"""Worker -> event loop hand-off (issue 20): one wake-up of the loop per batch of
inspections, every inspection handled in order, and commands still go first: after an
inspection that sent a command, the rest wait behind what it scheduled (the PLC task)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from agent.capture.slot import LatestFrame
from agent.config.station import StationConfig
from agent.pipeline.station import StationRuntime


class _Camera:
    name = "cam"
    frozen_since = None

    def subscribe(self) -> LatestFrame:
        return LatestFrame()


def _station(loop: asyncio.AbstractEventLoop, handler: Any) -> StationRuntime:
    cfg = StationConfig(camera="cam", model="m", mode="triggered")
    return StationRuntime("l1", "s1", cfg, _Camera(), None, handler, loop)  # type: ignore[arg-type]


async def test_a_batch_of_inspections_wakes_the_loop_once() -> None:
    loop = asyncio.get_running_loop()
    handled: list[int] = []
    rt = _station(loop, lambda _rt, insp: handled.append(insp))
    wakes = 0
    real = loop.call_soon_threadsafe

    def counting(*args: Any, **kw: Any) -> Any:
        nonlocal wakes
        wakes += 1
        return real(*args, **kw)

    loop.call_soon_threadsafe = counting  # type: ignore[method-assign]
    try:
        worker = threading.Thread(target=lambda: [rt._from_worker("k", i) for i in range(50)])
        worker.start()  # the loop is busy (this coroutine holds it) while the worker hands
        worker.join()
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert handled == list(range(50))
        assert wakes == 1
        rt._from_worker("k", 50)  # the loop idle again: the next one wakes it again
        await asyncio.sleep(0)
        assert handled == list(range(51)) and wakes == 2
    finally:
        loop.call_soon_threadsafe = real  # type: ignore[method-assign]


async def test_inspections_after_a_command_wait_behind_its_send() -> None:
    loop = asyncio.get_running_loop()
    order: list[str] = []

    def handler(_rt: Any, insp: int) -> bool:
        order.append(f"inspection {insp}")
        if insp == 2:  # a reject: the dispatcher's task is scheduled, as submit() does
            loop.call_soon(order.append, "PLC write sent")
            return True
        return False

    rt = _station(loop, handler)
    for i in range(5):
        rt._from_worker("k", i)
    for _ in range(5):
        await asyncio.sleep(0)
    assert order == ["inspection 0", "inspection 1", "inspection 2", "PLC write sent",
                     "inspection 3", "inspection 4"]


async def test_a_failing_inspection_does_not_strand_the_rest_of_its_batch() -> None:
    loop = asyncio.get_running_loop()
    handled: list[int] = []
    errors: list[Any] = []
    loop.set_exception_handler(lambda _loop, ctx: errors.append(ctx.get("exception")))

    def handler(_rt: Any, insp: int) -> bool:
        if insp == 1:
            raise ValueError("bad inspection")
        handled.append(insp)
        return False

    rt = _station(loop, handler)
    for i in range(4):
        rt._from_worker("k", i)
    for _ in range(4):
        await asyncio.sleep(0)
    loop.set_exception_handler(None)
    assert handled == [0, 2, 3]
    assert len(errors) == 1 and isinstance(errors[0], ValueError)
