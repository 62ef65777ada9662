"""MQTT sink plugin: config model and factory (paho-mqtt 2.x)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field, SecretStr

from agent.config.base import Strict
from agent.sinks.base import SinkContext
from agent.sinks.outbox_policy import MqttOutboxPolicy
from agent.sinks.tls import TlsConfig

if TYPE_CHECKING:
    from agent.sinks.mqtt_sink import MqttSink


class MqttCommandsConfig(Strict):
    enabled: bool = Field(False, description="Subscribe to operator commands (reset, pause, resume, rebirth).")
    topic: str = Field("{prefix}/{site}/agent/{agent_id}/cmd", description="Topic template for inbound commands.")
    allowed_client_ids: list[str] = Field(default_factory=list, description="Commands must name one of these client ids (empty = any).")
    shared_secret: SecretStr | None = Field(None, description="Commands must carry this secret (use ${file:...} or ${cred:...}).")
    max_age_s: float = Field(30.0, gt=0, description="Commands whose `time` is older than this are rejected (never executed late, e.g. after a reconnect).")


class MqttSinkConfig(Strict):
    type: Literal["mqtt"] = Field(description="MQTT broker (MES, SCADA, dashboards).")
    host: str = Field(description="Broker host name or address.")
    port: int = Field(1883, ge=1, le=65535, description="Broker port (8883 for TLS).")
    protocol: Literal["3.1.1", "5"] = Field("5", description="MQTT protocol version.")
    client_id: str | None = Field(None, description="Client id; default: the agent id.")
    username: str | None = Field(None, description="User name.")
    password: SecretStr | None = Field(None, description="Password (use ${file:...}, ${env:...} or ${cred:...}).")
    tls: TlsConfig | None = Field(None, description="TLS settings; absent = plain TCP.")
    keepalive_s: int = Field(30, ge=5, le=3600, description="MQTT keep-alive.")
    prefix: str = Field("edge", description="First level of every topic.")
    topics: dict[str, str] = Field(default_factory=dict, description="Per record kind topic template override, e.g. {defect: '{prefix}/{site}/{line}/{station}/defect'}.")
    qos: dict[str, Literal[0, 1, 2]] = Field(default_factory=dict, description="Per record kind QoS override (default 1).")
    message_expiry_s: dict[str, int] = Field(default_factory=lambda: {"stop": 60}, description="MQTT 5 message expiry per record kind.")
    status_interval_s: float = Field(10.0, gt=0, description="Period of the retained status and metrics messages.")
    commands: MqttCommandsConfig = Field(default_factory=MqttCommandsConfig, description="Inbound operator commands.")
    session_expiry_s: int = Field(3600, ge=0, description="MQTT 5 session expiry: how long the broker keeps this client's session (persistent session) while it is offline.")
    ack_timeout_s: float = Field(10.0, gt=0, description="A send waits this long for every PUBACK, then counts as 'unavailable' (retried).")
    reconnect_max_s: float = Field(30.0, gt=0, description="Cap of the reconnect backoff.")
    outbox: MqttOutboxPolicy = Field(default_factory=MqttOutboxPolicy, description="Outbox bounds for this sink.")


def build(name: str, cfg: MqttSinkConfig, ctx: SinkContext) -> MqttSink:
    """Factory: topic map, command policy and paho client from the config."""
    from agent.sinks.mqtt_client import build_client
    from agent.sinks.mqtt_commands import CommandPolicy
    from agent.sinks.mqtt_sink import MqttSink
    from agent.sinks.mqtt_topics import TopicMap, check_level

    where = f"mqtt sink {name!r} (broker {cfg.host}:{cfg.port})"
    topics = TopicMap(prefix=cfg.prefix, site=ctx.site, agent_id=ctx.agent_id,
                      templates=dict(cfg.topics), qos_by_kind=dict(cfg.qos),
                      expiry_by_kind=dict(cfg.message_expiry_s),
                      command_template=cfg.commands.topic)
    for level in cfg.prefix.split("/"):
        check_level(level, "prefix level")
    secret = cfg.commands.shared_secret
    policy = CommandPolicy(allowed_client_ids=tuple(cfg.commands.allowed_client_ids),
                           shared_secret=secret.get_secret_value() if secret else None,
                           max_age_s=cfg.commands.max_age_s)
    client = build_client(cfg, ctx, topics.status_topic, where)
    return MqttSink(name, cfg, ctx, client, topics, policy)
