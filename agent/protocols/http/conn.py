"""Kept-alive HTTP/1.1 connections for the HTTP sink, one per origin.

urllib sends `Connection: close`, so every POST paid a new TCP (and TLS) handshake:
~6 ms per POST on loopback against ~0.5 ms on a kept connection. Here each origin
(scheme, host, port) keeps one `http.client` connection, used by one request at a
time (the forwarder sends one batch at a time; a lock keeps it so for any caller).
Redirects are never followed and no proxy from the environment is used.

A kept connection the server closed while idle fails on its next use before any
answer (`RemoteDisconnected`, reset, broken pipe): that request is sent once more on
a fresh connection. Records carry an `Idempotency-Key`, and delivery is
at-least-once anyway. Any other failure closes the connection and is raised.
"""

from __future__ import annotations

import http.client
import ssl
import threading
from urllib.parse import SplitResult, urlsplit

STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)
Origin = tuple[str, str, int]


class HttpConnections:
    def __init__(self, ssl_ctx: ssl.SSLContext, timeout_s: float) -> None:
        self.ssl_ctx = ssl_ctx
        self.timeout_s = timeout_s
        self._conns: dict[Origin, http.client.HTTPConnection] = {}
        self._lock = threading.Lock()
        self.opened = 0  # connections opened so far (kept-alive ones are reused)

    def post(self, url: str, body: bytes, headers: dict[str, str],
             method: str = "POST") -> tuple[int, bytes]:
        """Blocking POST (or `method`): (status, body). Raises OSError / HTTPException."""
        parts = urlsplit(url)
        origin = (parts.scheme, parts.hostname or "", parts.port or _default_port(parts))
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        with self._lock:
            conn = self._conns.get(origin)
            if conn is not None:
                try:
                    return self._exchange(origin, conn, target, body, headers, method)
                except STALE:
                    pass  # closed by the server while idle: once more on a fresh connection
            return self._exchange(origin, self._open(origin, parts), target, body, headers,
                                  method)

    def close(self) -> None:
        with self._lock:
            for conn in self._conns.values():
                conn.close()
            self._conns.clear()

    def _open(self, origin: Origin, parts: SplitResult) -> http.client.HTTPConnection:
        self.opened += 1
        if parts.scheme == "https":
            conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                origin[1], origin[2], timeout=self.timeout_s, context=self.ssl_ctx)
        else:
            conn = http.client.HTTPConnection(origin[1], origin[2], timeout=self.timeout_s)
        self._conns[origin] = conn
        return conn

    def _exchange(self, origin: Origin, conn: http.client.HTTPConnection, target: str,
                  body: bytes, headers: dict[str, str], method: str) -> tuple[int, bytes]:
        try:
            conn.request(method, target, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()  # read to the end: the connection is reusable only then
        except BaseException:
            self._drop(origin)
            raise
        if resp.will_close:
            self._drop(origin)
        return resp.status, data

    def _drop(self, origin: Origin) -> None:
        conn = self._conns.pop(origin, None)
        if conn is not None:
            conn.close()


def _default_port(parts: SplitResult) -> int:
    return 443 if parts.scheme == "https" else 80
