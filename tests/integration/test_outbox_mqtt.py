"""The real thing: outbox -> Forwarder -> the real MQTT sink -> a real Mosquitto that is
stopped for a while and restarted. A paho subscriber with a persistent session receives every
record, in order; a duplicate only ever repeats the same id."""

from __future__ import annotations

import asyncio
import json
import queue
import random
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

import agent.config  # noqa: F401  (import before any plugin module: circular import)
from agent.config.models import OutboxSettings
from agent.outbox import Forwarder, Outbox
from agent.protocols.base import SinkContext
from agent.protocols.mqtt.config import MqttSinkConfig
from agent.protocols.mqtt.factory import build
from agent.protocols.outbox_policy import OutboxPolicy
from agent.types import Record, RecordKind, new_event_id
from tests.support.mosquitto import Mosquitto

TOPIC = "edge/plant1/L1/S1/defect"


class DurableSubscriber:
    """MQTT 3.1.1, clean_session=False: the broker keeps its subscription and queue across a
    broker restart (persistence on); paho reconnects on its own thread."""

    def __init__(self, broker: Mosquitto) -> None:
        self.broker = broker
        self.got: queue.Queue[dict[str, Any]] = queue.Queue()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="mes-subscriber",
                                  clean_session=False, protocol=mqtt.MQTTv311)
        self.client.reconnect_delay_set(0.1, 0.5)
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(TOPIC, qos=1)
        self.client.on_message = lambda c, u, m: self.got.put(json.loads(m.payload))

    def start(self) -> DurableSubscriber:
        self.client.connect(self.broker.host, self.broker.port, 30)
        self.client.loop_start()
        return self

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def collect(self, want: set[str], timeout: float) -> list[dict[str, Any]]:
        seen: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while not want <= {m["event_id"] for m in seen} and time.monotonic() < deadline:
            try:
                seen.append(self.got.get(timeout=0.2))
            except queue.Empty:
                pass
        return seen


def record(n: int) -> Record:
    rid = new_event_id()
    return Record(id=rid, kind=RecordKind.DEFECT, line="L1", station="S1",
                  payload={"schema_version": 1, "event_id": rid, "n": n})


async def put(box: Outbox, records: list[Record], start: int, count: int) -> None:
    for n in range(start, start + count):
        r = record(n)
        records.append(r)
        assert await box.enqueue("mes", r)
        await asyncio.sleep(0.005)


async def test_records_survive_a_broker_outage_in_order(tmp_path: Path) -> None:
    broker = Mosquitto(tmp_path, extra_conf="user root", persistence=True).start()
    sub = DurableSubscriber(broker).start()
    cfg = MqttSinkConfig.model_validate({"type": "mqtt", "host": broker.host,
                                         "port": broker.port, "reconnect_max_s": 0.5,
                                         "ack_timeout_s": 2.0})
    sink = build("mes", cfg, SinkContext("plant1", "edge-07", tmp_path, tmp_path))
    pol = OutboxPolicy(batch_size=8, retry_initial_ms=50, retry_cap_s=1.0)
    box = Outbox.open(tmp_path / "outbox.sqlite3", OutboxSettings(), {"mes": pol})
    fwd = Forwarder(box, sink, pol, random.Random(3))
    records: list[Record] = []
    try:
        await sink.start()
        await fwd.start()
        await put(box, records, 0, 40)
        broker.stop()  # mid-stream: some batches in flight
        await put(box, records, 40, 40)  # enqueued during the outage: nothing is lost
        await asyncio.sleep(1.5)
        assert box.stats()["mes"].depth > 0
        broker.start()  # same port
        await put(box, records, 80, 20)
        got = await asyncio.to_thread(sub.collect, {r.id for r in records}, 60.0)
        deadline = time.monotonic() + 20
        while box.stats()["mes"].depth and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
    finally:
        await fwd.stop()
        await sink.close()
        await box.close()
        sub.stop()
        broker.stop()

    by_id = {r.id: r.payload["n"] for r in records}
    assert {m["event_id"] for m in got} == set(by_id), "records lost"
    assert all(m["n"] == by_id[m["event_id"]] for m in got)  # a duplicate is the same record
    first: list[int] = []
    for m in got:
        if m["n"] not in first:
            first.append(m["n"])
    assert first == list(range(100)), "records out of order"
    assert any(m["replayed"] for m in got)  # the batch cut by the outage was sent again
    st = box.stats()["mes"]
    assert st.depth == 0 and st.sent >= 100 and st.retried > 0
