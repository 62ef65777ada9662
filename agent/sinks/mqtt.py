"""MQTT sink plugin: config model and factory (paho-mqtt 2.x)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr

from agent.config.base import Strict
from agent.sinks.outbox_policy import OutboxPolicy
from agent.sinks.tls import TlsConfig


class MqttCommandsConfig(Strict):
    enabled: bool = Field(False, description="Subscribe to operator commands (reset, pause, resume, rebirth).")
    topic: str = Field("{prefix}/{site}/agent/{agent_id}/cmd", description="Topic template for inbound commands.")
    allowed_client_ids: list[str] = Field(default_factory=list, description="Commands must name one of these client ids (empty = any).")
    shared_secret: SecretStr | None = Field(None, description="Commands must carry this secret (use ${file:...} or ${cred:...}).")


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
    reconnect_max_s: float = Field(30.0, gt=0, description="Cap of the reconnect backoff.")
    outbox: OutboxPolicy = Field(default_factory=OutboxPolicy, description="Outbox bounds for this sink.")
