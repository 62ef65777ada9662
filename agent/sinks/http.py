"""HTTP (MES REST) sink plugin: config model and factory."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr

from agent.config.base import Strict
from agent.sinks.outbox_policy import OutboxPolicy
from agent.sinks.tls import TlsConfig


class HttpAuth(Strict):
    bearer_token: SecretStr | None = Field(None, description="Authorization: Bearer token.")
    username: str | None = Field(None, description="Basic auth user.")
    password: SecretStr | None = Field(None, description="Basic auth password.")


class HttpSinkConfig(Strict):
    type: Literal["http"] = Field(description="MES REST API: POST JSON batches.")
    url: str = Field(description="Default URL to POST to.", pattern=r"^https?://")
    urls: dict[str, str] = Field(default_factory=dict, description="Per record kind URL override.")
    auth: HttpAuth = Field(default_factory=HttpAuth, description="Credentials (from secrets).")
    tls: TlsConfig = Field(default_factory=TlsConfig, description="TLS verification settings.")
    timeout_ms: int = Field(5000, ge=100, description="Request timeout; a timeout counts as 'unavailable'.")
    outbox: OutboxPolicy = Field(default_factory=OutboxPolicy, description="Outbox bounds for this sink.")
