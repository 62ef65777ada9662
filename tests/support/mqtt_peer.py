"""Test-side MQTT peer: a real paho subscriber, payload records, JSON Schema validation."""

from __future__ import annotations

import json
import queue
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema
import paho.mqtt.client as mqtt

import agent.config  # noqa: F401  (plugin modules must not be imported before agent.config)
from agent.decision.payloads import (
    DefectPayload,
    Latency,
    ModelRef,
    StopPayload,
    payload_schemas,
)
from agent.types import Record, RecordKind, new_event_id

REPO = Path(__file__).resolve().parents[2]
SITE, AGENT = "plant1", "edge-07"


def schema_for(kind: str) -> dict[str, Any]:
    """The published schema (config/schemas/<kind>.schema.json), else the generated one."""
    path = REPO / "config" / "schemas" / f"{kind}.schema.json"
    if path.is_file():
        return dict(json.loads(path.read_text()))
    return payload_schemas()[kind]


def validate(kind: str, payload: dict[str, Any]) -> None:
    """Validate a received payload against its JSON Schema. The sinks add `replayed` to
    every record (agent.protocols.base.wire_payload); where the schema does not declare it
    yet, it is checked here and left out of the schema check."""
    schema = schema_for(kind)
    body = dict(payload)
    if "replayed" in body and "replayed" not in schema.get("properties", {}):
        assert isinstance(body.pop("replayed"), bool)
    jsonschema.validate(body, schema)


def _base(line: str, station: str) -> dict[str, Any]:
    return {"time": datetime.now(UTC), "site": SITE, "agent_id": AGENT,
            "event_id": new_event_id(), "line": line, "station": station, "camera": "cam1"}


def defect_record(line: str = "L1", station: str = "S1", score: float = 0.93,
                  code: int = 17) -> Record:
    p = DefectPayload(**_base(line, station), defect_code=code, defect_class="scratch",
                      severity="major", action="stop", score=score, rule="scratch>=0.80 k2/n3",
                      frame_seq=42, frames=[41, 42], scores=[0.9, score],
                      model=ModelRef(name="m", version="1", sha256="ab" * 32,
                                     provider="CPUExecutionProvider"),
                      latency=Latency(frame_age_ms=3, pre_ms=2, infer_ms=9, post_ms=1,
                                      total_ms=15.5),
                      budget_exceeded=False)
    data = p.model_dump(mode="json")
    return Record(id=data["event_id"], kind=RecordKind.DEFECT, payload=data, line=line,
                  station=station)


def stop_record(line: str = "L1", station: str = "S1") -> Record:
    p = StopPayload(**_base(line, station), kind="stop", status="acked", attempts=1,
                    latency_ms=12.0, trigger_event_id=new_event_id(), plc="plc1")
    data = p.model_dump(mode="json")
    return Record(id=data["event_id"], kind=RecordKind.STOP, payload=data, line=line,
                  station=station)


class Subscriber:
    """A real MQTT client on its own paho thread; messages land in a queue."""

    def __init__(self, host: str, port: int, topics: list[str], v5: bool = True,
                 **connect: Any) -> None:
        self.messages: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        proto = mqtt.MQTTv5 if v5 else mqtt.MQTTv311
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=proto)
        self.client.on_message = lambda c, u, m: self.messages.put(m)
        self.topics = topics
        self.host, self.port = host, port
        self.subscribed = queue.Queue[int]()
        self.client.on_subscribe = lambda c, u, mid, rc, p: self.subscribed.put(mid)
        self.connect = connect

    def start(self) -> Subscriber:
        self.client.connect(self.host, self.port, 30)
        self.client.loop_start()
        for t in self.topics:
            self.client.subscribe(t, qos=1)
            self.subscribed.get(timeout=10)
        return self

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def next(self, topic: str | None = None, timeout: float = 10.0) -> mqtt.MQTTMessage:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no message on {topic or 'any topic'} within {timeout}s")
            try:
                msg = self.messages.get(timeout=left)
            except queue.Empty:
                continue
            if topic is None or msg.topic == topic:
                return msg

    def next_json(self, topic: str | None = None, timeout: float = 10.0) -> dict[str, Any]:
        return dict(json.loads(self.next(topic, timeout).payload))


@contextmanager
def subscriber(host: str, port: int, *topics: str, v5: bool = True) -> Iterator[Subscriber]:
    sub = Subscriber(host, port, list(topics), v5).start()
    try:
        yield sub
    finally:
        sub.stop()


async def anext_json(sub: Subscriber, topic: str | None = None,
                     timeout: float = 10.0) -> dict[str, Any]:
    """next_json without blocking the event loop (the sink under test runs on it)."""
    import asyncio

    return await asyncio.to_thread(sub.next_json, topic, timeout)


def broker_conf(*lines: str) -> str:
    """Mosquitto `extra_conf`. Started as root, mosquitto drops to user `mosquitto`, which
    cannot read files under pytest's private tmp dir (ACL, password file, TLS keys);
    `user root` keeps it as the user that started it (ignored when not root)."""
    return "\n".join(["user root", *lines])
