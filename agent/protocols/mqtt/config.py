"""MQTT sink plugin: config model and factory (paho-mqtt 2.x)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, SecretStr, model_validator

from agent.config.base import Strict
from agent.config.plugin import Plugin
from agent.protocols.base import SinkSettings
from agent.protocols.mqtt.broker import BrokerConnection
from agent.protocols.mqtt.ha_discovery import HomeAssistantConfig
from agent.protocols.outbox_policy import MqttOutboxPolicy

if TYPE_CHECKING:
    pass


MIN_KEY_CHARS = 16


class MqttCommandsConfig(Strict):
    enabled: bool = Field(False, description="Subscribe to operator commands (reset, pause, resume, rebirth). Needs `key`.")
    topic: str = Field("{prefix}/{site}/agent/{agent_id}/cmd", description="Topic template for inbound commands.")
    allowed_client_ids: list[str] = Field(default_factory=list, description="Commands must name one of these client ids (empty = any).")
    key: SecretStr | None = Field(None, description="HMAC-SHA256 key commands are authenticated with and answers signed with; never sent. A credential: ${cred:...} or ${file:...}, at least 16 characters (e.g. `openssl rand -hex 32`).")
    key_id: str = Field("1", min_length=1, max_length=64, description="Id of `key` (the `kid` of signed messages); change it with the key when rotating.")
    previous_keys: dict[str, SecretStr] = Field(default_factory=dict, description="Key id -> key still accepted on commands during a rotation (answers are signed with `key`).")
    max_age_s: float = Field(30.0, gt=0, description="Commands whose `time` is older than this are rejected (never executed late, e.g. after a reconnect); their ids are remembered (in state_dir) for this long, so a replayed command is refused, also after a restart.")
    max_future_s: float = Field(5.0, ge=0, description="Commands whose `time` is more than this ahead of the agent's clock are rejected (clock skew allowed).")

    @model_validator(mode="before")
    @classmethod
    def _no_shared_secret(cls, data: Any) -> Any:
        if isinstance(data, dict) and "shared_secret" in data:
            raise ValueError("`shared_secret` is gone: it travelled in clear. Set `key` (an HMAC "
                             "key from ${cred:...} or ${file:...}); commands carry a MAC made "
                             "with it (see the README, Operator commands)")
        return data

    @model_validator(mode="after")
    def _check_keys(self) -> MqttCommandsConfig:
        if self.enabled and self.key is None:
            raise ValueError("commands.enabled needs `key` (HMAC key from ${cred:...} or "
                             "${file:...}): unauthenticated operator commands are not accepted")
        keys = {self.key_id: self.key} if self.key is not None else {}
        for kid, key in {**self.previous_keys, **keys}.items():
            if len(key.get_secret_value()) < MIN_KEY_CHARS:
                raise ValueError(f"key {kid!r} is shorter than {MIN_KEY_CHARS} characters "
                                 "(generate one with `openssl rand -hex 32`)")
        if self.key_id in self.previous_keys:
            raise ValueError(f"key id {self.key_id!r} is both the current and a previous key")
        return self


class MqttSinkConfig(BrokerConnection, SinkSettings):
    type: Literal["mqtt"] = Field(description="MQTT broker (MES, SCADA, dashboards).")
    protocol: Literal["3.1.1", "5"] = Field("5", description="MQTT protocol version.")
    client_id: str | None = Field(None, description="Client id; default: the agent id.")
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
    homeassistant: HomeAssistantConfig = Field(default_factory=HomeAssistantConfig, description="Home Assistant MQTT discovery (see the README).")


SINK = Plugin("mqtt", MqttSinkConfig, "agent.protocols.mqtt.factory:build")
