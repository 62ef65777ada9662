"""MQTT sink: records at QoS 1 (send returns after every PUBACK), with a status publisher and
an operator command listener on the same connection.

Three parts, each declared by its Protocol in agent.protocols.base: the record sink here
(`Sink`), the status publisher (`status.MqttStatus`: birth, status, metrics; a
`StatusPublisher`) and the command listener (`listener.CommandListener`; a `CommandSource`).
The broker connection is the `MqttSession` the Sparkplug sink uses too: a connection the
broker refuses for good (credentials, TLS) puts the sink in FAILED with one clear error;
records stay in the outbox because `send` raises SinkUnavailable until a connection is up.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from agent.protocols.base import SinkContext, SinkState, SinkUnavailable, wire_bytes
from agent.protocols.mqtt.acks import BatchAcks
from agent.protocols.mqtt.client import RecordingClient, is_v5, publish_properties
from agent.protocols.mqtt.command_replay import SeenIds
from agent.protocols.mqtt.commands import CommandPolicy, OperatorCommand
from agent.protocols.mqtt.listener import Audit, CommandListener, seen_ids_path
from agent.protocols.mqtt.session import MqttSession, refused_by_broker
from agent.protocols.mqtt.status import MqttStatus
from agent.protocols.mqtt.topics import TopicMap
from agent.types import Record

if TYPE_CHECKING:
    from agent.protocols.mqtt.config import MqttSinkConfig

log = logging.getLogger(__name__)
PAHO_MAX_PAYLOAD = 268_435_455


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
        self.name, self.cfg, self.ctx, self.client = name, cfg, ctx, client
        self.topics, self.policy = topics, policy
        self.session = MqttSession(client, log, cfg.reconnect_max_s)
        self.where = self.session.where
        self.status = MqttStatus(self.session, ctx, topics, cfg.status_interval_s)
        seen = SeenIds(seen_ids_path(ctx.state_dir, name), policy.max_age_s)
        if cfg.commands.enabled:
            seen.load(datetime.now(UTC).timestamp())
        self.commands = CommandListener(self.where, name, policy, topics, seen,
                                        self._publish_result, self.status.online)
        self._published = self._acked = self._rejected = self._unavailable = 0
        self._max_payload = PAHO_MAX_PAYLOAD

    # ---- Sink, StatusPublisher, CommandSource ---------------------------------------

    @property
    def state(self) -> SinkState:
        return self.session.state

    def stats(self) -> MqttSinkStats:
        s = self.session
        return MqttSinkStats(
            published=self._published, acked=self._acked, rejected=self._rejected,
            unavailable=self._unavailable, late_acks=s.late_acks,
            telemetry_sent=self.status.sent, telemetry_dropped=self.status.dropped,
            commands_accepted=self.commands.accepted,
            commands_rejected=sum(self.commands.rejected_by.values()),
            connects=s.connects, disconnects=s.disconnects,
            connect_failures=s.connect_failures, last_error=s.last_error)

    def set_birth(self, birth: dict[str, Any]) -> None:
        self.status.set_birth(birth)

    async def publish_telemetry(self, kind: str, payload: dict[str, Any]) -> bool:
        self.commands.tick()
        return await self.status.publish_telemetry(kind, payload)

    def on_command(self, handler: Callable[[OperatorCommand], None],
                   audit: Audit | None = None) -> None:
        """`handler` gets each accepted command; `audit(event, **fields)` every attempt."""
        self.commands.set_handler(handler, audit)

    async def start(self) -> None:
        self.session.start(self, self.cfg.keepalive_s)
        log.info("%s: connecting as client id %r", self.where, self.client._client_id.decode())

    async def send(self, batch: Sequence[Record]) -> None:
        if self.state is not SinkState.CONNECTED:
            self._unavailable += 1
            raise SinkUnavailable(f"{self.where}: not connected ({self.session.why_down()})")
        acks = self.session.new_acks()
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
            if mids:
                await self.session.await_acks(acks, mids, self.cfg.ack_timeout_s)
        except SinkUnavailable:
            self.session.forget(mids)
            self._unavailable += 1
            raise
        self._acked += acks.acked
        refused.update(acks.refused)
        self._rejected += len(refused)
        refused_by_broker(self.where, refused, acks.busy)

    async def close(self) -> None:
        if self.state is SinkState.CLOSED:
            return
        was_connected = self.state is SinkState.CONNECTED
        self.session.state = SinkState.CLOSED
        if was_connected:
            await self.status.offline()
        await self.session.stop("sink closed")
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
        mid = self.session.publish(topic, data, self.topics.qos(kind), False, props, acks,
                                   record.id)
        self._published += 1
        return mid

    def _publish_result(self, topic: str, body: dict[str, Any]) -> bool:
        return self.status.publish_json(topic, body, qos=1)

    # ---- the session's owner (on the loop) --------------------------------------------

    def session_up(self, properties: Any) -> None:
        size = getattr(properties, "MaximumPacketSize", None) if properties else None
        self._max_payload = min(PAHO_MAX_PAYLOAD, (size or PAHO_MAX_PAYLOAD) - 512)
        if self.cfg.commands.enabled:
            self.client.subscribe(self.topics.command_topic, qos=1)
        self.status.online()

    def session_down(self) -> None:
        pass

    def on_message(self, topic: str, payload: bytes) -> None:
        self.commands.on_message(payload)
