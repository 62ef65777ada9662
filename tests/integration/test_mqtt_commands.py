"""Inbound operator commands over a real broker: accepted ones reach the handler on the
loop, malformed / unauthorised / stale ones are rejected with a reason and never crash."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import agent.config  # noqa: F401  (import before any plugin module: circular import)
from agent.sinks.base import SinkState
from agent.sinks.mqtt_commands import OperatorAction, OperatorCommand
from tests.integration.test_mqtt_sink import make_sink, wait_state
from tests.support.mosquitto import Mosquitto
from tests.support.mqtt_peer import AGENT, SITE, Subscriber, anext_json, subscriber

CMD = f"edge/{SITE}/agent/{AGENT}/cmd"
RESULT = CMD + "/result"
STATUS = f"edge/{SITE}/agent/{AGENT}/status"


def command(**over: Any) -> bytes:
    body = {"command": "reset", "line": "L1", "station": "S1", "id": "op-1",
            "time": datetime.now(UTC).isoformat(), "client_id": "hmi-1", "secret": "let-me-in"}
    body.update(over)
    return json.dumps({k: v for k, v in body.items() if v is not None}).encode()


async def exchange(sub: Subscriber, payload: bytes) -> dict[str, Any]:
    sub.client.publish(CMD, payload, qos=1)
    return await anext_json(sub, RESULT)


@pytest.fixture
async def commanded(mosquitto: Mosquitto, tmp_path: Path):  # type: ignore[no-untyped-def]
    sink = make_sink(mosquitto, tmp_path, commands={
        "enabled": True, "allowed_client_ids": ["hmi-1"], "shared_secret": "let-me-in"})
    received: list[tuple[OperatorCommand, bool]] = []

    def handler(cmd: OperatorCommand) -> None:
        on_loop = threading.current_thread() is threading.main_thread()
        received.append((cmd, on_loop))
        if cmd.station == "boom":
            raise RuntimeError("handler bug")

    sink.on_command(handler)
    with subscriber(mosquitto.host, mosquitto.port, RESULT, STATUS) as sub:
        await sink.start()
        await wait_state(sink, SinkState.CONNECTED)
        assert (await anext_json(sub, STATUS))["state"] == "online"
        await asyncio.sleep(0.2)  # the sink's SUBSCRIBE is on the wire before we publish
        yield sink, sub, received
        await sink.close()


async def test_accepted_command_reaches_handler_on_the_loop(commanded) -> None:  # type: ignore[no-untyped-def]
    sink, sub, received = commanded
    reply = await exchange(sub, command(command="pause", id="op-7"))
    assert reply["accepted"] is True and reply["id"] == "op-7" and reply["command"] == "pause"
    cmd, on_loop = received[0]
    assert (cmd.action, cmd.line, cmd.station, cmd.client_id) == (
        OperatorAction.PAUSE, "L1", "S1", "hmi-1")
    assert on_loop
    assert sink.stats().commands_accepted == 1


# payloads are built when the test runs: a command carries its time and goes stale
@pytest.mark.parametrize(("make", "reason"), [
    (lambda: b"{not json", "not JSON"),
    (lambda: b"[1, 2]", "not a JSON object"),
    (lambda: command(command="selfdestruct"), "invalid command: command"),
    (lambda: command(extra_field=1), "extra_field"),
    (lambda: command(time=None), "time"),
    (lambda: command(client_id="intruder"), "client id 'intruder' is not allowed"),
    (lambda: command(secret="guess"), "wrong shared secret"),
    (lambda: command(secret=None), "wrong shared secret"),
    (lambda: command(time=(datetime.now(UTC) - timedelta(minutes=5)).isoformat()), "not executed late"),
    (lambda: command(station=None), "reset needs line and station"),
    (lambda: b"x" * 5000, "too large"),
])
async def test_bad_commands_are_rejected_with_a_reason(commanded, make: Callable[[], bytes],  # type: ignore[no-untyped-def]
                                                       reason: str) -> None:
    sink, sub, received = commanded
    reply = await exchange(sub, make())
    assert reply["accepted"] is False and reason in reply["reason"]
    assert received == []
    assert sink.stats().commands_rejected == 1
    assert "let-me-in" not in json.dumps(reply)
    reply = await exchange(sub, command())  # still alive and listening
    assert reply["accepted"] is True


async def test_handler_error_does_not_kill_the_sink(commanded) -> None:  # type: ignore[no-untyped-def]
    sink, sub, received = commanded
    await exchange(sub, command(station="boom"))
    assert (await exchange(sub, command(command="resume")))["accepted"] is True
    assert [c.station for c, _ in received] == ["boom", "S1"]
    assert sink.state is SinkState.CONNECTED


async def test_rebirth_republishes_status(commanded) -> None:  # type: ignore[no-untyped-def]
    sink, sub, received = commanded
    sink.set_birth({"started": "2026-11-27T08:00:00+00:00"})
    assert (await anext_json(sub, STATUS))["started"] == "2026-11-27T08:00:00+00:00"
    assert (await exchange(sub, command(command="rebirth", line=None, station=None)))["accepted"]
    assert (await anext_json(sub, STATUS))["state"] == "online"
    assert received[0][0].action is OperatorAction.REBIRTH


async def test_commands_off_by_default(mosquitto: Mosquitto, tmp_path: Path) -> None:
    sink = make_sink(mosquitto, tmp_path)
    got: list[OperatorCommand] = []
    sink.on_command(got.append)
    with subscriber(mosquitto.host, mosquitto.port, RESULT) as sub:
        await sink.start()
        await wait_state(sink, SinkState.CONNECTED)
        sub.client.publish(CMD, command(secret=None, client_id=None), qos=1)
        with pytest.raises(TimeoutError):
            await anext_json(sub, RESULT, timeout=1.0)
        await sink.close()
    assert got == [] and sink.stats().commands_rejected == 0
