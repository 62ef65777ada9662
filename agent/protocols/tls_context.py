"""Build a client `ssl.SSLContext` from a TlsConfig (shared by the MQTT and HTTP sinks)."""

from __future__ import annotations

import ssl
from pathlib import Path

from agent.protocols.tls import TlsConfig


def _resolve(path: str, base_dir: Path) -> Path:
    p = Path(path)
    return p if p.is_absolute() else base_dir / p


def client_ssl_context(tls: TlsConfig, base_dir: Path, what: str) -> ssl.SSLContext:
    """Verification on by default; CA file or the system store; client cert for mutual TLS.

    Raises ValueError naming `what` and the file when a certificate or key cannot be loaded.
    """
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if tls.ca_file:
        ca = _resolve(tls.ca_file, base_dir)
        try:
            ctx.load_verify_locations(cafile=str(ca))
        except (OSError, ssl.SSLError) as exc:
            raise ValueError(f"{what}: cannot load CA file {ca}: {exc}") from None
    if tls.cert_file or tls.key_file:
        if not tls.cert_file:
            raise ValueError(f"{what}: tls.key_file is set but tls.cert_file is not")
        cert = _resolve(tls.cert_file, base_dir)
        key = _resolve(tls.key_file, base_dir) if tls.key_file else None
        try:
            ctx.load_cert_chain(str(cert), str(key) if key else None)
        except (OSError, ssl.SSLError) as exc:
            raise ValueError(f"{what}: cannot load client certificate {cert}: {exc}") from None
    if not tls.verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx
