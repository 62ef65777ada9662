"""Health HTTP server: /healthz, /metrics, /status on asyncio streams, bounded.

A deliberately small HTTP/1.x server (GET and HEAD, one request per connection) so
that a request flood, slow clients (slowloris) or garbage can neither deny an
authorised monitor nor grow without bound or block the event loop for long:

- a connection holds no slot until its request head is complete: heads still arriving
  are *pending*, at most `max_pending` of them; a new connection over the bound, or over
  `max_pending_per_client` for its client address, evicts the oldest *slow* pending one
  (it sent part of a head, or nothing for a while), closed unanswered and counted. A
  client that sends its request at once (every real monitor) is never slow, so a flood
  of slow connections cannot keep it out, even from the same address; each head must be
  complete within `header_timeout_s` (else 408);
- the bearer token is checked as soon as the head is in: without it, 401 at once;
- at most `max_connections` replies are being written at once (503 beyond), each within
  `write_timeout_s`;
- a request head larger than `max_request_bytes` gets 431, a malformed one 400, an
  unknown path 404, another method 405;
- /metrics is rendered at most once per `metrics_cache_s` (a few ms of CPU on the event
  loop each time): rapid or concurrent scrapes share the last rendering.

Other packages add paths with `add_route` (the web console): a route may take POST (a
form body of at most `max_body_bytes`, read within the same `header_timeout_s`), may be
public (the login page), or send a browser to a login page instead of a bare 401; an
`add_authorizer` hook lets a request in on something other than the bearer header (the
console's session cookie). Handlers are synchronous and must not block.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, SupportsIndex

from prometheus_client import CONTENT_TYPE_LATEST

from agent.health.metrics import Metrics
from agent.health.routes import REASONS as _REASONS
from agent.health.routes import FromDisk as _FromDisk
from agent.health.routes import HttpError as _HttpError
from agent.health.routes import Request, Route
from agent.health.routes import Response as _Response
from agent.health.routes import error_response as _error
from agent.health.routes import json_response as _json
from agent.health.routes import parse_head as _parse_head
from agent.health.status import HealthChecks

log = logging.getLogger(__name__)

_BUILTIN = ("/healthz", "/metrics", "/status")


@dataclass(frozen=True, slots=True)
class ServerLimits:
    max_connections: int = 16  # replies being written at once; beyond: 503
    max_pending: int = 128  # connections whose request head is still arriving
    max_pending_per_client: int = 32  # the same, per client address
    max_request_bytes: int = 8192
    max_body_bytes: int = 4096  # POST bodies (registered routes only)
    header_timeout_s: float = 2.0  # accept -> complete request head
    write_timeout_s: float = 2.0  # a reply must be taken within this
    metrics_cache_s: float = 0.5
    backlog: int = 512  # listen() queue: a connection flood must not drop a monitor's SYN


@dataclass(frozen=True, slots=True)
class ServerStats:
    responses: dict[int, int]  # by status code
    busy_rejected: int  # answered 503 because max_connections replies were being written
    dropped: int  # pending connections evicted (closed unanswered) for newer ones
    active: int  # connections open now (pending or being answered)
    pending: int = 0  # connections whose request head is still arriving


SLOW_AFTER_S = 0.25  # a pending connection that sent nothing for this long may be evicted


class _HeadReader(asyncio.StreamReader):
    """A StreamReader that knows whether data came in and whether the head is complete."""

    def __init__(self, limit: int, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(limit=limit, loop=loop)
        self.fed = self.complete = False
        self._tail = b""

    def feed_data(self, data: Iterable[SupportsIndex]) -> None:
        data = bytes(data)
        super().feed_data(data)
        self.fed = True
        self.complete = self.complete or b"\r\n\r\n" in self._tail + data
        self._tail = (self._tail + data)[-3:]

    def slow(self, old: bool) -> bool:
        """Evictable: part of a head came in (not all of it), or nothing for long (`old`)."""
        return not self.complete and (self.fed or old)


@dataclass(slots=True)
class _Pending:
    client: str
    reader: _HeadReader
    since: float


def parse_listen(listen: str) -> tuple[str, int]:
    """'host:port' or '[v6]:port' -> (host, port)."""
    host, sep, port = listen.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"health listen address {listen!r} is not host:port")
    return host.strip("[]"), int(port)


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
        self._pending: dict[asyncio.StreamWriter, _Pending] = {}  # oldest first
        self._per_client: Counter[str] = Counter()
        self._writing = 0
        self._responses: Counter[int] = Counter()
        self._busy = self._dropped = 0
        self._metrics_cache: tuple[float, bytes] | None = None  # (monotonic time, text)
        # path prefix -> handler(path) -> (status, body, content type), e.g. /evidence/
        self.prefix_routes: dict[str, Callable[[str], tuple[int, bytes, str]]] = {}
        self.routes: list[Route] = []
        self.authorizers: list[Callable[[dict[str, str]], bool]] = []

    def add_route(self, route: Route) -> None:
        """Serve `route` too (checked after /healthz, /metrics, /status)."""
        self.routes.append(route)

    def add_authorizer(self, fn: Callable[[dict[str, str]], bool]) -> None:
        """A request whose headers `fn` accepts is authorised without the bearer header."""
        self.authorizers.append(fn)

    @property
    def host(self) -> str:
        return self._host

    @property
    def port(self) -> int:
        """The bound port (the real one when listening on port 0)."""
        if self._server is None or not self._server.sockets:
            return self._port
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        loop = asyncio.get_running_loop()

        def protocol() -> asyncio.StreamReaderProtocol:
            reader = _HeadReader(self.limits.max_request_bytes, loop)
            return asyncio.StreamReaderProtocol(reader, self._on_connect, loop=loop)

        self._server = await loop.create_server(protocol, self._host, self._port,
                                                backlog=self.limits.backlog)
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
        return ServerStats(dict(self._responses), self._busy, self._dropped, len(self._writers),
                           len(self._pending))

    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        self._writers.add(writer)
        try:
            await self._serve(reader, writer)
        except Exception:
            log.exception("health server: connection handler failed")
        finally:
            self._unpend(writer)
            self._writers.discard(writer)
            if not writer.is_closing():
                writer.transport.abort()
            if task is not None:
                self._tasks.discard(task)

    # ------------------------------------------------------------ pending heads
    def _admit(self, reader: _HeadReader, writer: asyncio.StreamWriter) -> bool:
        """Count the new connection as pending. Over the client's bound, evict that client's
        oldest slow one; over the total bound, the oldest slow one of the client holding the
        most, else of anyone; refuse this one (False) only when none is slow yet."""
        peer = writer.get_extra_info("peername")
        client = str(peer[0]) if isinstance(peer, tuple) and peer else "?"
        lim = self.limits
        if self._per_client[client] >= lim.max_pending_per_client:
            self._evict_oldest(client)
        if len(self._pending) >= lim.max_pending:
            heaviest = max(self._per_client, key=self._per_client.__getitem__)
            if not self._evict_oldest(heaviest) and not self._evict_oldest(None):
                return False
        self._pending[writer] = _Pending(client, reader, time.monotonic())
        self._per_client[client] += 1
        return True

    def _evict_oldest(self, client: str | None) -> bool:
        """Close the oldest pending connection (of `client`, or of anyone) that is slow: it
        sent part of a head, or nothing for SLOW_AFTER_S. One not read from yet (accepted in
        the same burst as a flood) or whose head is complete is never chosen."""
        young = time.monotonic() - SLOW_AFTER_S
        for writer, p in self._pending.items():
            if client in (None, p.client) and p.reader.slow(p.since < young):
                self._unpend(writer)
                self._dropped += 1
                writer.transport.abort()
                return True
        return False

    def _unpend(self, writer: asyncio.StreamWriter) -> None:
        p = self._pending.pop(writer, None)
        if p is not None:
            self._per_client[p.client] -= 1
            if self._per_client[p.client] <= 0:
                del self._per_client[p.client]

    async def _read_head(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes:
        assert isinstance(reader, _HeadReader)
        if not self._admit(reader, writer):
            self._dropped += 1
            raise ConnectionAbortedError("too many pending connections")
        try:
            return await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"),
                                          self.limits.header_timeout_s)
        finally:
            self._unpend(writer)

    # ------------------------------------------------------------ requests
    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head_only = False
        try:
            method, target, headers = _parse_head(await self._read_head(reader, writer))
            head_only = method == "HEAD"
            path, _, query = target.partition("?")
            route = next((r for r in self.routes if r.matches(path)), None)
            if route is not None and path not in _BUILTIN:
                body = await self._read_body(reader, method, headers)
                peer = writer.get_extra_info("peername")
                client = str(peer[0]) if isinstance(peer, tuple) and peer else "?"
                response = self._call(route, Request(method, path, query, headers, body, client))
            else:
                routed = self._route(method, path, headers)
                response = (await asyncio.to_thread(routed.read)  # files (evidence): off the loop
                            if isinstance(routed, _FromDisk) else routed)
        except _HttpError as exc:
            response = _error(exc.code, exc.detail)
        except TimeoutError:
            response = _error(408, f"no complete request within {self.limits.header_timeout_s} s")
        except asyncio.LimitOverrunError:
            response = _error(431, f"request head over {self.limits.max_request_bytes} bytes")
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.transport.abort()
            return  # the client went away (or was evicted) before its request: nothing to answer
        if self._writing >= self.limits.max_connections:
            self._busy += 1
            response = _error(503, "too many health replies being written")
        await self._reply(writer, response, head_only)

    async def _read_body(self, reader: asyncio.StreamReader, method: str,
                         headers: dict[str, str]) -> bytes:
        if method != "POST":
            return b""
        length = headers.get("content-length", "0")
        if not length.isdigit():
            raise _HttpError(400, "POST needs a Content-Length")
        if int(length) > self.limits.max_body_bytes:
            raise _HttpError(413, f"body over {self.limits.max_body_bytes} bytes")
        return await asyncio.wait_for(reader.readexactly(int(length)),
                                      self.limits.header_timeout_s)

    def _call(self, route: Route, req: Request) -> _Response:
        if req.method not in route.methods:
            allow = ", ".join(route.methods)
            return _error(405, f"method {req.method} not allowed", (("Allow", allow),))
        if not route.public and not self._allowed(req.headers):
            if route.login is not None:
                return _Response(303, b"", "text/plain", (("Location", route.login),))
            return _error(401, "bearer token or console login required",
                          (("WWW-Authenticate", 'Bearer realm="edge-agent"'),))
        try:
            return route.handler(req)
        except Exception as exc:
            log.exception("health server: %s failed", req.path)
            return _error(500, f"{req.path} failed: {type(exc).__name__}")

    def _allowed(self, headers: dict[str, str]) -> bool:
        return self._authorized(headers.get("authorization", "")) or any(
            fn(headers) for fn in self.authorizers)

    def _route(self, method: str, path: str, headers: dict[str, str]) -> _Response | _FromDisk:
        if method not in ("GET", "HEAD"):
            return _error(405, f"method {method} not allowed", (("Allow", "GET, HEAD"),))
        if not self._allowed(headers):
            return _error(401, "bearer token required",
                          (("WWW-Authenticate", 'Bearer realm="edge-agent"'),))
        handler = {"/healthz": self._healthz, "/metrics": self._metrics_page,
                   "/status": self._status_page}.get(path)
        if handler is None and (from_disk := self._prefixed(path)) is not None:
            return from_disk
        if handler is None:
            return _error(404, f"unknown path {path!r}; try /healthz, /metrics, /status")
        try:
            return handler()
        except Exception as exc:
            log.exception("health server: %s failed", path)
            return _error(500, f"{path} failed: {type(exc).__name__}: {exc}")

    def _prefixed(self, path: str) -> _FromDisk | None:
        for prefix, fn in self.prefix_routes.items():
            if path.startswith(prefix):
                return _FromDisk(path, fn)
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
        except ConnectionError:
            writer.transport.abort()
            return
        if writer.transport.get_write_buffer_size() == 0:  # all in the socket: nothing to wait
            writer.close()
            return
        self._writing += 1
        try:
            await asyncio.wait_for(writer.drain(), self.limits.write_timeout_s)
        except (TimeoutError, ConnectionError):
            writer.transport.abort()
            return
        finally:
            self._writing -= 1
        writer.close()
