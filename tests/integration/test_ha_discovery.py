"""Home Assistant MQTT discovery on the MQTT sink, against a real Mosquitto."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import agent.config  # noqa: F401  (import before any plugin module: circular import)
from agent.protocols.base import SinkContext, SinkState
from agent.protocols.mqtt.config import MqttSinkConfig
from agent.protocols.mqtt.factory import build
from agent.protocols.mqtt.ha_sink import HaMqttSink
from tests.support.mosquitto import Mosquitto
from tests.support.mqtt_collector import Collector, Message

SITE, AGENT = "plant1", "edge-07"
STATUS = f"edge/{SITE}/agent/{AGENT}/status"
CONFIG_TOPIC = re.compile(r"^homeassistant/(sensor|binary_sensor)/edge-07/[a-zA-Z0-9_-]+/config$")
# Home Assistant's MQTT docs: `state_topic` is the one required key of an MQTT sensor and
# binary sensor; a `device` needs `identifiers` (or connections) and the entity a
# `unique_id`; an availability entry needs its `topic`.
REQUIRED = {"sensor": {"state_topic"}, "binary_sensor": {"state_topic"}}


def snapshot(*stations: str, ng: int = 1, latched: bool = False) -> dict[str, Any]:
    values = {"ok": 7, "ng": ng, "unknown": 0, "last_verdict": "NG", "last_defect_code": 17,
              "last_defect_class": "scratch", "latched": latched}
    return {"outbox_depth": {}, "stations": {s: dict(values) for s in stations}}


async def started(broker: Mosquitto, state_dir: Path, *stations: str) -> HaMqttSink:
    cfg = MqttSinkConfig.model_validate({"type": "mqtt", "host": broker.host,
                                         "port": broker.port, "reconnect_max_s": 0.5,
                                         "homeassistant": {"enabled": True}})
    sink = build("mes", cfg, SinkContext(SITE, AGENT, state_dir, state_dir))
    assert isinstance(sink, HaMqttSink)
    await sink.start()
    await until(lambda: sink.state is SinkState.CONNECTED)
    await sink.publish_snapshot(snapshot(*stations))
    return sink


async def retained(broker: Mosquitto, topic: str, count: int) -> list[Message]:
    """What a newcomer (Home Assistant starting) gets: the retained messages."""
    sub = await asyncio.to_thread(Collector, broker.host, broker.port, topic, "ha-newcomer")
    try:
        await asyncio.to_thread(sub.wait_for, "", count, 5.0)
        await asyncio.sleep(0.3)
        return [m for m in sub.messages if m.retain and m.payload]
    finally:
        sub.close()


async def until(cond: Any, timeout: float = 10.0) -> None:
    for _ in range(int(timeout / 0.05)):
        if cond():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not met in time")


async def test_discovery_payloads_carry_what_home_assistant_requires(
        mosquitto: Mosquitto, tmp_path: Path) -> None:
    sink = await started(mosquitto, tmp_path, "L1/S1", "L1/S2")
    try:
        configs = await retained(mosquitto, "homeassistant/#", 9)
        states = await retained(mosquitto, f"edge/{SITE}/+/+/state", 2)
    finally:
        await sink.close()
    assert len(configs) == 9  # agent online + 4 per station
    unique = set()
    for m in configs:
        match = CONFIG_TOPIC.match(m.topic)
        assert match, m.topic
        body = m.json()
        assert REQUIRED[match.group(1)] <= body.keys(), m.topic
        assert body["device"]["identifiers"] and body["unique_id"] not in unique
        unique.add(body["unique_id"])
        assert "{{" in body["value_template"]
        for entry in body.get("availability", []):
            assert entry["topic"] == STATUS
            assert (entry["payload_available"], entry["payload_not_available"]) == (
                "online", "offline")
    online = next(m.json() for m in configs if m.topic.endswith("/online/config"))
    assert online["state_topic"] == STATUS and online["payload_on"] == "online"
    by_topic = {m.topic: m.json() for m in states}
    s1 = by_topic[f"edge/{SITE}/L1/S1/state"]
    assert s1["ok"] == 7 and s1["last_defect"] == "scratch (17)" and s1["latched"] is False


async def test_entities_of_a_removed_station_are_cleared(mosquitto: Mosquitto,
                                                         tmp_path: Path) -> None:
    sink = await started(mosquitto, tmp_path, "L1/S1", "L1/S2")
    await sink.close()
    assert len(await retained(mosquitto, "homeassistant/#", 9)) == 9
    sink = await started(mosquitto, tmp_path, "L1/S1")  # S2 left the config
    try:
        await asyncio.sleep(0.5)
        configs = await retained(mosquitto, "homeassistant/#", 5)
    finally:
        await sink.close()
    topics = {m.topic for m in configs}
    assert len(topics) == 5 and not any("L1_S2" in t for t in topics)
    assert any("L1_S1" in t for t in topics)


async def test_entities_are_available_again_after_a_broker_restart(tmp_path: Path) -> None:
    broker = Mosquitto(tmp_path).start()  # no persistence: a restart loses every retained
    sink = await started(broker, tmp_path, "L1/S1")
    try:
        await until(lambda: len(sink._sent_state) == 1)
        broker.stop()
        await until(lambda: sink.state is not SinkState.CONNECTED)
        broker.start()
        await until(lambda: sink.state is SinkState.CONNECTED, 15.0)
        await sink.publish_snapshot(snapshot("L1/S1", latched=True))
        configs = await retained(broker, "homeassistant/#", 5)
        status = await retained(broker, STATUS, 1)
        state = await retained(broker, f"edge/{SITE}/L1/S1/state", 1)
        assert len(configs) == 5, "discovery not announced again after the restart"
        assert status[0].json()["state"] == "online"  # payload_available
        assert state[0].json()["latched"] is True
    finally:
        await sink.close()
    try:
        status = await retained(broker, STATUS, 1)
        assert status[0].json()["state"] == "offline"  # payload_not_available
    finally:
        broker.stop()
