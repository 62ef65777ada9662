"""PlcLink over MQTT 5: retained QoS 1 writes with message expiry, reads of retained values.

A fresh paho client per connection (agent.protocols.mqtt.client's builder: the sink's TLS,
credentials and refusal table), never reconnected by paho itself: a message paho
kept queued across a reconnect would be re-sent with a fresh expiry, i.e. late. When
the connection drops, every write in flight fails as `PlcNoAnswer` (published, no
PUBACK: it may have reached the PLC; the dispatcher retries it only while a retry can
still arrive before the deadline, else reports it unconfirmed) and nothing of the old
client survives.
"""

from __future__ import annotations

import asyncio
import json
import math
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.reasoncodes import ReasonCode

from agent.backoff import Backoff
from agent.protocols.base import SinkContext, encode_json
from agent.protocols.link import (
    ConfigurationFailure,
    PlcNoAnswer,
    PlcRejected,
    PlcUnavailable,
    SupervisedLink,
    Value,
)
from agent.protocols.mqtt.client import MqttClient, build_mqtt_client, publish_properties
from agent.protocols.mqtt.plc_config import MqttPlcConfig
from agent.protocols.mqtt.refusals import Refusal, connack_refusal
from agent.types import utc_now


class MqttPlcLink(SupervisedLink):
    def __init__(self, name: str, cfg: MqttPlcConfig, ctx: SinkContext, backoff: Backoff) -> None:
        super().__init__(name, backoff)
        self.cfg = cfg
        self.ctx = ctx
        self.where = f"mqtt {cfg.host}:{cfg.port}"
        self._client: MqttClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._acks: dict[int, asyncio.Future[ReasonCode]] = {}
        self._values: dict[str, Value] = {}
        self._subscribed: set[str] = set()
        self._changed = asyncio.Event()

    # -- connection steps (SupervisedLink) ---------------------------------------------
    async def _open(self) -> None:
        self._loop = asyncio.get_running_loop()
        connected: asyncio.Future[Refusal | None] = self._loop.create_future()
        client = self._new_client(connected)
        client.start(self.cfg.keepalive_s)
        self._client = client
        try:
            refusal = await asyncio.wait_for(connected, self.cfg.connect_timeout_ms / 1000)
        except TimeoutError:
            raise ConnectionError(f"{self.where}: no CONNACK within "
                                  f"{self.cfg.connect_timeout_ms} ms") from None
        if refusal is not None:
            msg = f"{self.where}: {refusal.reason}"
            raise ConfigurationFailure(msg) if refusal.for_good else ConnectionError(msg)
        for topic in sorted(self._subscribed):
            client.subscribe(topic, qos=1)

    def _new_client(self, connected: asyncio.Future[Refusal | None]) -> MqttClient:
        """A fresh MQTT 5 client, clean start, that paho never reconnects."""
        cid = self.cfg.client_id or f"{self.ctx.agent_id}-plc-{self.name}"
        try:
            client = build_mqtt_client(self.cfg, self.where, self.ctx.base_dir, client_id=cid)
        except ValueError as exc:
            raise ConfigurationFailure(str(exc)) from None
        client.on_connect = lambda c, u, f, rc, p: self._post(_settle, connected,
                                                               connack_refusal(rc))
        client.on_connect_fail = lambda c, u: self._post(_settle, connected, client.refusal())
        client.on_disconnect = lambda c, u, f, rc, p: self._post(self._on_disconnect,
                                                                 connected, rc)
        client.on_publish = lambda c, u, mid, rc, p: self._post(self._on_ack, mid, rc)
        client.on_message = lambda c, u, m: self._post(self._on_value, m.topic, bytes(m.payload))
        return client

    async def _close_client(self) -> None:
        client, self._client = self._client, None
        for fut in self._acks.values():
            if not fut.done():
                fut.set_exception(PlcNoAnswer(f"plc {self.name}: connection closed before "
                                              "the PUBACK"))
        self._acks.clear()
        if client is not None:
            client.disconnect()
            await asyncio.to_thread(client.loop_stop)

    def _alive(self) -> bool:
        return self._client is not None and self._client.is_connected()

    # -- PlcLink ------------------------------------------------------------------------
    async def write(self, address: str, value: Value, timeout: float) -> None:
        async def call() -> None:
            fut = self._publish(address, value, timeout)
            reason = await fut
            if reason.is_failure:
                raise PlcRejected(address, f"broker refused the publish: {reason}")

        try:
            await self._request("write", address, call, timeout)
        except Exception:
            self._stats.write_failures += 1
            raise
        self._stats.writes += 1

    def _publish(self, address: str, value: Value, timeout: float) -> asyncio.Future[ReasonCode]:
        client = self._client
        if client is None or self._loop is None:
            raise PlcUnavailable(f"plc {self.name}: not connected; write {address}")
        expiry = max(1, math.ceil(timeout))
        body = encode_json({"value": value, "time": utc_now().isoformat()})
        info = client.publish(address, body, qos=1, retain=True,
                              properties=publish_properties(expiry))
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise PlcUnavailable(f"plc {self.name}: publish {address}: "
                                 f"{mqtt.error_string(info.rc)}")
        fut: asyncio.Future[ReasonCode] = self._loop.create_future()
        self._acks[info.mid] = fut
        return fut

    async def read(self, address: str, timeout: float) -> Value:
        """The last (retained) value the PLC published on the topic. Reads never take the
        request lock: waiting for a first value must not delay a stop."""
        if self.state.value != "connected":
            self._stats.read_failures += 1
            raise PlcUnavailable(f"plc {self.name} not connected ({self.state}); read {address}")
        self._subscribe(address)
        try:
            async with asyncio.timeout(timeout):
                while address not in self._values:
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            self._stats.read_failures += 1
            raise PlcUnavailable(f"plc {self.name}: read {address}: no value published on the "
                                 f"topic within {timeout * 1000:.0f} ms") from None
        self._stats.reads += 1
        return self._values[address]

    async def probe_signal(self, signal: str, address: str, timeout: float) -> str:
        """Commissioning check without actuating: subscribe and report the retained value."""
        try:
            value = await self.read(address, min(timeout, 1.0))
        except PlcUnavailable:
            if self.state.value != "connected":
                raise
            return "topic subscribed; no retained value yet"
        return f"retained value {value!r}"

    def _subscribe(self, topic: str) -> None:
        if topic not in self._subscribed and self._client is not None:
            self._subscribed.add(topic)
            self._client.subscribe(topic, qos=1)

    # -- paho thread -> loop ----------------------------------------------------------------
    def _post(self, fn: Any, *args: Any) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(fn, *args)
            except RuntimeError:
                pass

    def _on_disconnect(self, connected: asyncio.Future[Refusal | None],
                       reason: ReasonCode) -> None:
        """The connection that was up is gone (a refused one is `_open`'s to report)."""
        if connected.done() and not connected.cancelled() and connected.result() is None:
            self.mark_lost(f"disconnected: {reason}")

    def _on_ack(self, mid: int, reason: ReasonCode) -> None:
        fut = self._acks.pop(mid, None)
        if fut is not None and not fut.done():
            fut.set_result(reason)

    def _on_value(self, topic: str, payload: bytes) -> None:
        value = parse_value(payload)
        if value is not None:
            self._values[topic] = value
            self._changed.set()


def parse_value(payload: bytes) -> Value | None:
    """`{"value": v}` (what this link writes) or a bare number / true / false."""
    try:
        doc = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        return None
    if isinstance(doc, dict):
        doc = doc.get("value")
    if isinstance(doc, bool | int | float):
        return doc
    return None


def _settle(fut: asyncio.Future[Refusal | None], refusal: Refusal | None) -> None:
    if not fut.done():
        fut.set_result(refusal)
