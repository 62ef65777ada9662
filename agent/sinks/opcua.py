"""OPC UA PLC target plugin (asyncua): config model and factory."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, field_validator

from agent.sinks.plc_common import PlcCommon

ALLOWED_POLICIES = ("None", "Basic256Sha256", "Aes128_Sha256_RsaOaep", "Aes256_Sha256_RsaPss")
DEPRECATED_POLICIES = ("Basic128Rsa15", "Basic256")


class OpcUaPlcConfig(PlcCommon):
    type: Literal["opcua"] = Field(description="OPC UA server (PLC or MES).")
    endpoint: str = Field(description="opc.tcp://host:port/path", pattern=r"^opc\.tcp://")
    security_policy: str = Field("None", description="None, Basic256Sha256, Aes128_Sha256_RsaOaep or Aes256_Sha256_RsaPss (deprecated policies are refused).")
    security_mode: Literal["None", "Sign", "SignAndEncrypt"] = Field("None", description="Message security mode.")
    certificate: str | None = Field(None, description="Client certificate (PEM or DER) path.")
    private_key: str | None = Field(None, description="Client private key (PEM) path.")
    generate_certificate: bool = Field(False, description="Create certificate and key at those paths on first run if missing.")
    application_uri: str = Field("urn:edge-agent:client", description="Application URI written into the generated certificate and sent to the server.")
    server_certificate: str | None = Field(None, description="Trusted server certificate path; None = accept the server's certificate (logged).")
    username: str | None = Field(None, description="User name.")
    password: SecretStr | None = Field(None, description="Password (from secrets).")
    stop_method: str | None = Field(None, description="Node id of a method to call for stop instead of writing stop_request: 'object_node|method_node'.")
    subscribe_ms: int = Field(20, ge=5, le=10000, description="Publishing interval of the trigger/reset subscription.")

    @field_validator("security_policy")
    @classmethod
    def _policy(cls, v: str) -> str:
        if v in DEPRECATED_POLICIES:
            raise ValueError(f"security policy {v} is deprecated and refused; use Basic256Sha256, Aes128_Sha256_RsaOaep or Aes256_Sha256_RsaPss")
        if v not in ALLOWED_POLICIES:
            raise ValueError(f"unknown security policy {v!r}; allowed: {', '.join(ALLOWED_POLICIES)}")
        return v
