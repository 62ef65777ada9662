"""Inbound operator commands over a real broker, attacked from the broker: the key never
on the wire, forged and replayed commands refused (also after a restart), commands from
the future refused, every attempt audited with id, client and reason, answers signed,
and a flood of garbage that neither crashes the sink nor floods the log."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import agent.config  # noqa: F401  (import before any plugin module: circular import)
from agent.protocols.base import SinkState
from agent.protocols.mqtt.command_auth import keyring
from agent.protocols.mqtt.commands import OperatorAction, OperatorCommand
from agent.protocols.mqtt.sink import MqttSink
from agent.types import new_event_id
from tests.integration.test_mqtt_sink import make_sink, wait_state
from tests.support.mosquitto import Mosquitto
from tests.support.mqtt_peer import AGENT, SITE, Subscriber, anext_json, subscriber

CMD = f"edge/{SITE}/agent/{AGENT}/cmd"
RESULT = CMD + "/result"
STATUS = f"edge/{SITE}/agent/{AGENT}/status"
KEY = "7f3c9a1e5b2d4c8f9e0a1b2c3d4e5f60"  # what an attacker must never see
OLD_KEY = "0123456789abcdef0123456789abcdef"
KEYS = keyring("k2", KEY, {})
COMMANDS = {"enabled": True, "allowed_client_ids": ["hmi-1"], "key": KEY, "key_id": "k2",
            "previous_keys": {"k1": OLD_KEY}}


def body(**over: Any) -> dict[str, Any]:
    b = {"command": "reset", "line": "L1", "station": "S1", "id": new_event_id(),
         "time": datetime.now(UTC).isoformat(), "client_id": "hmi-1"}
    b.update(over)
    return {k: v for k, v in b.items() if v is not None}


def command(**over: Any) -> bytes:
    return json.dumps(KEYS.sign(CMD, body(**over))).encode()


def forged(**over: Any) -> bytes:
    """What an attacker without the key can do: take a signed command and change it."""
    doc = json.loads(command(command="pause"))
    doc.update(over or {"command": "reset"})
    return json.dumps(doc).encode()


def claimed(payload: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(payload)
    except ValueError:
        return {}
    return doc if isinstance(doc, dict) else {}


async def exchange(sub: Subscriber, payload: bytes) -> dict[str, Any]:
    """Publish a command, return the answer to its id (any answer when it has none)."""
    want = claimed(payload).get("id")
    sub.client.publish(CMD, payload, qos=1)
    while True:
        reply = await anext_json(sub, RESULT)
        if want is None or reply["id"] == want:
            break
    assert KEYS.verify(RESULT, reply) is None, reply  # every answer is signed
    return reply


class Commanded:
    """A sink taking commands, with what reached its handler and its audit."""

    def __init__(self, sink: MqttSink, sub: Subscriber) -> None:
        self.sink, self.sub = sink, sub
        self.received: list[tuple[OperatorCommand, bool]] = []
        self.audit: list[dict[str, Any]] = []
        sink.on_command(self.handler, self.record)

    def handler(self, cmd: OperatorCommand) -> None:
        on_loop = threading.current_thread() is threading.main_thread()
        self.received.append((cmd, on_loop))
        if cmd.station == "boom":
            raise RuntimeError("handler bug")

    def record(self, event: str, **fields: Any) -> None:
        self.audit.append({"event": event, **fields})

    async def handled(self, n: int) -> None:
        for _ in range(200):
            if len(self.received) >= n:
                return
            await asyncio.sleep(0.01)
        raise AssertionError(f"{len(self.received)} command(s) handled, expected {n}")


async def start(mosquitto: Mosquitto, state: Path, sub: Subscriber,
                **cfg: Any) -> Commanded:
    sink = make_sink(mosquitto, state, commands={**COMMANDS, **cfg})
    c = Commanded(sink, sub)
    await sink.start()
    await wait_state(sink, SinkState.CONNECTED)
    await asyncio.sleep(0.2)  # the sink's SUBSCRIBE is on the wire before we publish
    return c


@pytest.fixture
async def commanded(mosquitto: Mosquitto, tmp_path: Path):  # type: ignore[no-untyped-def]
    with subscriber(mosquitto.host, mosquitto.port, RESULT, STATUS) as sub:
        c = await start(mosquitto, tmp_path, sub)
        assert (await anext_json(sub, STATUS))["state"] == "online"
        yield c
        await c.sink.close()


async def test_accepted_command_reaches_handler_on_the_loop_and_is_audited(commanded) -> None:  # type: ignore[no-untyped-def]
    c = commanded
    reply = await exchange(c.sub, command(command="pause", id="op-7"))
    assert reply["accepted"] is True and reply["id"] == "op-7" and reply["command"] == "pause"
    await c.handled(1)
    cmd, on_loop = c.received[0]
    assert (cmd.action, cmd.line, cmd.station, cmd.client_id, cmd.id) == (
        OperatorAction.PAUSE, "L1", "S1", "hmi-1", "op-7")
    assert on_loop
    assert c.sink.stats().commands_accepted == 1
    assert c.audit == [{"event": "operator_command", "sink": "mes", "id": "op-7",
                        "client": "hmi-1", "command": "pause", "line": "L1", "station": "S1",
                        "accepted": True, "code": "accepted", "reason": "accepted",
                        "authenticated": True}]


async def test_previous_key_still_accepted_during_rotation(commanded) -> None:  # type: ignore[no-untyped-def]
    old = keyring("k1", OLD_KEY, {})
    reply = await exchange(commanded.sub, json.dumps(old.sign(CMD, body())).encode())
    assert reply["accepted"] is True and reply["kid"] == "k2"  # answers use the current key


# payloads are built when the test runs: a command carries its time and goes stale
@pytest.mark.parametrize(("make", "code", "reason"), [
    (lambda: forged(), "unauthenticated", "wrong mac"),
    (lambda: forged(station="S9"), "unauthenticated", "wrong mac"),
    (lambda: json.dumps(body()).encode(), "unauthenticated", "`kid` and `mac` are required"),
    (lambda: json.dumps(body(secret=KEY)).encode(), "unauthenticated", "are required"),
    (lambda: json.dumps(keyring("k3", KEY, {}).sign(CMD, body())).encode(), "unauthenticated",
     "unknown key id 'k3'"),
    (lambda: json.dumps(keyring("k2", "guess" * 4, {}).sign(CMD, body())).encode(),
     "unauthenticated", "wrong mac"),
    (lambda: b"{not json", "malformed", "not JSON"),
    (lambda: b"[1, 2]", "malformed", "not a JSON object"),
    (lambda: b"x" * 5000, "malformed", "too large"),
    (lambda: command(command="selfdestruct"), "invalid", "invalid command: command"),
    (lambda: command(extra_field=1), "invalid", "extra_field"),
    (lambda: command(time=None), "invalid", "time"),
    (lambda: command(id=None), "invalid", "id"),
    (lambda: command(client_id="intruder"), "client", "client id 'intruder' is not allowed"),
    (lambda: command(time=(datetime.now(UTC) - timedelta(minutes=5)).isoformat()), "stale",
     "not executed late"),
    (lambda: command(time=(datetime.now(UTC) + timedelta(seconds=29)).isoformat()), "future",
     "in the future"),
    (lambda: command(station=None), "invalid", "reset needs line and station"),
])
async def test_bad_commands_are_rejected_and_audited(commanded, make: Callable[[], bytes],  # type: ignore[no-untyped-def]
                                                     code: str, reason: str) -> None:
    c = commanded
    payload = make()
    reply = await exchange(c.sub, payload)
    assert reply["accepted"] is False and reason in reply["reason"]
    assert KEY not in json.dumps(reply)
    assert c.sink.stats().commands_rejected == 1
    [line] = c.audit
    assert line["accepted"] is False and line["code"] == code and reason in line["reason"]
    doc = claimed(payload)
    if "id" in doc:  # the id and client it claimed, for the record
        assert (line["id"], line["client"]) == (doc["id"], doc.get("client_id"))
    reply = await exchange(c.sub, command())  # still alive and listening
    assert reply["accepted"] is True
    await c.handled(1)
    assert len(c.received) == 1


async def test_key_never_on_the_wire(mosquitto: Mosquitto, tmp_path: Path) -> None:
    """An eavesdropper on `#` sees commands and answers, accepted and rejected, but no key."""
    with subscriber(mosquitto.host, mosquitto.port, "#") as spy, \
            subscriber(mosquitto.host, mosquitto.port, RESULT) as sub:
        c = await start(mosquitto, tmp_path, sub)
        for payload in (command(), command(command="pause"), forged(), b"{not json",
                        json.dumps(keyring("k1", OLD_KEY, {}).sign(CMD, body())).encode()):
            await exchange(sub, payload)
        await c.sink.close()
        seen = []
        while not spy.messages.empty():
            seen.append(spy.messages.get())
    assert sum(m.topic == CMD for m in seen) == 5 and sum(m.topic == RESULT for m in seen) == 5
    wire = b"".join(m.payload for m in seen)
    for secret in (KEY, OLD_KEY):
        assert secret.encode() not in wire and secret.encode().hex().encode() not in wire


async def test_captured_command_replayed_is_refused_also_after_a_restart(
        mosquitto: Mosquitto, tmp_path: Path) -> None:
    """The attack: capture one valid `reset` on `#`, republish it. It runs once, ever."""
    with subscriber(mosquitto.host, mosquitto.port, CMD) as spy, \
            subscriber(mosquitto.host, mosquitto.port, RESULT) as sub:
        c = await start(mosquitto, tmp_path, sub)
        assert (await exchange(sub, command(id="op-once")))["accepted"] is True
        captured = (await asyncio.to_thread(spy.next, CMD)).payload
        for _ in range(3):
            reply = await exchange(sub, captured)
            assert reply["accepted"] is False and "replayed" in reply["reason"], reply
        await c.handled(1)
        await c.sink.close()
        assert [a["code"] for a in c.audit] == ["accepted", "replay", "replay", "replay"]
        assert all(a["id"] == "op-once" and a["client"] == "hmi-1" for a in c.audit)

        again = await start(mosquitto, tmp_path, sub)  # same state_dir: a restarted agent
        reply = await exchange(sub, captured)
        assert reply["accepted"] is False and "replayed" in reply["reason"], reply
        assert (await exchange(sub, command(id="op-new")))["accepted"] is True
        await again.handled(1)
        await again.sink.close()
    assert [cmd.id for cmd, _ in c.received + again.received] == ["op-once", "op-new"]
    assert again.sink.stats().commands_rejected == 1


async def test_command_flood_neither_crashes_nor_floods_the_log(
        commanded, caplog: pytest.LogCaptureFixture) -> None:  # type: ignore[no-untyped-def]
    """2,000 malformed commands: every one answered and audited, a few warning lines."""
    c = commanded
    with caplog.at_level(logging.DEBUG):
        for i in range(2000):
            c.sub.client.publish(CMD, b"{garbage %d" % i if i % 2 else forged(), qos=1)
        for _ in range(300):
            if c.sink.stats().commands_rejected >= 2000:
                break
            await asyncio.sleep(0.05)
        assert c.sink.stats().commands_rejected == 2000
        assert (await exchange(c.sub, command()))["accepted"] is True
    loud = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(loud) <= 2, [r.getMessage() for r in loud]
    assert len(c.audit) == 2001
    assert c.sink.commands.rejected_by == {"malformed": 1000, "unauthenticated": 1000}


async def test_handler_error_does_not_kill_the_sink(commanded) -> None:  # type: ignore[no-untyped-def]
    c = commanded
    await exchange(c.sub, command(station="boom"))
    assert (await exchange(c.sub, command(command="resume")))["accepted"] is True
    await c.handled(2)
    assert [cmd.station for cmd, _ in c.received] == ["boom", "S1"]
    assert c.sink.state is SinkState.CONNECTED


async def test_rebirth_republishes_status(commanded) -> None:  # type: ignore[no-untyped-def]
    c = commanded
    c.sink.set_birth({"started": "2026-11-27T08:00:00+00:00"})
    assert (await anext_json(c.sub, STATUS))["started"] == "2026-11-27T08:00:00+00:00"
    assert (await exchange(c.sub, command(command="rebirth", line=None, station=None)))["accepted"]
    assert (await anext_json(c.sub, STATUS))["state"] == "online"
    await c.handled(1)
    assert c.received[0][0].action is OperatorAction.REBIRTH


async def test_commands_off_by_default(mosquitto: Mosquitto, tmp_path: Path) -> None:
    sink = make_sink(mosquitto, tmp_path)
    got: list[OperatorCommand] = []
    sink.on_command(got.append)
    with subscriber(mosquitto.host, mosquitto.port, RESULT) as sub:
        await sink.start()
        await wait_state(sink, SinkState.CONNECTED)
        sub.client.publish(CMD, command(), qos=1)
        with pytest.raises(TimeoutError):
            await anext_json(sub, RESULT, timeout=1.0)
        await sink.close()
    assert got == [] and sink.stats().commands_rejected == 0
