"""The MQTT sink's status publisher: the agent's retained status on
`{prefix}/{site}/agent/{agent_id}/status` (online with the birth fields at every connect,
offline at a clean close, offline as the Last Will), and the health loop's status and
metrics. What it publishes is not awaited: a status is worth sending only now."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any, Literal

from agent import __version__
from agent.decision.payloads import StatusPayload
from agent.protocols.base import SinkContext, SinkState, SinkUnavailable, encode_json
from agent.protocols.mqtt.client import Will, is_v5, publish_properties
from agent.protocols.mqtt.session import MqttSession
from agent.protocols.mqtt.topics import TopicMap

log = logging.getLogger(__name__)
STATUS_SCHEMA_VERSION = 1
_STATUS_HEAD = {"schema_version", "time", "site", "agent_id", "state", "version"}


def status_payload(ctx: SinkContext, state: Literal["online", "offline"] | None,
                   ) -> dict[str, Any]:
    """Common fields of agent-level telemetry (agent.decision.payloads StatusPayload /
    MetricsPayload); with `state` ("online" / "offline") a StatusPayload's own fields
    (the Last Will, the status at connect: the health loop's complete one follows)."""
    now = datetime.now(UTC)
    if state is None:
        return {"schema_version": STATUS_SCHEMA_VERSION, "time": now.isoformat(),
                "site": ctx.site, "agent_id": ctx.agent_id}
    status = StatusPayload(time=now, site=ctx.site, agent_id=ctx.agent_id, state=state,
                           version=__version__)
    return status.model_dump(mode="json", include=_STATUS_HEAD)


def status_will(ctx: SinkContext, status_topic: str) -> Will:
    """Last Will = retained offline status (made again before every connect: a fresh time)."""
    body = json.dumps(status_payload(ctx, "offline")).encode()
    return Will(status_topic, body, qos=1, retain=True, json=True)


class MqttStatus:
    """Birth, status and metrics of one MQTT sink (a `StatusPublisher`)."""

    def __init__(self, session: MqttSession, ctx: SinkContext, topics: TopicMap,
                 status_interval_s: float) -> None:
        self.session, self.ctx, self.topics = session, ctx, topics
        self.expiry_s = max(1, int(status_interval_s * 3))
        self.sent = 0
        self.dropped = 0  # status/metrics not sent because disconnected
        self._birth: dict[str, Any] = {}

    def set_birth(self, birth: dict[str, Any]) -> None:
        self._birth = dict(birth)
        if self.session.state is SinkState.CONNECTED:
            self.online()

    async def publish_telemetry(self, kind: str, payload: dict[str, Any]) -> bool:
        if self.session.state is not SinkState.CONNECTED:
            self.dropped += 1
            return False
        if kind == "status":
            body = {**status_payload(self.ctx, "online"), **self._birth, **payload}
            ok = self.publish_json(self.topics.status_topic, body, qos=1, retain=True)
        else:
            body = {**status_payload(self.ctx, None), **payload}
            ok = self.publish_json(self.topics.agent_topic(kind), body, qos=0,
                                   expiry=self.expiry_s)
        if ok:
            self.sent += 1
        else:
            self.dropped += 1
        return ok

    def online(self) -> None:
        """The retained online status with the birth fields (at every connect)."""
        body = {**status_payload(self.ctx, "online"), **self._birth}
        self.publish_json(self.topics.status_topic, body, qos=1, retain=True)

    async def offline(self) -> None:
        """The retained offline status, at a clean close (its PUBACK awaited a little)."""
        props = publish_properties(None) if is_v5(self.session.client) else None
        await self.session.publish_last("offline status", self.topics.status_topic,
                                        encode_json(status_payload(self.ctx, "offline")),
                                        retain=True, properties=props)

    def publish_json(self, topic: str, body: dict[str, Any], qos: int, retain: bool = False,
                     expiry: int | None = None) -> bool:
        """Publish a JSON object, its PUBACK not awaited; False when it could not go out."""
        props = publish_properties(expiry) if is_v5(self.session.client) else None
        try:
            self.session.publish(topic, encode_json(body), qos, retain, props)
        except ValueError as exc:
            log.warning("%s: cannot publish to %s: %s", self.session.where, topic, exc)
            return False
        except SinkUnavailable:  # disconnected meanwhile: the next status will do
            return False
        return True
