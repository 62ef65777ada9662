"""Where and how an MQTT client reaches its broker: the fields the MQTT sink, the Sparkplug
sink and the MQTT PLC target share (each adds its own client id, protocol and keep-alive)."""

from __future__ import annotations

from pydantic import Field, SecretStr

from agent.config.base import Strict
from agent.protocols.tls import TlsConfig


class BrokerConnection(Strict):
    host: str = Field(description="Broker host name or address.")
    port: int = Field(1883, ge=1, le=65535, description="Broker port (8883 for TLS).")
    username: str | None = Field(None, description="User name.")
    password: SecretStr | None = Field(None, description="Password (use ${file:...}, ${env:...} or ${cred:...}).")
    tls: TlsConfig | None = Field(None, description="TLS settings; absent = plain TCP.")
