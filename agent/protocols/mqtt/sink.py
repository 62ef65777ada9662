"""MQTT sink: records at QoS 1 (send returns after every PUBACK), telemetry, status, commands.

paho-mqtt runs its own network thread (`loop_start`); every paho callback is
handed to the asyncio loop with `call_soon_threadsafe`, so all state below is
only touched on the loop. Reconnection is paho's, with a capped backoff. A
connection the broker refuses for good (credentials, TLS) puts the sink in
FAILED with one clear error; records stay in the outbox because `send` raises
SinkUnavailable until a connection is up.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import paho.mqtt.client as mqtt
from paho.mqtt.reasoncodes import ReasonCode

from agent.logutil import RepeatLimiter
from agent.protocols.base import (
    SinkContext,
    SinkRejected,
    SinkState,
    SinkUnavailable,
    encode_json,
    wire_bytes,
)
from agent.protocols.mqtt.acks import BatchAcks
from agent.protocols.mqtt.client import (
    RecordingClient,
    connect_properties,
    describe_connack,
    describe_connect_error,
    is_v5,
    publish_properties,
    status_payload,
)
from agent.protocols.mqtt.command_replay import SeenIds
from agent.protocols.mqtt.commands import CommandPolicy, OperatorCommand
from agent.protocols.mqtt.listener import Audit, CommandListener, seen_ids_path
from agent.protocols.mqtt.topics import TopicMap
from agent.types import Record

if TYPE_CHECKING:
    from agent.protocols.mqtt.config import MqttSinkConfig

log = logging.getLogger(__name__)
PAHO_MAX_PAYLOAD = 268_435_455
CLOSE_ACK_TIMEOUT_S = 2.0


@dataclass
class MqttSinkStats:
    published: int = 0  # records handed to the broker
    acked: int = 0  # records acknowledged (PUBACK success)
    rejected: int = 0  # records refused (reason code, too large, not JSON)
    unavailable: int = 0  # sends that raised SinkUnavailable
    late_acks: int = 0  # PUBACKs that came after their send had timed out
    telemetry_sent: int = 0
    telemetry_dropped: int = 0  # status/metrics not sent because disconnected
    commands_accepted: int = 0
    commands_rejected: int = 0
    connects: int = 0
    disconnects: int = 0
    connect_failures: int = 0
    last_error: str | None = None


class MqttSink:
    sends_stored_json = True  # records go out as `wire_bytes`: no payload decoding per lease

    def __init__(self, name: str, cfg: MqttSinkConfig, ctx: SinkContext,
                 client: RecordingClient, topics: TopicMap, policy: CommandPolicy) -> None:
        self.name = name
        self.cfg = cfg
        self.ctx = ctx
        self.client = client
        self.topics = topics
        self.policy = policy
        self.where = f"mqtt sink {name!r} (broker {cfg.host}:{cfg.port})"
        seen = SeenIds(seen_ids_path(ctx.state_dir, name), policy.max_age_s)
        if cfg.commands.enabled:
            seen.load(datetime.now(UTC).timestamp())
        self.commands = CommandListener(self.where, name, policy, topics, seen,
                                        self._publish_result, self._publish_online)
        self._state = SinkState.STARTING
        self._stats = MqttSinkStats()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: dict[int, tuple[BatchAcks, str]] = {}  # mid -> its send's acks, record id
        self._untracked: set[int] = set()  # status/telemetry/command replies: acks not awaited
        # PUBACKs arrive on paho's thread; they are handed to the loop in bunches (one
        # wake-up per bunch, not per message), in arrival order. deque appends and pops are
        # atomic; a drain is posted when none is pending (see _cb_publish / _drain_acks)
        self._acks: deque[tuple[int, ReasonCode]] = deque()
        self._drain_posted = False
        self._birth: dict[str, Any] = {}
        self._max_payload = PAHO_MAX_PAYLOAD
        self._connack_seen = False
        self._refused = RepeatLimiter(log, self.where, logging.ERROR)
        self._link = RepeatLimiter(log, self.where)

    # ---- public API -----------------------------------------------------------------

    @property
    def state(self) -> SinkState:
        return self._state

    def stats(self) -> MqttSinkStats:
        return replace(self._stats, commands_accepted=self.commands.accepted,
                       commands_rejected=sum(self.commands.rejected_by.values()))

    def set_birth(self, birth: dict[str, Any]) -> None:
        self._birth = dict(birth)
        if self._state is SinkState.CONNECTED:
            self._publish_online()

    def on_command(self, handler: Callable[[OperatorCommand], None],
                   audit: Audit | None = None) -> None:
        """`handler` gets each accepted command; `audit(event, **fields)` every attempt."""
        self.commands.set_handler(handler, audit)

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        c = self.client
        c.on_connect = self._cb_connect
        c.on_connect_fail = self._cb_connect_fail
        c.on_disconnect = self._cb_disconnect
        c.on_publish = self._cb_publish
        c.on_message = self._cb_message
        c.connect_async(self.cfg.host, self.cfg.port, self.cfg.keepalive_s, clean_start=False,
                        properties=connect_properties(self.cfg))
        c.loop_start()
        log.info("%s: connecting as client id %r", self.where, c._client_id.decode())

    async def send(self, batch: Sequence[Record]) -> None:
        if self._state is not SinkState.CONNECTED:
            self._stats.unavailable += 1
            raise SinkUnavailable(f"{self.where}: not connected ({self._why_down()})")
        acks = self._new_acks()
        refused: dict[str, str] = {}
        mids: list[int] = []
        now = datetime.now(UTC)
        v5 = is_v5(self.client)
        try:
            with self.client.one_wakeup():
                for record in batch:
                    try:
                        mids.append(self._publish_record(record, acks, now, v5))
                    except ValueError as exc:
                        refused[record.id] = str(exc)
        except SinkUnavailable:
            self._forget(mids)
            raise
        if mids:
            await self._await_acks(acks, mids)
        refused.update(acks.refused)
        if refused:
            self._stats.rejected += len(refused)
            first = next(iter(refused.items()))
            raise SinkRejected(f"{self.where}: {len(refused)} record(s) refused, "
                               f"first {first[0]}: {first[1]}", list(refused))

    async def publish_telemetry(self, kind: str, payload: dict[str, Any]) -> bool:
        self.commands.tick()
        if self._state is not SinkState.CONNECTED:
            self._stats.telemetry_dropped += 1
            return False
        if kind == "status":
            body = {**status_payload(self.ctx, "online"), **self._birth, **payload}
            ok = self._publish_raw(self.topics.status_topic, body, qos=1, retain=True)
        else:
            expiry = max(1, int(self.cfg.status_interval_s * 3))
            body = {**status_payload(self.ctx, None), **payload}
            ok = self._publish_raw(self.topics.agent_topic(kind), body, qos=0, expiry=expiry)
        if ok:
            self._stats.telemetry_sent += 1
        else:
            self._stats.telemetry_dropped += 1
        return ok

    async def close(self) -> None:
        if self._state is SinkState.CLOSED:
            return
        was_connected = self._state is SinkState.CONNECTED
        self._state = SinkState.CLOSED
        if was_connected:
            await self._publish_offline()
        self._fail_pending("sink closed")
        self.client.disconnect()
        await asyncio.to_thread(self.client.loop_stop)
        await self.commands.close()
        log.info("%s: closed", self.where)

    # ---- records --------------------------------------------------------------------

    def _publish_record(self, record: Record, acks: BatchAcks, now: datetime, v5: bool) -> int:
        kind = str(record.kind)
        topic = self.topics.record_topic(record)
        data = wire_bytes(record)
        if len(data) > self._max_payload:
            raise ValueError(f"payload of {len(data)} bytes does not fit the broker's maximum "
                             f"packet size ({self._max_payload} bytes left for the payload)")
        props = None
        if v5:
            props = publish_properties(self.topics.expiry_s(kind, record.created, now), record.id)
        info = self.client.publish(topic, data, qos=self.topics.qos(kind), properties=props)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            self._stats.unavailable += 1
            raise SinkUnavailable(f"{self.where}: publish failed: {mqtt.error_string(info.rc)}")
        self._stats.published += 1
        self._track(acks, info.mid, record.id)
        return int(info.mid)

    def _new_acks(self) -> BatchAcks:
        assert self._loop is not None
        return BatchAcks(self._loop.create_future())

    def _track(self, acks: BatchAcks, mid: int, record_id: str) -> None:
        acks.add()
        self._pending[mid] = (acks, record_id)

    async def _await_acks(self, acks: BatchAcks, mids: list[int]) -> None:
        try:
            await asyncio.wait_for(acks.future, self.cfg.ack_timeout_s)
        except TimeoutError:
            self._forget(mids)
            self._stats.unavailable += 1
            raise SinkUnavailable(f"{self.where}: {acks.waiting} of {len(mids)} PUBACK(s) "
                                  f"not received within {self.cfg.ack_timeout_s:g} s") from None
        except asyncio.CancelledError:
            self._forget(mids)
            raise
        except SinkUnavailable as exc:
            self._stats.unavailable += 1
            raise SinkUnavailable(f"{self.where}: {exc}") from None
        self._stats.acked += acks.acked

    def _forget(self, mids: list[int]) -> None:
        for mid in mids:
            self._pending.pop(mid, None)

    def _fail_pending(self, why: str) -> None:
        self._untracked.clear()
        pending, self._pending = self._pending, {}
        for acks, _ in pending.values():
            acks.fail(SinkUnavailable(f"connection lost before PUBACK ({why})"))

    # ---- status / telemetry ---------------------------------------------------------

    def _publish_raw(self, topic: str, body: dict[str, Any], qos: int, retain: bool = False,
                     expiry: int | None = None) -> bool:
        props = publish_properties(expiry) if is_v5(self.client) else None
        try:
            info = self.client.publish(topic, encode_json(body), qos=qos, retain=retain,
                                       properties=props)
        except ValueError as exc:
            log.warning("%s: cannot publish to %s: %s", self.where, topic, exc)
            return False
        if qos > 0:
            self._untracked.add(info.mid)
        return bool(info.rc == mqtt.MQTT_ERR_SUCCESS)

    def _publish_result(self, topic: str, body: dict[str, Any]) -> bool:
        return self._publish_raw(topic, body, qos=1)

    def _publish_online(self) -> None:
        body = {**status_payload(self.ctx, "online"), **self._birth}
        self._publish_raw(self.topics.status_topic, body, qos=1, retain=True)

    async def _publish_offline(self) -> None:
        body = status_payload(self.ctx, "offline")
        props = publish_properties(None) if is_v5(self.client) else None
        info = self.client.publish(self.topics.status_topic, encode_json(body), qos=1, retain=True,
                                   properties=props)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            return
        acks = self._new_acks()
        self._track(acks, info.mid, "status")
        try:
            await asyncio.wait_for(acks.future, CLOSE_ACK_TIMEOUT_S)
        except (TimeoutError, SinkUnavailable):
            log.warning("%s: offline status not acknowledged; the Last Will covers it", self.where)

    # ---- paho callbacks (network thread) -> loop --------------------------------------

    def _post(self, fn: Callable[..., None], *args: Any) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:  # loop closed between the check and the call
            pass

    def _cb_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: ReasonCode,
                    properties: Any) -> None:
        size = getattr(properties, "MaximumPacketSize", None) if properties else None
        self._post(self._on_connect, reason, size)

    def _cb_connect_fail(self, client: mqtt.Client, userdata: Any) -> None:
        self._post(self._on_connect_error, self.client.last_connect_error)

    def _cb_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any,
                       reason: ReasonCode, properties: Any) -> None:
        self._post(self._on_disconnect, reason)

    def _cb_publish(self, client: mqtt.Client, userdata: Any, mid: int, reason: ReasonCode,
                    properties: Any) -> None:
        self._acks.append((mid, reason))
        if not self._drain_posted:  # later acks join this bunch
            self._drain_posted = True
            self._post(self._drain_acks)

    def _cb_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        self._post(self.commands.on_message, bytes(msg.payload))

    # ---- on the loop ----------------------------------------------------------------

    def _on_connect(self, reason: ReasonCode, max_packet: int | None) -> None:
        if self._state is SinkState.CLOSED:
            return
        self._connack_seen = True
        if reason.is_failure:
            self._refuse(*describe_connack(reason))
            return
        self._max_payload = min(PAHO_MAX_PAYLOAD, (max_packet or PAHO_MAX_PAYLOAD) - 512)
        self._state = SinkState.CONNECTED
        self._stats.connects += 1
        self._stats.last_error = None
        self._refused.recovered("connected")
        self._link.recovered("connected")
        log.info("%s: connected", self.where)
        if self.cfg.commands.enabled:
            self.client.subscribe(self.topics.command_topic, qos=1)
        self._publish_online()

    def _on_connect_error(self, exc: BaseException | None) -> None:
        if self._state is SinkState.CLOSED:
            return
        self._refuse(*describe_connect_error(exc))

    def _refuse(self, reason: str, for_good: bool) -> None:
        self._stats.connect_failures += 1
        self._stats.last_error = reason
        if for_good:
            self._state = SinkState.FAILED
            self._refused.failure("%s; records stay in the outbox (retrying every %g s)",
                                  reason, self.cfg.reconnect_max_s)
        else:
            self._state = SinkState.DISCONNECTED
            self._link.failure("%s; records stay in the outbox", reason)

    def _on_disconnect(self, reason: ReasonCode) -> None:
        self._fail_pending(str(reason))
        if self._state is SinkState.CLOSED:
            return
        if not self._connack_seen and self.client.last_connect_error is None:
            self._refuse("broker closed the connection before CONNACK "
                         "(client certificate refused, or not a MQTT/TLS port?)", True)
        elif self._state is SinkState.CONNECTED:
            self._stats.disconnects += 1
            self._state = SinkState.DISCONNECTED
            self._stats.last_error = f"connection lost: {reason}"
            self._link.failure("connection lost (%s); reconnecting", reason)
        self._connack_seen = False

    def _drain_acks(self) -> None:
        self._drain_posted = False  # before draining: an ack appended from now on is either
        acks = self._acks           # drained below or posts a new drain
        while acks:
            self._on_ack(*acks.popleft())

    def _on_ack(self, mid: int, reason: ReasonCode) -> None:
        entry = self._pending.pop(mid, None)
        if entry is None and mid in self._untracked:
            self._untracked.discard(mid)
            return
        if entry is None:
            self._stats.late_acks += 1
            return
        entry[0].settle(entry[1], reason)

    def _why_down(self) -> str:
        return self._stats.last_error or str(self._state)
