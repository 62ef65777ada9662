"""OPC UA PLC target plugin (asyncua): config model and factory."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from agent.config.plugin import Plugin
from agent.protocols.plc_common import PlcCommon

if TYPE_CHECKING:  # the runtime side is imported by the factory, not by the config

    pass

log = logging.getLogger(__name__)
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

    @model_validator(mode="after")
    def _security_settings(self) -> OpcUaPlcConfig:
        secure = self.security_policy != "None"
        if secure != (self.security_mode != "None"):
            raise ValueError("security_policy and security_mode must both be None or both be set")
        if secure and not (self.certificate and self.private_key):
            raise ValueError(f"security policy {self.security_policy} needs `certificate` and `private_key` (set generate_certificate: true to create them)")
        if self.stop_method is not None and self.stop_method.count("|") != 1:
            raise ValueError("stop_method must be 'object_node|method_node'")
        return self


PLC = Plugin("opcua", OpcUaPlcConfig, "agent.protocols.opcua.factory:build")
