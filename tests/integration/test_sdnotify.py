"""sd_notify over a real Unix datagram socket the test listens on, as systemd does."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.health.sdnotify import SdNotifier, StatusLine
from agent.health.watchdog import ProgressWatchdog


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = str(tmp_path / "notify")
    sock.bind(path)
    sock.setblocking(False)
    try:
        yield sock, path
    finally:
        sock.close()


def _recv_all(sock: socket.socket) -> list[str]:
    out = []
    while True:
        try:
            out.append(sock.recv(4096).decode())
        except BlockingIOError:
            return out


async def _recv(sock: socket.socket, timeout: float = 5.0) -> str:
    loop = asyncio.get_running_loop()
    return (await asyncio.wait_for(loop.sock_recv(sock, 4096), timeout)).decode()


async def test_ready_status_stopping_arrive_as_datagrams(notify_socket) -> None:
    sock, path = notify_socket
    n = SdNotifier({"NOTIFY_SOCKET": path})
    n.ready()
    n.status("2 stations inspecting\n 0 stalled")
    n.stopping()
    got = [await _recv(sock) for _ in range(3)]
    assert got == ["READY=1", "STATUS=2 stations inspecting 0 stalled", "STOPPING=1"]
    assert n.stats().sent == 3 and n.stats().failed == 0


async def test_reloading_is_one_datagram_with_the_monotonic_time(notify_socket) -> None:
    sock, path = notify_socket
    n = SdNotifier({"NOTIFY_SOCKET": path})
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    n.reloading()
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    first, second = (await _recv(sock)).split("\n")
    assert first == "RELOADING=1" and second.startswith("MONOTONIC_USEC=")
    assert before <= int(second.split("=")[1]) <= after


async def test_abstract_socket_name() -> None:
    name = f"edge-agent-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.setblocking(False)
        SdNotifier({"NOTIFY_SOCKET": "@" + name}).ready()
        assert await _recv(sock) == "READY=1"


def test_status_line_sends_state_changes_at_once_and_counters_every_refresh(notify_socket) -> None:
    sock, path = notify_socket
    now = [100.0]
    line = StatusLine(SdNotifier({"NOTIFY_SOCKET": path}), refresh_s=2.0, clock=lambda: now[0])
    assert line.update("1 station(s), 0 inspections, degraded: camera:cam1")
    now[0] += 0.25  # the camera streams: the words change, sent at once
    assert line.update("1 station(s), 3 inspections, healthy")
    for _ in range(7):  # only the counter moves: held back until 2 s since the last one
        now[0] += 0.25
        assert not line.update(f"1 station(s), {int(now[0] * 10)} inspections, healthy")
    now[0] += 0.25
    assert line.update("1 station(s), 1025 inspections, healthy")
    now[0] += 5.0
    assert not line.update("1 station(s), 1025 inspections, healthy")  # nothing new
    now[0] += 0.25
    assert line.update("1 station(s), 1025 inspections, degraded: sink:mqtt")
    assert _recv_all(sock) == [
        "STATUS=1 station(s), 0 inspections, degraded: camera:cam1",
        "STATUS=1 station(s), 3 inspections, healthy",
        "STATUS=1 station(s), 1025 inspections, healthy",
        "STATUS=1 station(s), 1025 inspections, degraded: sink:mqtt"]


def test_status_line_tells_names_with_digits_apart(notify_socket) -> None:
    sock, path = notify_socket
    line = StatusLine(SdNotifier({"NOTIFY_SOCKET": path}), refresh_s=60.0, clock=lambda: 1.0)
    line.update("2 station(s), 9 inspections, degraded: camera:cam1")
    assert line.update("2 station(s), 9 inspections, degraded: camera:cam2")
    assert len(_recv_all(sock)) == 2


def test_without_notify_socket_every_call_is_a_noop() -> None:
    n = SdNotifier({"WATCHDOG_USEC": "1000000"})
    n.ready()
    n.watchdog()
    n.status("x")
    assert not n.enabled
    assert n.watchdog_interval_s is None
    assert n.stats().sent == 0 and n.stats().failed == 0


def test_watchdog_interval_is_half_of_watchdog_usec(notify_socket) -> None:
    _, path = notify_socket
    assert SdNotifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "10000000"}).watchdog_interval_s == 5.0
    own = {"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "2000000", "WATCHDOG_PID": str(os.getpid())}
    assert SdNotifier(own).watchdog_interval_s == 1.0
    other = {**own, "WATCHDOG_PID": str(os.getpid() + 1)}
    assert SdNotifier(other).watchdog_interval_s is None
    assert SdNotifier({"NOTIFY_SOCKET": path}).watchdog_interval_s is None


def test_unreachable_socket_is_counted_not_raised(tmp_path: Path) -> None:
    n = SdNotifier({"NOTIFY_SOCKET": str(tmp_path / "nobody-listens")})
    n.ready()
    n.watchdog()
    assert n.stats().failed == 2 and n.stats().sent == 0


class _Worker:
    """An inference-worker stand-in on a real thread: reports progress per frame, can hang."""

    def __init__(self, progress: dict[str, float]) -> None:
        self.progress = progress
        self.running = threading.Event()
        self.running.set()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="fake-inference")

    def _run(self) -> None:
        while not self.stop.is_set():
            self.running.wait()  # cleared = a hung session.run()
            self.progress["inference"] = time.monotonic()
            time.sleep(0.01)


async def test_watchdog_pings_while_progress_and_stops_when_inference_hangs(notify_socket) -> None:
    sock, path = notify_socket
    notifier = SdNotifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "100000"})  # ping every 50 ms
    progress: dict[str, float] = {}
    worker = _Worker(progress)

    async def heartbeat() -> None:
        while True:
            progress["loop"] = time.monotonic()
            await asyncio.sleep(0.02)

    beat = asyncio.create_task(heartbeat())
    worker.thread.start()
    wd = ProgressWatchdog(notifier, lambda: dict(progress), max_stall_s=0.3)
    await wd.start()
    try:
        pings = [await _recv(sock) for _ in range(5)]  # a steady cadence while all progress
        assert pings == ["WATCHDOG=1"] * 5

        worker.running.clear()  # inference hangs
        deadline = time.monotonic() + 10
        while wd.stalled() != ("inference",):
            assert time.monotonic() < deadline, "watchdog never noticed the hung worker"
            await asyncio.sleep(0.02)
        _recv_all(sock)
        withheld = wd.stats().withheld
        await asyncio.sleep(0.5)  # ~10 watchdog intervals
        assert _recv_all(sock) == []
        assert wd.stats().withheld > withheld

        worker.running.set()  # it recovers: pings resume
        assert await _recv(sock) == "WATCHDOG=1"
    finally:
        await wd.stop()
        beat.cancel()
        worker.stop.set()
        worker.running.set()
        worker.thread.join(5)


async def test_watchdog_withholds_pings_when_the_loop_heartbeat_stops(notify_socket) -> None:
    sock, path = notify_socket
    notifier = SdNotifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "100000"})
    now = [100.0]
    progress = {"loop": 100.0, "inference": 100.0}
    wd = ProgressWatchdog(notifier, lambda: progress, max_stall_s=2.0, clock=lambda: now[0])
    assert wd.check() is True
    now[0] = 103.0
    progress["inference"] = 102.5
    assert wd.check() is False and wd.stalled() == ("loop",)
    assert _recv_all(sock) == ["WATCHDOG=1"]


def test_watchdog_without_sources_or_with_a_broken_source_does_not_ping(notify_socket) -> None:
    sock, path = notify_socket
    notifier = SdNotifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "100000"})
    assert ProgressWatchdog(notifier, dict, max_stall_s=1).check() is False

    def broken() -> dict[str, float]:
        raise RuntimeError("worker registry gone")

    wd = ProgressWatchdog(notifier, broken, max_stall_s=1)
    assert wd.check() is False
    assert "RuntimeError" in wd.stalled()[0]
    assert _recv_all(sock) == []


def test_a_manager_that_does_not_read_never_blocks_the_sender(tmp_path: Path) -> None:
    """A full notify socket fails the send (counted) instead of blocking the event loop."""
    path = tmp_path / "full.sock"
    sink = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sink.bind(str(path))
    try:
        n = SdNotifier({"NOTIFY_SOCKET": str(path)})
        for _ in range(5000):  # far more than a datagram queue holds; blocking would hang here
            n.status("x" * 200)
        st = n.stats()
        assert st.failed > 0 and st.sent > 0
    finally:
        sink.close()
