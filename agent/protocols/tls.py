"""TLS settings shared by MQTT, HTTP (and OPC UA certificate paths)."""

from __future__ import annotations

from pydantic import Field

from agent.config.base import Strict


class TlsConfig(Strict):
    ca_file: str | None = Field(None, description="CA bundle to verify the server; None = the system store.")
    cert_file: str | None = Field(None, description="Client certificate (mutual TLS).")
    key_file: str | None = Field(None, description="Client private key (mutual TLS).")
    verify: bool = Field(True, description="Verify the server certificate and host name. Turn off only on a test bench.")
