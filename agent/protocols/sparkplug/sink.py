"""Sparkplug B 3.0 edge node sink: session on the broker, births, records as DDATA.

Session (Sparkplug 3.0, "Edge Node Session Establishment"): CONNECT with NDEATH as the Last
Will (bdSeq of this connection), subscribe to NCMD, DCMD and the primary host's STATE, then
NBIRTH (seq 0) and a DBIRTH per station. With `primary_host_id` the births wait for a STATE
`{"online": true}`; a STATE `online: false` ends the session (NDEATH, disconnect) and a new
one starts, waiting for the host again. Records are sent only while the session is born and
the host online: otherwise `send` raises SinkUnavailable and they stay in the outbox.

The broker connection is the MQTT sink's `MqttSession` (paho's callbacks handed to the
asyncio loop, refusals, PUBACKs); this module is the edge node on top of it.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from agent.protocols.base import SinkState, SinkUnavailable, wire_payload
from agent.protocols.mqtt.client import RecordingClient
from agent.protocols.mqtt.session import MqttSession, refused_by_broker
from agent.protocols.sparkplug.client import NodeDeath, device_id
from agent.protocols.sparkplug.node import EdgeNodeSession
from agent.protocols.sparkplug.payload import bdseq_payload
from agent.tasks import cancel_and_wait
from agent.types import Record

if TYPE_CHECKING:
    from agent.protocols.sparkplug.config import SparkplugSinkConfig

log = logging.getLogger(__name__)


class SparkplugSink:
    def __init__(self, name: str, cfg: SparkplugSinkConfig, client: RecordingClient,
                 death: NodeDeath) -> None:
        self.name, self.cfg, self.client = name, cfg, client
        self.death = death  # the Last Will: its bdseq is this connection's
        self.topics = death.topics
        self.session = MqttSession(client, log, cfg.reconnect_max_s)
        self.where = self.session.where
        self.node = EdgeNodeSession()
        self._connected = False
        self._born = False
        self._host_online = cfg.primary_host_id is None
        self._state_ts = -1  # timestamp of the last STATE message taken
        self._devices_born: set[str] = set()
        self._restart: asyncio.Task[None] | None = None

    # ---- the Sink seam -------------------------------------------------------------------

    @property
    def state(self) -> SinkState:
        return self.session.state

    async def start(self) -> None:
        self.session.start(self, self.cfg.keepalive_s)
        log.info("%s: edge node %s/%s connecting", self.where, self.topics.group,
                 self.topics.node)

    async def send(self, batch: Sequence[Record]) -> None:
        if self.state is not SinkState.CONNECTED:
            raise SinkUnavailable(f"{self.where}: {self._why_down()}")
        acks = self.session.new_acks()
        refused: dict[str, str] = {}
        mids: list[int] = []
        try:
            for record in batch:
                try:
                    data, topic = self._event_message(record)
                except ValueError as exc:
                    refused[record.id] = str(exc)
                    continue
                mids.append(self.session.publish(topic, data, self.cfg.record_qos, acks=acks,
                                                 key=record.id))
            if mids:
                await self.session.await_acks(acks, mids, self.cfg.ack_timeout_s)
        except SinkUnavailable:
            self.session.forget(mids)
            raise
        refused.update(acks.refused)
        refused_by_broker(self.where, refused, acks.busy)

    async def close(self) -> None:
        if self.state is SinkState.CLOSED:
            return
        born = self._born
        self.session.state = SinkState.CLOSED
        if self._restart is not None:
            await cancel_and_wait(self._restart)
        if born:  # a clean end: the devices, then the node, die on the record
            for dev in list(self.node.devices):
                self._send(self.topics.device_topic("DDEATH", dev), self.node.ddeath(dev))
            await self._ndeath()
        await self.session.stop("sink closed")
        log.info("%s: closed", self.where)

    # ---- telemetry (health loop): a StatusPublisher -------------------------------------

    def set_birth(self, birth: dict[str, Any]) -> None:
        """The agent's identity (version, models) as node properties."""
        self.node.node_values.update(
            version=birth.get("version"), site=birth.get("site"),
            agent_id=birth.get("agent_id"),
            models=json.dumps(birth.get("models", []), separators=(",", ":")))

    async def publish_telemetry(self, kind: str, payload: dict[str, Any]) -> bool:
        if kind == "status" and "healthy" in payload:
            self.node.node_values["healthy"] = bool(payload["healthy"])
        return self.state is SinkState.CONNECTED

    async def publish_snapshot(self, snapshot: dict[str, Any]) -> None:
        """Station telemetry (agent.runtime.station_snapshot): NDATA / DDATA of what
        changed, DBIRTH for a station seen for the first time, DDEATH for one gone."""
        self.node.node_values["outbox_depth"] = snapshot.get("outbox_depth", {}).get(self.name)
        stations = {device_id(*key.split("/", 1)): values
                    for key, values in snapshot.get("stations", {}).items()}
        gone = [dev for dev in self.node.devices if dev not in stations]
        for dev, values in stations.items():
            self.node.define_device(dev)
            self.node.devices[dev] = dict(values)
        if not self._born:
            return
        self._send(self.topics.node_topic("NDATA"), self.node.ndata())
        for dev in stations:
            if dev not in self._devices_born:
                self._dbirth(dev)
            else:
                self._send(self.topics.device_topic("DDATA", dev), self.node.ddata(dev))
        for dev in gone:
            self._send(self.topics.device_topic("DDEATH", dev), self.node.ddeath(dev))
            self._devices_born.discard(dev)
            del self.node.devices[dev]

    # ---- session -------------------------------------------------------------------------

    def _births(self) -> None:
        """NBIRTH (seq 0, this connection's bdSeq), then a DBIRTH per known station."""
        self._send(self.topics.node_topic("NBIRTH"), self.node.nbirth(self.death.bdseq))
        self._born = True
        self._devices_born = set()
        for dev in self.node.devices:
            self._dbirth(dev)
        self.session.state = SinkState.CONNECTED
        log.info("%s: edge node born (bdSeq %d, %d device(s))", self.where, self.death.bdseq,
                 len(self._devices_born))

    def _dbirth(self, dev: str) -> None:
        self._send(self.topics.device_topic("DBIRTH", dev), self.node.dbirth(dev))
        self._devices_born.add(dev)

    def _event_message(self, record: Record) -> tuple[bytes, str]:
        payload = wire_payload(record)
        if record.line is None or record.station is None:
            return self.node.event(record, payload, None), self.topics.node_topic("NDATA")
        dev = device_id(record.line, record.station)
        if dev not in self._devices_born:
            self._dbirth(dev)
        return (self.node.event(record, payload, dev),
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
        self.session.state = SinkState.DISCONNECTED
        await self._ndeath()
        await self.session.stop("session ended: primary host offline")
        if self.state is not SinkState.CLOSED:
            self.client.start(self.cfg.keepalive_s)

    async def _ndeath(self) -> None:
        await self.session.publish_last("NDEATH", self.topics.node_topic("NDEATH"),
                                        bdseq_payload(self.death.bdseq), retain=False)

    def _send(self, topic: str, data: bytes | None) -> None:
        """Births, deaths and telemetry at QoS 0 (nobody waits for them); None: nothing."""
        if data is not None:
            try:
                self.session.publish(topic, data, 0)
            except SinkUnavailable:  # lost meanwhile: born again at the next connect
                pass

    # ---- the session's owner (on the loop) ---------------------------------------------

    def session_up(self, properties: Any) -> None:
        self._connected = True
        c, t = self.client, self.topics
        c.subscribe(t.node_topic("NCMD"), qos=1)
        c.subscribe(t.device_topic("DCMD", "+"), qos=1)
        if t.state_topic is not None:
            self.session.state = SinkState.DISCONNECTED
            c.subscribe(t.state_topic, qos=1)
            log.info("%s: waiting for primary host %s", self.where, t.host)
        elif not self._born:
            self._births()

    def session_down(self) -> None:
        self._connected = False
        self._born = False

    def on_message(self, topic: str, payload: bytes) -> None:
        if self.state is SinkState.CLOSED:
            return
        if topic == self.topics.state_topic:
            self._on_state(payload)
        elif topic == self.topics.node_topic("NCMD"):
            self._on_ncmd(payload)

    def _on_ncmd(self, data: bytes) -> None:
        try:
            rebirth = self.node.is_rebirth_request(data)
        except Exception as exc:  # protobuf DecodeError: a foreign payload
            log.warning("%s: ignoring undecodable NCMD: %s", self.where, exc)
            return
        if rebirth and self._born:
            log.info("%s: rebirth requested (NCMD)", self.where)
            self._births()

    def _why_down(self) -> str:
        if self._connected and not self._host_online:
            return f"primary host {self.cfg.primary_host_id} is offline (STATE)"
        return self.session.why_down()
