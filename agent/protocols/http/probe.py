"""Commissioning check of an HTTP sink: the endpoint's host accepts a TCP connection (no
request is sent: a probe never creates a record at the MES)."""

from __future__ import annotations

import socket
import time
from urllib.parse import urlparse

from agent.protocols.http.config import HttpSinkConfig
from agent.protocols.probe import ProbeRow


def probe_http(name: str, cfg: HttpSinkConfig, timeout: float) -> ProbeRow:
    u = urlparse(cfg.url)
    port = u.port or (443 if u.scheme == "https" else 80)
    t0 = time.monotonic()
    try:
        with socket.create_connection((u.hostname or "", port), timeout=timeout):
            pass
    except OSError as exc:
        return ProbeRow(name, "connect", f"{u.hostname}:{port}", False, str(exc))
    ms = (time.monotonic() - t0) * 1000
    return ProbeRow(name, "connect", f"{u.hostname}:{port}", True,
                    f"TCP reachable in {ms:.0f} ms (no request sent)")
