"""OPC UA PLC link factory (the registry's `opcua` PLC): the asyncua client with its
security settings, certificates checked or generated."""

from __future__ import annotations

import logging
from pathlib import Path

from asyncua import Client, ua

from agent.backoff import Backoff
from agent.protocols.base import SinkContext
from agent.protocols.link import ConfigurationFailure
from agent.protocols.opcua import certs as opcua_certs
from agent.protocols.opcua.config import OpcUaPlcConfig
from agent.protocols.opcua.link import OpcUaLink

log = logging.getLogger(__name__)


def build(name: str, cfg: OpcUaPlcConfig, ctx: SinkContext) -> OpcUaLink:
    """Factory: an OpcUaLink for this target (not started; certificates made on connect)."""
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
