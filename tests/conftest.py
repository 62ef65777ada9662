"""Shared fixtures: free ports, a real Mosquitto broker, and a leak check.

Every test fails if it leaves a thread or an asyncio task behind (pymodbus's
`system_health_check` idea).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.support.mosquitto import Mosquitto
from tests.support.ports import free_port

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def port() -> int:
    return free_port()


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    broker = Mosquitto(tmp_path).start()
    try:
        yield broker
    finally:
        broker.stop()


def _live_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.is_alive()}


@pytest.fixture(autouse=True)
def no_leaked_threads() -> Iterator[None]:
    before = _live_threads()
    yield
    deadline = time.monotonic() + 3.0
    while True:
        leaked = [t for t in _live_threads() - before if not _ignorable(t)]
        if not leaked or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    assert not leaked, f"test left threads running: {[t.name for t in leaked]}"


def _ignorable(t: threading.Thread) -> bool:
    # asyncio's default executor threads (getaddrinfo) are reaped with the loop;
    # onnxruntime and OpenCV keep no Python threads.
    return t.name.startswith("asyncio_")


@pytest.fixture(autouse=True)
async def no_leaked_tasks() -> AsyncIterator[None]:
    yield
    current = asyncio.current_task()
    deadline = time.monotonic() + 2.0
    while True:
        pending = [t for t in asyncio.all_tasks() if t is not current and not t.done()]
        if not pending or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.02)
    assert not pending, f"test left asyncio tasks running: {[t.get_coro() for t in pending]}"
