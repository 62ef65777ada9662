"""MQTT sink against a real Mosquitto: topics, PUBACK, schemas, status, outages, refusals."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

import agent.config  # noqa: F401  (import before any plugin module: circular import)
from agent.protocols.base import SinkContext, SinkRejected, SinkState, SinkUnavailable
from agent.protocols.mqtt.config import MqttSinkConfig
from agent.protocols.mqtt.factory import build
from agent.protocols.mqtt.sink import MqttSink
from tests.support.mosquitto import Mosquitto
from tests.support.mqtt_peer import (
    AGENT,
    SITE,
    anext_json,
    broker_conf,
    defect_record,
    stop_record,
    subscriber,
    validate,
)

STATUS = f"edge/{SITE}/agent/{AGENT}/status"


def make_sink(broker: Mosquitto, tmp_path: Path, **cfg: Any) -> MqttSink:
    config = MqttSinkConfig.model_validate({"type": "mqtt", "host": broker.host,
                                            "port": broker.port, **cfg})
    return build("mes", config, SinkContext(SITE, AGENT, tmp_path, tmp_path))


async def wait_state(sink: MqttSink, *states: SinkState, timeout: float = 15.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while sink.state not in states:
        assert asyncio.get_running_loop().time() < deadline, f"state stayed {sink.state}"
        await asyncio.sleep(0.02)


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
async def test_records_reach_their_topics_and_validate(mosquitto: Mosquitto, tmp_path: Path,
                                                       protocol: str) -> None:
    sink = make_sink(mosquitto, tmp_path, protocol=protocol)
    with subscriber(mosquitto.host, mosquitto.port, "edge/#") as sub:
        await sink.start()
        await wait_state(sink, SinkState.CONNECTED)
        defect, stop = defect_record("L1", "S1"), stop_record("L1", "S2")
        await sink.send([defect, stop])
        got = {}
        for _ in range(3):  # online status + 2 records, any order across topics
            msg = await asyncio.to_thread(sub.next, None)
            got[msg.topic] = msg
        d = got[f"edge/{SITE}/L1/S1/defect"]
        s = got[f"edge/{SITE}/L1/S2/stop"]
        assert d.qos == 1 and s.qos == 1
        import json
        d_body, s_body = json.loads(d.payload), json.loads(s.payload)
        validate("defect", d_body)
        validate("stop", s_body)
        assert d_body["event_id"] == defect.id and d_body["replayed"] is False
        if protocol == "5":  # stop is time-sensitive: message expiry; record id as property
            assert 0 < s.properties.MessageExpiryInterval <= 60
            assert ("record_id", stop.id) in s.properties.UserProperty
            assert not hasattr(d.properties, "MessageExpiryInterval")
        validate("status", json.loads(got[STATUS].payload))
        await sink.close()
    stats = sink.stats()
    assert (stats.published, stats.acked, stats.rejected) == (2, 2, 0)


async def test_status_birth_online_then_offline_on_close(mosquitto: Mosquitto,
                                                         tmp_path: Path) -> None:
    sink = make_sink(mosquitto, tmp_path)
    birth = {"started": "2026-11-27T09:00:00+00:00",
             "models": [{"name": "m", "version": "1", "sha256": "ab" * 32,
                         "provider": "CPUExecutionProvider", "fallback": False}]}
    sink.set_birth(birth)
    await sink.start()
    await wait_state(sink, SinkState.CONNECTED)
    with subscriber(mosquitto.host, mosquitto.port, STATUS) as sub:  # joins late: retained
        online = await anext_json(sub, STATUS)
        assert online["state"] == "online" and online["models"] == birth["models"]
        validate("status", online)
        assert await sink.publish_telemetry("metrics", {"values": {"fps": 12.5}})
        await sink.close()
        offline = await anext_json(sub, STATUS)
    assert offline["state"] == "offline"
    validate("status", offline)
    with subscriber(mosquitto.host, mosquitto.port, STATUS) as late:
        assert (await anext_json(late, STATUS))["state"] == "offline"  # retained
    assert sink.state is SinkState.CLOSED


async def test_metrics_topic_validates(mosquitto: Mosquitto, tmp_path: Path) -> None:
    sink = make_sink(mosquitto, tmp_path)
    metrics = f"edge/{SITE}/agent/{AGENT}/metrics"
    with subscriber(mosquitto.host, mosquitto.port, metrics) as sub:
        await sink.start()
        await wait_state(sink, SinkState.CONNECTED)
        assert await sink.publish_telemetry("metrics", {"values": {"outbox_depth": 3.0}})
        body = await anext_json(sub, metrics)
        await sink.close()
    validate("metrics", body)
    assert body["values"] == {"outbox_depth": 3.0}


async def test_broker_down_at_start_then_up(tmp_path: Path) -> None:
    broker = Mosquitto(tmp_path)  # port chosen, not started
    sink = make_sink(broker, tmp_path, reconnect_max_s=1)
    await sink.start()  # never fails because the broker is down
    await wait_state(sink, SinkState.DISCONNECTED)
    with pytest.raises(SinkUnavailable, match=f"127.0.0.1:{broker.port}.*refused"):
        await sink.send([defect_record()])
    assert await sink.publish_telemetry("metrics", {"values": {}}) is False
    broker.start()
    try:
        await wait_state(sink, SinkState.CONNECTED)
        await sink.send([defect_record()])
        await sink.close()
    finally:
        broker.stop()
    stats = sink.stats()
    assert stats.unavailable == 1 and stats.telemetry_dropped == 1 and stats.acked == 1
    assert stats.connect_failures >= 1


async def test_broker_outage_mid_run_then_recovery(tmp_path: Path) -> None:
    broker = Mosquitto(tmp_path).start()
    sink = make_sink(broker, tmp_path, reconnect_max_s=1)
    try:
        await sink.start()
        await wait_state(sink, SinkState.CONNECTED)
        broker.stop()
        await wait_state(sink, SinkState.DISCONNECTED)
        with pytest.raises(SinkUnavailable, match="not connected"):
            await sink.send([defect_record()])
        broker.start()
        await wait_state(sink, SinkState.CONNECTED)
        await sink.send([defect_record()])
        await sink.close()
    finally:
        broker.stop()
    assert sink.stats().disconnects == 1


async def test_refused_by_acl_and_too_large_are_rejected(tmp_path: Path) -> None:
    acl = tmp_path / "acl"
    acl.write_text("topic readwrite edge/#\ntopic deny edge/+/L9/#\n")
    broker = Mosquitto(tmp_path, extra_conf=broker_conf(f"acl_file {acl}", "max_packet_size 4000")).start()
    sink = make_sink(broker, tmp_path)
    try:
        await sink.start()
        await wait_state(sink, SinkState.CONNECTED)
        ok, denied = defect_record("L1"), defect_record("L9")
        with pytest.raises(SinkRejected, match="Not authorized") as err:
            await sink.send([ok, denied])
        assert err.value.record_ids == (denied.id,)
        big = defect_record()
        big.payload["rule"] = "x" * 5000
        with pytest.raises(SinkRejected, match="maximum packet size") as err:
            await sink.send([big])
        assert err.value.record_ids == (big.id,)
        await sink.close()
    finally:
        broker.stop()
    stats = sink.stats()
    assert (stats.acked, stats.rejected) == (1, 2)


async def test_topic_template_override(mosquitto: Mosquitto, tmp_path: Path) -> None:
    sink = make_sink(mosquitto, tmp_path, prefix="acme/mes",
                     topics={"defect": "{prefix}/{site}/quality/{line}-{station}"},
                     qos={"defect": 0})
    with subscriber(mosquitto.host, mosquitto.port, "acme/mes/#") as sub:
        await sink.start()
        await wait_state(sink, SinkState.CONNECTED)
        await sink.send([defect_record("L2", "S7")])
        msg = await asyncio.to_thread(sub.next, f"acme/mes/{SITE}/quality/L2-S7")
        await sink.close()
    assert msg.qos == 0
