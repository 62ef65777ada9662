"""A PLC that refuses the heartbeat's writes (a pymodbus server in another process that
answers Modbus exception 2 or 4): the counter is held and the PLC marked refusing, the
log stays at one line, and the counter runs again once the PLC accepts the writes."""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.control.heartbeat import Heartbeat, StatusBits
from agent.protocols.plc_common import HeartbeatConfig
from tests.conftest import REPO
from tests.integration.plc_helpers import modbus_link, wait_for
from tests.support.ports import free_port

HEALTHY = StatusBits(True, True, True, False)


def refusing_server(port: int, code: int, registers: str | None = None
                    ) -> subprocess.Popen[str]:
    args = [sys.executable, "-m", "tests.support.refusing_modbus", "--port", str(port),
            "--code", str(code)] + (["--registers", registers] if registers else [])
    proc = subprocess.Popen(args, cwd=REPO, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


def serving(params: tuple[int, str | None]) -> Iterator[tuple[int, subprocess.Popen[str]]]:
    """(port, process) of a refusing server for a parametrized fixture; ended after the test."""
    port = free_port()
    proc = refusing_server(port, *params)
    try:
        yield port, proc
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture
def server(request: pytest.FixtureRequest) -> Iterator[tuple[int, subprocess.Popen[str]]]:
    yield from serving(request.param)


def heartbeat_lines(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == "agent.control.heartbeat" and r.levelno >= level]


@pytest.mark.parametrize("server", [(2, None), (4, "0")], indirect=True,
                         ids=["exception 2 on every write", "exception 4 on the counter"])
async def test_refused_writes_hold_the_counter_and_log_once(
        tmp_path: Path, server: tuple[int, subprocess.Popen[str]],
        caplog: pytest.LogCaptureFixture) -> None:
    port, proc = server
    caplog.set_level(logging.DEBUG, logger="agent.control.heartbeat")
    link = modbus_link(tmp_path, port)
    hb = Heartbeat(link, HeartbeatConfig(counter="hr:0", status="hr:1", interval_ms=20),
                   lambda: HEALTHY)
    await link.start()
    try:
        assert await link.wait_connected(5)
        await hb.start()
        await wait_for(lambda: hb.stats().refused >= 30, what="30 refused writes")
        refusal = hb.refusal
        assert refusal is not None and "Modbus exception" in refusal.error
        assert hb.stats().beats == 0 and hb.stats().counter == 0 and hb.stats().refusing
        assert await link.read("hr:0", 1) == 0  # the PLC never saw the counter move
        lines = heartbeat_lines(caplog, logging.INFO)  # one line, no "recovered" between
        assert len(lines) == 1 and "the counter is held" in lines[0], lines
        assert "refuses the heartbeat's writes" in lines[0] and "Modbus exception" in lines[0]

        proc.send_signal(signal.SIGUSR1)  # the PLC accepts writes again
        await wait_for(lambda: hb.refusal is None, what="refusal cleared")
        await wait_for(lambda: hb.stats().beats >= 3, what="counting again")
        assert await link.read("hr:0", 1) >= 1
        lines = heartbeat_lines(caplog, logging.INFO)
        assert len(lines) == 2 and "accepts the heartbeat's writes again" in lines[1], lines
    finally:
        await hb.stop()
        await link.close()


@pytest.mark.parametrize("server", [(4, "0")], indirect=True)
async def test_status_word_clears_healthy_while_the_counter_is_refused(
        tmp_path: Path, server: tuple[int, subprocess.Popen[str]]) -> None:
    port, _ = server
    link = modbus_link(tmp_path, port)
    hb = Heartbeat(link, HeartbeatConfig(counter="hr:0", status="hr:1", interval_ms=20),
                   lambda: HEALTHY)
    await link.start()
    try:
        assert await link.wait_connected(5)
        await hb.start()
        await wait_for(lambda: hb.stats().status_writes >= 3, what="status written")
        assert await link.read("hr:1", 1) == 0b0110  # camera + model ok, not healthy
    finally:
        await hb.stop()
        await link.close()
