"""OPC UA PLC target plugin (asyncua): config model and factory."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from agent.sinks.plc_common import PlcCommon

if TYPE_CHECKING:  # the runtime side is imported by the factory, not by the config
    from asyncua import Client

    from agent.sinks.base import SinkContext
    from agent.sinks.opcua_link import OpcUaLink

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


def build(name: str, cfg: OpcUaPlcConfig, ctx: SinkContext) -> OpcUaLink:
    """Factory: an OpcUaLink for this target (not started; certificates made on connect)."""
    from agent.backoff import Backoff
    from agent.sinks.opcua_link import OpcUaLink

    cert = _resolve(ctx.base_dir, cfg.certificate)
    backoff = Backoff(cfg.reconnect_initial_ms / 1000, cfg.reconnect_max_ms / 1000)

    async def factory() -> Client:
        return await make_client(cfg, ctx)

    method = tuple(cfg.stop_method.split("|", 1)) if cfg.stop_method else None
    return OpcUaLink(name, factory, backoff, connect_timeout=max(2.0, cfg.timeout_ms / 1000 * 5),
                     certificate=str(cert) if cert else None, where=f"opcua {cfg.endpoint}",
                     stop_method=method)  # type: ignore[arg-type]


async def make_client(cfg: OpcUaPlcConfig, ctx: SinkContext) -> Client:
    """A fresh, configured, unconnected asyncua Client."""
    from asyncua import Client, ua

    from agent.control.link_base import ConfigurationFailure
    from agent.sinks import opcua_certs

    client = Client(cfg.endpoint, timeout=cfg.timeout_ms / 1000)
    client.application_uri = cfg.application_uri
    if cfg.username:
        client.set_user(cfg.username)
    if cfg.password is not None:
        client.set_password(cfg.password.get_secret_value())
    if cfg.security_policy == "None":
        return client
    cert, key = _resolve(ctx.base_dir, cfg.certificate), _resolve(ctx.base_dir, cfg.private_key)
    assert cert is not None and key is not None
    if cfg.generate_certificate:
        await opcua_certs.ensure_client_certificate(cert, key, cfg.application_uri)
    for what, path in (("certificate", cert), ("private_key", key)):
        if not path.is_file():
            raise ConfigurationFailure(f"OPC UA client {what} {path} does not exist (set generate_certificate: true to create it)")
    mode = getattr(ua.MessageSecurityMode, cfg.security_mode)
    policy = opcua_certs.policy_class(cfg.security_policy)
    server_cert = _resolve(ctx.base_dir, cfg.server_certificate)
    if server_cert is None:
        log.warning("opcua %s: no server_certificate configured: accepting whatever certificate "
                    "the server presents", cfg.endpoint)
    else:
        trusted = opcua_certs.load_cert(server_cert)
        endpoints = await client.connect_and_get_server_endpoints()
        opcua_certs.check_server_certificate(endpoints, policy.URI, mode, trusted, server_cert)
        client.certificate_validator = opcua_certs.trust_validator(trusted, server_cert)
    await client.set_security(
        policy, opcua_certs.read_props(cert), opcua_certs.read_props(key), mode=mode,
        server_certificate=opcua_certs.read_props(server_cert) if server_cert else None)
    return client


def _resolve(base: Path, path: str | None) -> Path | None:
    if path is None:
        return None
    p = Path(path)
    return p if p.is_absolute() else base / p
