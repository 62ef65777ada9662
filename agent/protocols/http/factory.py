"""HTTP sink factory (the registry's `http` sink)."""

from __future__ import annotations

from agent.protocols.base import SinkContext
from agent.protocols.http.config import HttpSinkConfig
from agent.protocols.http.conn import HttpConnections
from agent.protocols.http.sink import HttpSink, auth_headers
from agent.protocols.tls_context import client_ssl_context


def build(name: str, cfg: HttpSinkConfig, ctx: SinkContext) -> HttpSink:
    """Factory: auth headers, TLS context and kept-alive connections (no redirects followed)."""
    where = f"http sink {name!r}"
    ssl_ctx = client_ssl_context(cfg.tls, ctx.base_dir, where)
    conns = HttpConnections(ssl_ctx, cfg.timeout_ms / 1000)
    return HttpSink(name, cfg, conns, auth_headers(cfg.auth, where))
