"""Routes other packages add to the health server (the console): auth, POST bodies, bounds."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from agent.health.metrics import Metrics
from agent.health.routes import Request, Response, Route
from agent.health.server import HealthServer, ServerLimits
from agent.health.status import HealthChecks
from tests.integration.test_health_server import get, request

TOKEN = "t0ken"


@pytest.fixture
async def server() -> AsyncIterator[HealthServer]:
    srv = HealthServer("127.0.0.1:0", HealthChecks(), Metrics(), dict, TOKEN,
                       ServerLimits(max_body_bytes=64, header_timeout_s=0.5))
    seen: list[Request] = []

    def echo(req: Request) -> Response:
        seen.append(req)
        return Response(200, f"{req.method} {req.path} {req.query} {req.body!r}".encode(),
                        "text/plain")

    srv.add_route(Route("/open", echo, public=True))
    srv.add_route(Route("/page", echo, login="/open"))
    srv.add_route(Route("/api/", echo, ("POST",)))
    srv.add_authorizer(lambda headers: headers.get("cookie") == "s=good")
    await srv.start()
    try:
        yield srv
    finally:
        await srv.stop()


def post(path: str, body: bytes, extra: str = "", length: int | None = None) -> bytes:
    n = len(body) if length is None else length
    return (f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {n}\r\n{extra}\r\n").encode() + body


async def test_routes_are_behind_the_token_or_an_authorizer(server: HealthServer) -> None:
    assert (await get(server.port, "/open?x=1")).body == b"GET /open x=1 b''"  # public
    page = await get(server.port, "/page")
    assert page.code == 303 and page.headers["location"] == "/open"  # a browser: to the login
    assert (await get(server.port, "/page", TOKEN)).code == 200
    cookie = await request(server.port, b"GET /page HTTP/1.1\r\nCookie: s=good\r\n\r\n")
    assert cookie is not None and cookie.code == 200
    bad = await request(server.port, b"GET /page HTTP/1.1\r\nCookie: s=bad\r\n\r\n")
    assert bad is not None and bad.code == 303
    # the authorizer also opens the built-in paths (the station page reads /metrics)
    metrics = await request(server.port, b"GET /metrics HTTP/1.1\r\nCookie: s=good\r\n\r\n")
    assert metrics is not None and metrics.code == 200
    assert (await get(server.port, "/metrics")).code == 401


async def test_post_bodies_are_bounded(server: HealthServer) -> None:
    auth = f"Authorization: Bearer {TOKEN}\r\n"
    ok = await request(server.port, post("/api/x", b"a=1&b=2", auth))
    assert ok is not None and ok.code == 200 and ok.body == b"POST /api/x  b'a=1&b=2'"
    unauth = await request(server.port, post("/api/x", b"a=1"))
    assert unauth is not None and unauth.code == 401  # no login page: 401, not a redirect
    big = await request(server.port, post("/api/x", b"x" * 65, auth))
    assert big is not None and big.code == 413
    bad_len = await request(server.port, f"POST /api/x HTTP/1.1\r\n{auth}Content-Length: "
                                         "-1\r\n\r\n".encode())
    assert bad_len is not None and bad_len.code == 400
    get_it = await get(server.port, "/api/x", TOKEN)
    assert get_it.code == 405 and get_it.headers["allow"] == "POST"
    # a body promised but never sent: 408 within the head timeout, not a held connection
    t0 = asyncio.get_running_loop().time()
    slow = await request(server.port, post("/api/x", b"a", auth, length=10))
    assert slow is not None and slow.code == 408
    assert asyncio.get_running_loop().time() - t0 < 2.0


async def test_prefix_routes_read_their_files_off_the_event_loop(server: HealthServer) -> None:
    """An evidence image is read in a worker thread: a slow card never stalls the loop that
    carries the stop path and the heartbeat."""
    import threading

    readers: list[int] = []

    def image(path: str) -> tuple[int, bytes, str]:
        readers.append(threading.get_ident())
        return 200, path.encode(), "image/jpeg"

    server.prefix_routes["/evidence/"] = image
    got = await get(server.port, "/evidence/x.jpg", TOKEN)
    assert got.code == 200 and got.body == b"/evidence/x.jpg"
    assert readers and readers[0] != threading.get_ident()  # not the loop's thread
    assert (await get(server.port, "/evidence/x.jpg")).code == 401  # and behind the token
