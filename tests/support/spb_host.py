"""A Sparkplug B host application for tests, with a decoder of its own.

The decoder is compiled here, from agent/protocols/sparkplug/sparkplug_b.proto, with grpcio-tools'
protoc into a temporary folder and under another protobuf package name, so it shares no
generated code (and no descriptor pool entry) with the agent's checked-in module: what it
decodes is what went over the wire.
"""

from __future__ import annotations

import importlib.util
import json
import queue
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import paho.mqtt.client as mqtt

REPO = Path(__file__).resolve().parents[2]
PROTO = REPO / "agent" / "protocols" / "sparkplug" / "sparkplug_b.proto"


@cache
def host_pb2() -> ModuleType:
    out = Path(tempfile.mkdtemp(prefix="spb-host-"))
    text = PROTO.read_text().replace("package org.eclipse.tahu.protobuf;",
                                     "package spbhost.test;")
    (out / "spb_host.proto").write_text(text)
    subprocess.run([sys.executable, "-m", "grpc_tools.protoc", f"--proto_path={out}",
                    f"--python_out={out}", str(out / "spb_host.proto")], check=True)
    spec = importlib.util.spec_from_file_location("spb_host_pb2", out / "spb_host_pb2.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass
class SpbMessage:
    topic: str
    verb: str
    device: str | None
    payload: Any  # the decoded Payload (host_pb2)
    retain: bool
    at: float = field(default_factory=time.monotonic)

    @property
    def seq(self) -> int | None:
        return self.payload.seq if self.payload.HasField("seq") else None

    def metric(self, name: str) -> Any:
        return next(m for m in self.payload.metrics if m.name == name)

    def by_alias(self) -> dict[int, Any]:
        return {m.alias: m for m in self.payload.metrics}


def value(m: Any) -> Any:
    if m.is_null:
        return None
    return getattr(m, m.WhichOneof("value"))


class SpbHost:
    """Subscribes to `spBv1.0/<group>/#`; publishes STATE (3.0 JSON, retained) and NCMD."""

    def __init__(self, host: str, port: int, group: str, host_id: str = "scada") -> None:
        self.pb = host_pb2()
        self.group = group
        self.host_id = host_id
        self.messages: queue.Queue[SpbMessage] = queue.Queue()
        self.seen: list[SpbMessage] = []
        subscribed = queue.Queue[bool]()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"host-{host_id}",
                                  protocol=mqtt.MQTTv311)
        self.client.on_connect = lambda c, *_: c.subscribe(f"spBv1.0/{group}/#", qos=1)
        self.client.on_subscribe = lambda *_: subscribed.put(True)
        self.client.on_message = self._on_message
        self.client.connect(host, port, 30)
        self.client.loop_start()
        subscribed.get(timeout=10)

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        parts = msg.topic.split("/")
        p = self.pb.Payload()
        p.ParseFromString(msg.payload)
        self.messages.put(SpbMessage(msg.topic, parts[2], parts[4] if len(parts) > 4 else None,
                                     p, bool(msg.retain)))

    def next(self, verb: str | None = None, timeout: float = 10.0) -> SpbMessage:
        """The next message (of `verb`), skipping others; all are kept in `seen`."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no {verb or 'message'} within {timeout} s; "
                                   f"seen {[m.verb for m in self.seen]}")
            try:
                m = self.messages.get(timeout=left)
            except queue.Empty:
                continue
            self.seen.append(m)
            if verb is None or m.verb == verb:
                return m

    def quiet(self, seconds: float) -> list[SpbMessage]:
        """Everything that arrives within `seconds`."""
        got: list[SpbMessage] = []
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                got.append(self.messages.get(timeout=left))
            except queue.Empty:
                pass
        self.seen += got
        return got

    def state(self, online: bool, ts: int | None = None) -> None:
        body = json.dumps({"online": online, "timestamp": ts or int(time.time() * 1000)})
        self.client.publish(f"spBv1.0/STATE/{self.host_id}", body, qos=1,
                            retain=True).wait_for_publish(5)

    def rebirth(self, node: str) -> None:
        p = self.pb.Payload(timestamp=int(time.time() * 1000))
        m = p.metrics.add(name="Node Control/Rebirth", datatype=11)  # Boolean
        m.boolean_value = True
        self.client.publish(f"spBv1.0/{self.group}/NCMD/{node}", p.SerializeToString(),
                            qos=0).wait_for_publish(5)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
