"""HTTP (MES REST) sink plugin: config model and factory."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field, SecretStr, model_validator

from agent.config.base import Strict
from agent.config.plugin import Plugin
from agent.protocols.base import SinkSettings
from agent.protocols.outbox_policy import OutboxPolicy
from agent.protocols.tls import TlsConfig

if TYPE_CHECKING:
    pass


class HttpAuth(Strict):
    bearer_token: SecretStr | None = Field(None, description="Authorization: Bearer token.")
    username: str | None = Field(None, description="Basic auth user.")
    password: SecretStr | None = Field(None, description="Basic auth password.")


class HttpSinkConfig(SinkSettings):
    type: Literal["http"] = Field(description="MES REST API: POST JSON batches.")
    url: str = Field(description="Default URL to POST to.", pattern=r"^https?://")
    urls: dict[str, str] = Field(default_factory=dict, description="Per record kind URL override.")
    auth: HttpAuth = Field(default_factory=HttpAuth, description="Credentials (from secrets).")
    tls: TlsConfig = Field(default_factory=TlsConfig, description="TLS verification settings.")
    timeout_ms: int = Field(5000, ge=100, description="Request timeout; a timeout counts as 'unavailable'.")
    batch: bool = Field(True, description="True: one POST per record kind with a JSON array (Idempotency-Key = first..last record id); False: one POST per record with its JSON object (Idempotency-Key = record id).")
    evidence: Literal["off", "multipart", "put"] = Field("off", description="Images of records with evidence: off = the record carries only the reference (URL served by the agent); multipart = each such record is POSTed alone as multipart/form-data (part `record` = the JSON object, part `image` = the full frame, parts `file` = crops and annotated copy); put = each image is PUT to `evidence_url` first, then the record is POSTed as usual. Retried through the outbox like the records.")
    evidence_url: str | None = Field(None, pattern=r"^https?://", description="evidence: put: URL template of each image, with {id} (evidence id) and {name} (file name, e.g. <id>.jpg, <id>.crop0.jpg).")
    outbox: OutboxPolicy = Field(default_factory=OutboxPolicy, description="Outbox bounds for this sink.")

    @model_validator(mode="after")
    def _put_needs_url(self) -> HttpSinkConfig:
        if self.evidence == "put" and not self.evidence_url:
            raise ValueError("evidence: put needs evidence_url (e.g. https://mes/evidence/{name})")
        return self


SINK = Plugin("http", HttpSinkConfig, "agent.protocols.http.factory:build")
