"""Sparkplug B 3.0 edge node sink: session on the broker, births, records as DDATA.

Session (Sparkplug 3.0, "Edge Node Session Establishment"): CONNECT with NDEATH as the Last
Will (bdSeq of this connection), subscribe to NCMD, DCMD and the primary host's STATE, then
NBIRTH (seq 0) and a DBIRTH per station. With `primary_host_id` the births wait for a STATE
`{"online": true}`; a STATE `online: false` ends the session (NDEATH, disconnect) and a new
one starts, waiting for the host again. Records are sent only while the session is born and
the host online: otherwise `send` raises SinkUnavailable and they stay in the outbox.

paho runs its own network thread; every callback is handed to the asyncio loop, where all
state below lives (as in the MQTT sink).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import paho.mqtt.client as mqtt
from paho.mqtt.reasoncodes import ReasonCode

from agent.logutil import RepeatLimiter
from agent.protocols.base import SinkRejected, SinkState, SinkUnavailable, wire_payload
from agent.protocols.mqtt.client import RecordingClient, describe_connack, describe_connect_error
from agent.protocols.sparkplug.client import (
    BdSeq,
    SpbTopics,
    connect_properties,
    device_id,
    set_ndeath_will,
)
from agent.protocols.sparkplug.node import EdgeNodeSession
from agent.protocols.sparkplug.payload import bdseq_payload
from agent.tasks import cancel_and_wait
from agent.types import Record

if TYPE_CHECKING:
    from agent.protocols.base import SinkContext
    from agent.protocols.sparkplug.config import SparkplugSinkConfig

log = logging.getLogger(__name__)
CLOSE_ACK_TIMEOUT_S = 2.0


class SparkplugSink:
    def __init__(self, name: str, cfg: SparkplugSinkConfig, ctx: SinkContext,
                 client: RecordingClient, where: str) -> None:
        self.name = name
        self.cfg = cfg
        self.ctx = ctx
        self.client = client
        self.where = where
        self.topics = SpbTopics(cfg.group_id, cfg.edge_node_id or ctx.agent_id,
                                cfg.primary_host_id)
        self.bdseq = BdSeq(Path(ctx.state_dir) / f"sparkplug-{name}.json")
        self.session = EdgeNodeSession()
        self._state = SinkState.STARTING
        self._loop: asyncio.AbstractEventLoop | None = None
        self._conn_bdseq = 0  # bdSeq of the current connection (its Will's)
        self._connected = False
        self._born = False
        self._host_online = cfg.primary_host_id is None
        self._state_ts = -1  # timestamp of the last STATE message taken
        self._pending: dict[int, asyncio.Future[None]] = {}
        self._devices_born: set[str] = set()
        self._restart: asyncio.Task[None] | None = None
        self._last_error: str | None = None
        self._refused = RepeatLimiter(log, where, logging.ERROR)
        self._link = RepeatLimiter(log, where)

    # ---- the Sink seam -------------------------------------------------------------------

    @property
    def state(self) -> SinkState:
        return self._state

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        c = self.client
        c.on_pre_connect = self._cb_pre_connect
        c.on_connect = self._cb_connect
        c.on_connect_fail = self._cb_connect_fail
        c.on_disconnect = self._cb_disconnect
        c.on_publish = self._cb_publish
        c.on_message = self._cb_message
        self._connect()
        log.info("%s: edge node %s/%s connecting", self.where, self.topics.group,
                 self.topics.node)

    async def send(self, batch: Sequence[Record]) -> None:
        if self._state is not SinkState.CONNECTED:
            raise SinkUnavailable(f"{self.where}: {self._why_down()}")
        refused: dict[str, str] = {}
        futures: list[asyncio.Future[None]] = []
        for record in batch:
            try:
                data, topic = self._event_message(record)
            except ValueError as exc:
                refused[record.id] = str(exc)
                continue
            futures.append(self._publish(topic, data, self.cfg.record_qos))
        if futures:
            await self._await_all(futures)
        if refused:
            first = next(iter(refused.items()))
            raise SinkRejected(f"{self.where}: {len(refused)} record(s) refused, first "
                               f"{first[0]}: {first[1]}", list(refused))

    async def close(self) -> None:
        if self._state is SinkState.CLOSED:
            return
        born = self._born
        self._state = SinkState.CLOSED
        if self._restart is not None:
            await cancel_and_wait(self._restart)
        if born:  # a clean end: the devices, then the node, die on the record
            for dev in list(self.session.devices):
                self._publish(self.topics.device_topic("DDEATH", dev),
                              self.session.ddeath(dev), 0)
            await self._ndeath()
        self._fail_pending("sink closed")
        self.client.disconnect()
        await asyncio.to_thread(self.client.loop_stop)
        log.info("%s: closed", self.where)

    # ---- telemetry (health loop) ---------------------------------------------------------

    def set_birth(self, birth: dict[str, Any]) -> None:
        """The agent's identity (version, models) as node properties."""
        self.session.node_values.update(
            version=birth.get("version"), site=birth.get("site"),
            agent_id=birth.get("agent_id"),
            models=json.dumps(birth.get("models", []), separators=(",", ":")))

    async def publish_telemetry(self, kind: str, payload: dict[str, Any]) -> bool:
        if kind == "status" and "healthy" in payload:
            self.session.node_values["healthy"] = bool(payload["healthy"])
        return self._state is SinkState.CONNECTED

    async def publish_snapshot(self, snapshot: dict[str, Any]) -> None:
        """Station telemetry (agent.runtime.station_snapshot): NDATA / DDATA of what
        changed, DBIRTH for a station seen for the first time, DDEATH for one gone."""
        self.session.node_values["outbox_depth"] = snapshot.get("outbox_depth", {}).get(self.name)
        stations = {device_id(*key.split("/", 1)): values
                    for key, values in snapshot.get("stations", {}).items()}
        gone = [dev for dev in self.session.devices if dev not in stations]
        for dev, values in stations.items():
            self.session.define_device(dev)
            self.session.devices[dev] = dict(values)
        if not self._born:
            return
        self._send_if(self.topics.node_topic("NDATA"), self.session.ndata())
        for dev in stations:
            if dev not in self._devices_born:
                self._dbirth(dev)
            else:
                self._send_if(self.topics.device_topic("DDATA", dev), self.session.ddata(dev))
        for dev in gone:
            self._publish(self.topics.device_topic("DDEATH", dev), self.session.ddeath(dev), 0)
            self._devices_born.discard(dev)
            del self.session.devices[dev]

    # ---- session -------------------------------------------------------------------------

    def _connect(self) -> None:
        self.client.connect_async(self.cfg.host, self.cfg.port, self.cfg.keepalive_s,
                                  clean_start=True, properties=connect_properties(self.cfg))
        self.client.loop_start()

    def _births(self) -> None:
        """NBIRTH (seq 0, this connection's bdSeq), then a DBIRTH per known station."""
        self._publish(self.topics.node_topic("NBIRTH"), self.session.nbirth(self._conn_bdseq), 0)
        self._born = True
        self._devices_born = set()
        for dev in self.session.devices:
            self._dbirth(dev)
        self._state = SinkState.CONNECTED
        log.info("%s: edge node born (bdSeq %d, %d device(s))", self.where, self._conn_bdseq,
                 len(self._devices_born))

    def _dbirth(self, dev: str) -> None:
        self._publish(self.topics.device_topic("DBIRTH", dev), self.session.dbirth(dev), 0)
        self._devices_born.add(dev)

    def _event_message(self, record: Record) -> tuple[bytes, str]:
        payload = wire_payload(record)
        if record.line is None or record.station is None:
            return self.session.event(record, payload, None), self.topics.node_topic("NDATA")
        dev = device_id(record.line, record.station)
        if dev not in self._devices_born:
            self._dbirth(dev)
        return (self.session.event(record, payload, dev),
                self.topics.device_topic("DDATA", dev))

    def _on_state(self, data: bytes) -> None:
        """Primary host STATE (3.0 JSON form); an older timestamp than the last is ignored."""
        try:
            doc = json.loads(data)
            online, ts = doc["online"], int(doc["timestamp"])
            if not isinstance(online, bool):
                raise TypeError("`online` is not a boolean")
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("%s: ignoring malformed STATE on %s: %s", self.where,
                        self.topics.state_topic, exc)
            return
        if ts < self._state_ts:
            return
        self._state_ts = ts
        self._host_online = online
        if online and self._connected and not self._born:
            log.info("%s: primary host %s online", self.where, self.cfg.primary_host_id)
            self._births()
        elif not online and self._born and (self._restart is None or self._restart.done()):
            log.warning("%s: primary host %s offline: session ended, records stay in the "
                        "outbox until it is back", self.where, self.cfg.primary_host_id)
            self._restart = asyncio.create_task(self._restart_session(), name="spb-restart")

    async def _restart_session(self) -> None:
        """End this session (NDEATH, disconnect) and start a new one (new bdSeq)."""
        self._born = False
        self._state = SinkState.DISCONNECTED
        await self._ndeath()
        self.client.disconnect()
        await asyncio.to_thread(self.client.loop_stop)
        self._fail_pending("session ended: primary host offline")
        if self._state is not SinkState.CLOSED:
            self._connect()

    async def _ndeath(self) -> None:
        fut = self._publish(self.topics.node_topic("NDEATH"), bdseq_payload(self._conn_bdseq), 1)
        try:
            await asyncio.wait_for(fut, CLOSE_ACK_TIMEOUT_S)
        except (TimeoutError, SinkUnavailable):
            log.warning("%s: NDEATH not acknowledged; the Last Will covers it", self.where)

    # ---- publishing ----------------------------------------------------------------------

    def _send_if(self, topic: str, data: bytes | None) -> None:
        if data is not None:
            self._publish(topic, data, 0)

    def _publish(self, topic: str, data: bytes, qos: int) -> asyncio.Future[None]:
        """Publish; the future settles when paho reports it sent (QoS 0) or acknowledged."""
        assert self._loop is not None
        fut: asyncio.Future[None] = self._loop.create_future()
        info = self.client.publish(topic, data, qos=qos, retain=False)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            fut.set_exception(SinkUnavailable(f"publish failed: {mqtt.error_string(info.rc)}"))
            fut.exception()  # retrieved: a telemetry publish nobody awaits must not warn
        else:
            self._pending[info.mid] = fut
        return fut

    async def _await_all(self, futures: list[asyncio.Future[None]]) -> None:
        try:
            await asyncio.wait_for(asyncio.gather(*futures), self.cfg.ack_timeout_s)
        except TimeoutError:
            raise SinkUnavailable(f"{self.where}: PUBACK(s) not received within "
                                  f"{self.cfg.ack_timeout_s:g} s") from None
        except SinkUnavailable as exc:
            raise SinkUnavailable(f"{self.where}: {exc}") from None

    def _fail_pending(self, why: str) -> None:
        pending, self._pending = self._pending, {}
        for fut in pending.values():
            if not fut.done():
                fut.set_exception(SinkUnavailable(f"connection lost before PUBACK ({why})"))
                fut.exception()

    # ---- paho callbacks (network thread) -> loop -----------------------------------------

    def _post(self, fn: Callable[..., None], *args: Any) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:
            pass

    def _cb_pre_connect(self, client: mqtt.Client, _userdata: Any) -> None:
        bd = self.bdseq.next()  # before the CONNECT: its Will carries this bdSeq
        set_ndeath_will(client, self.topics, bd)
        self._conn_bdseq = bd

    def _cb_connect(self, _c: Any, _u: Any, _f: Any, reason: ReasonCode, _p: Any) -> None:
        self._post(self._on_connect, reason)

    def _cb_connect_fail(self, _c: Any, _u: Any) -> None:
        self._post(self._on_connect_error, self.client.last_connect_error)

    def _cb_disconnect(self, _c: Any, _u: Any, _f: Any, reason: ReasonCode, _p: Any) -> None:
        self._post(self._on_disconnect, reason)

    def _cb_publish(self, _c: Any, _u: Any, mid: int, reason: ReasonCode, _p: Any) -> None:
        self._post(self._on_ack, mid, reason)

    def _cb_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        self._post(self._on_message, msg.topic, bytes(msg.payload))

    # ---- on the loop ---------------------------------------------------------------------

    def _on_connect(self, reason: ReasonCode) -> None:
        if self._state is SinkState.CLOSED:
            return
        if reason.is_failure:
            self._refuse(*describe_connack(reason))
            return
        self._connected = True
        self._last_error = None
        self._refused.recovered("connected")
        self._link.recovered("connected")
        c, t = self.client, self.topics
        c.subscribe(t.node_topic("NCMD"), qos=1)
        c.subscribe(t.device_topic("DCMD", "+"), qos=1)
        if t.state_topic is not None:
            self._state = SinkState.DISCONNECTED
            c.subscribe(t.state_topic, qos=1)
            log.info("%s: connected; waiting for primary host %s", self.where, t.host)
        elif not self._born:
            self._births()

    def _on_connect_error(self, exc: BaseException | None) -> None:
        if self._state is not SinkState.CLOSED:
            self._refuse(*describe_connect_error(exc))

    def _refuse(self, reason: str, for_good: bool) -> None:
        self._last_error = reason
        if for_good:
            self._state = SinkState.FAILED
            self._refused.failure("%s; records stay in the outbox", reason)
        else:
            self._state = SinkState.DISCONNECTED
            self._link.failure("%s; records stay in the outbox", reason)

    def _on_disconnect(self, reason: ReasonCode) -> None:
        self._connected = False
        self._born = False
        self._fail_pending(str(reason))
        if self._state in (SinkState.CLOSED, SinkState.FAILED):
            return
        if self._state is SinkState.CONNECTED:
            self._last_error = f"connection lost: {reason}"
            self._link.failure("connection lost (%s); reconnecting", reason)
        self._state = SinkState.DISCONNECTED

    def _on_ack(self, mid: int, reason: ReasonCode) -> None:
        fut = self._pending.pop(mid, None)
        if fut is None or fut.done():
            return
        if reason.is_failure:
            fut.set_exception(SinkUnavailable(f"broker refused: {reason}"))
        else:
            fut.set_result(None)

    def _on_message(self, topic: str, data: bytes) -> None:
        if self._state is SinkState.CLOSED:
            return
        if topic == self.topics.state_topic:
            self._on_state(data)
        elif topic == self.topics.node_topic("NCMD"):
            self._on_ncmd(data)

    def _on_ncmd(self, data: bytes) -> None:
        try:
            rebirth = self.session.is_rebirth_request(data)
        except Exception as exc:  # protobuf DecodeError: a foreign payload
            log.warning("%s: ignoring undecodable NCMD: %s", self.where, exc)
            return
        if rebirth and self._born:
            log.info("%s: rebirth requested (NCMD)", self.where)
            self._births()

    def _why_down(self) -> str:
        if self._connected and not self._host_online:
            return f"primary host {self.cfg.primary_host_id} is offline (STATE)"
        return self._last_error or f"not connected ({self._state.value})"
