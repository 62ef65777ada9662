"""Health HTTP server: /healthz, /metrics, /status on asyncio streams, bounded.

A deliberately small HTTP/1.x server (GET and HEAD, one request per connection) so
that a request flood, a slow client or garbage cannot grow without bound or block
the event loop for long:

- at most `max_connections` requests are served at once; up to `max_overflow` more
  connections get an immediate 503, anything beyond that is closed unanswered (counted);
- a request head larger than `max_request_bytes` gets 431, a malformed one 400, an
  unknown path 404, another method 405, a client slower than `request_timeout_s` 408;
- with a bearer token configured every path needs `Authorization: Bearer <token>` (401);
- /metrics is rendered at most once per `metrics_cache_s` (a few ms of CPU on the event
  loop each time): rapid or concurrent scrapes share the last rendering.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST

from agent.health.metrics import GaugeSample, Metrics
from agent.health.status import HealthChecks

log = logging.getLogger(__name__)

_REASONS = {
    200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found",
    405: "Method Not Allowed", 408: "Request Timeout", 431: "Request Header Fields Too Large",
    500: "Internal Server Error", 503: "Service Unavailable",
}
_JSON = "application/json"


@dataclass(frozen=True, slots=True)
class ServerLimits:
    max_connections: int = 16
    max_overflow: int = 64  # extra connections answered 503 at once; beyond: closed unanswered
    max_request_bytes: int = 8192
    request_timeout_s: float = 5.0
    metrics_cache_s: float = 0.5


@dataclass(frozen=True, slots=True)
class ServerStats:
    responses: dict[int, int]  # by status code
    busy_rejected: int  # answered 503 because max_connections were busy
    dropped: int  # closed unanswered beyond max_overflow
    active: int


@dataclass(frozen=True, slots=True)
class _Response:
    code: int
    body: bytes
    content_type: str = _JSON
    headers: tuple[tuple[str, str], ...] = ()


class _HttpError(Exception):
    def __init__(self, code: int, detail: str) -> None:
        super().__init__(detail)
        self.code, self.detail = code, detail


def parse_listen(listen: str) -> tuple[str, int]:
    """'host:port' or '[v6]:port' -> (host, port)."""
    host, sep, port = listen.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"health listen address {listen!r} is not host:port")
    return host.strip("[]"), int(port)


def _json(code: int, obj: Any, headers: tuple[tuple[str, str], ...] = ()) -> _Response:
    body = json.dumps(obj, default=str, sort_keys=True).encode() + b"\n"
    return _Response(code, body, _JSON, headers)


def _error(code: int, detail: str, headers: tuple[tuple[str, str], ...] = ()) -> _Response:
    return _json(code, {"error": _REASONS.get(code, "error"), "detail": detail}, headers)


def _parse_head(head: bytes) -> tuple[str, str, dict[str, str]]:
    """Request head -> (method, path, headers with lower-case names); _HttpError(400)."""
    try:
        lines = head.decode("ascii").split("\r\n")
    except UnicodeDecodeError:
        raise _HttpError(400, "request head is not ASCII") from None
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[0].isalpha() or not parts[0].isupper():
        raise _HttpError(400, "malformed request line")
    method, target, version = parts
    if not version.startswith("HTTP/1.") or not target.startswith("/"):
        raise _HttpError(400, "malformed request line")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise _HttpError(400, "malformed header line")
        headers[name.lower()] = value.strip()
    return method, target.split("?", 1)[0], headers


class HealthServer:
    """Serves /healthz (200, or 503 with the failing checks), /metrics and /status."""

    def __init__(
        self,
        listen: str,
        checks: HealthChecks,
        metrics: Metrics,
        status: Callable[[], dict[str, Any]],
        token: str | None,
        limits: ServerLimits | None = None,
    ) -> None:
        self._host, self._port = parse_listen(listen)
        self._checks, self._metrics, self._status = checks, metrics, status
        self._token = token.encode() if token else None
        self.limits = limits or ServerLimits()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._active = self._overflow = 0
        self._responses: Counter[int] = Counter()
        self._busy = self._dropped = 0
        self._metrics_cache: tuple[float, bytes] | None = None  # (monotonic time, text)
        # path prefix -> handler(path) -> (status, body, content type), e.g. /evidence/
        self.prefix_routes: dict[str, Callable[[str], tuple[int, bytes, str]]] = {}

    @property
    def port(self) -> int:
        """The bound port (the real one when listening on port 0)."""
        if self._server is None or not self._server.sockets:
            return self._port
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._on_connect, self._host, self._port, limit=self.limits.max_request_bytes)
        log.info("health server listening on %s:%d", self._host, self.port)

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        for writer in list(self._writers):  # the handlers see EOF and return
            writer.transport.abort()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await server.wait_closed()

    def stats(self) -> ServerStats:
        return ServerStats(dict(self._responses), self._busy, self._dropped, self._active)

    def gauge_samples(self) -> list[GaugeSample]:
        s = self.stats()
        out = [GaugeSample("edge_agent_health_responses_total", {"code": str(code)}, n,
                           "Health server responses by status code", "counter")
               for code, n in sorted(s.responses.items())]
        out.append(GaugeSample("edge_agent_health_dropped_total", {}, s.dropped,
                               "Health connections closed unanswered (flood)", "counter"))
        return out

    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        self._writers.add(writer)
        try:
            await self._dispatch(reader, writer)
        except Exception:
            log.exception("health server: connection handler failed")
        finally:
            self._writers.discard(writer)
            if not writer.is_closing():
                writer.transport.abort()
            if task is not None:
                self._tasks.discard(task)

    async def _dispatch(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        lim = self.limits
        if self._active >= lim.max_connections:
            if self._overflow >= lim.max_overflow:
                self._dropped += 1
                writer.transport.abort()
                return
            self._busy += 1
            self._overflow += 1
            try:
                await self._serve_busy(reader, writer)
            finally:
                self._overflow -= 1
            return
        self._active += 1
        try:
            await self._serve(reader, writer)
        finally:
            self._active -= 1

    async def _serve_busy(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # Read the head briefly so that closing does not reset the connection under the reply.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 0.25)
        await self._reply(writer, _error(503, "too many concurrent health requests"),
                          head_only=False)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head_only = False
        try:
            head = await asyncio.wait_for(
                reader.readuntil(b"\r\n\r\n"), self.limits.request_timeout_s)
            method, path, headers = _parse_head(head)
            head_only = method == "HEAD"
            response = self._route(method, path, headers)
        except _HttpError as exc:
            response = _error(exc.code, exc.detail)
        except TimeoutError:
            response = _error(408, f"no complete request within {self.limits.request_timeout_s} s")
        except asyncio.LimitOverrunError:
            response = _error(431, f"request head over {self.limits.max_request_bytes} bytes")
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()
            return  # the client went away before sending a request: nothing to answer
        await self._reply(writer, response, head_only)

    def _route(self, method: str, path: str, headers: dict[str, str]) -> _Response:
        if method not in ("GET", "HEAD"):
            return _error(405, f"method {method} not allowed", (("Allow", "GET, HEAD"),))
        if not self._authorized(headers.get("authorization", "")):
            return _error(401, "bearer token required",
                          (("WWW-Authenticate", 'Bearer realm="edge-agent"'),))
        handler = {"/healthz": self._healthz, "/metrics": self._metrics_page,
                   "/status": self._status_page}.get(path) or self._prefixed(path)
        if handler is None:
            return _error(404, f"unknown path {path!r}; try /healthz, /metrics, /status")
        try:
            return handler()
        except Exception as exc:
            log.exception("health server: %s failed", path)
            return _error(500, f"{path} failed: {type(exc).__name__}: {exc}")

    def _prefixed(self, path: str) -> Callable[[], _Response] | None:
        for prefix, fn in self.prefix_routes.items():
            if path.startswith(prefix):
                return lambda: _Response(*fn(path))
        return None

    def _authorized(self, authorization: str) -> bool:
        if self._token is None:
            return True
        scheme, _, credential = authorization.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(
            credential.strip().encode(), self._token)

    def _healthz(self) -> _Response:
        healthy, failing = self._checks.evaluate()
        if healthy:
            return _json(200, {"healthy": True})
        return _json(503, {"healthy": False, "failing": failing})

    def _metrics_page(self) -> _Response:
        now = time.monotonic()
        cached = self._metrics_cache
        if cached is None or now - cached[0] >= self.limits.metrics_cache_s:
            cached = self._metrics_cache = (now, self._metrics.render())
        return _Response(200, cached[1], CONTENT_TYPE_LATEST)

    def _status_page(self) -> _Response:
        return _json(200, self._status())

    async def _reply(self, writer: asyncio.StreamWriter, r: _Response, head_only: bool) -> None:
        self._responses[r.code] += 1
        lines = [f"HTTP/1.1 {r.code} {_REASONS.get(r.code, 'Error')}",
                 f"Content-Type: {r.content_type}", f"Content-Length: {len(r.body)}",
                 "Connection: close", "Cache-Control: no-store"]
        lines += [f"{k}: {v}" for k, v in r.headers]
        data = ("\r\n".join(lines) + "\r\n\r\n").encode() + (b"" if head_only else r.body)
        try:
            writer.write(data)
            await asyncio.wait_for(writer.drain(), self.limits.request_timeout_s)
        except (TimeoutError, ConnectionError):
            writer.transport.abort()
            return
        finally:
            writer.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(writer.wait_closed(), 1.0)
