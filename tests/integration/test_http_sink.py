"""HTTP sink against a real http.server on a free port that fails on demand (and HTTPS with
the test CA): 2xx delivered, 5xx/timeouts/refused unavailable, 4xx rejected with the body."""

from __future__ import annotations

import base64
import json
import queue
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

import agent.config  # noqa: F401  (import before any plugin module: circular import)
from agent.protocols.base import SinkContext, SinkRejected, SinkState, SinkUnavailable
from agent.protocols.http.config import HttpSinkConfig
from agent.protocols.http.factory import build
from agent.protocols.http.sink import HttpSink
from tests.support.mqtt_peer import AGENT, SITE, defect_record, stop_record, validate
from tests.support.ports import free_port
from tests.support.tls import Pki, make_pki


@dataclass
class Seen:
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class MesServer:
    """Answers queued (status, body, delay_s) replies in order, then 200."""

    port: int
    replies: queue.Queue[tuple[int, str, float]] = field(default_factory=queue.Queue)
    seen: list[Seen] = field(default_factory=list)
    scheme: str = "http"

    def url(self, path: str = "/mes/records") -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}{path}"

    def fail(self, status: int, body: str = "", delay_s: float = 0.0, times: int = 1) -> None:
        for _ in range(times):
            self.replies.put((status, body, delay_s))


def _handler(mes: MesServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            mes.seen.append(Seen(self.path, dict(self.headers), json.loads(raw)))
            try:
                status, body, delay = mes.replies.get_nowait()
            except queue.Empty:
                status, body, delay = 201, '{"ok": true}', 0.0
            time.sleep(delay)
            data = body.encode()
            self.send_response(status)
            if 300 <= status < 400:
                self.send_header("Location", "/elsewhere")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


def _serve(mes: MesServer, ctx: ssl.SSLContext | None = None) -> Iterator[MesServer]:
    server = ThreadingHTTPServer(("127.0.0.1", mes.port), _handler(mes))
    server.daemon_threads = True
    if ctx is not None:
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
        mes.scheme = "https"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              name="test-mes-http")
    thread.start()
    try:
        yield mes
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def mes() -> Iterator[MesServer]:
    yield from _serve(MesServer(free_port()))


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return make_pki(tmp_path / "pki")


@pytest.fixture
def mes_tls(pki: Pki) -> Iterator[MesServer]:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(pki.server_cert, pki.server_key)
    yield from _serve(MesServer(free_port()), ctx)


async def started(tmp_path: Path, url: str, **cfg: Any) -> HttpSink:
    config = HttpSinkConfig.model_validate({"type": "http", "url": url, "timeout_ms": 1000,
                                            **cfg})
    sink = build("mes", config, SinkContext(SITE, AGENT, tmp_path, tmp_path))
    assert isinstance(sink, HttpSink)
    await sink.start()
    return sink


async def test_batch_per_kind_with_idempotency_key_and_bearer(mes: MesServer,
                                                              tmp_path: Path) -> None:
    sink = await started(tmp_path, mes.url(), urls={"stop": mes.url("/mes/stops")},
                         auth={"bearer_token": "tok-123"})
    d1, s1, d2 = defect_record(), stop_record(), defect_record(station="S2")
    await sink.send([d1, s1, d2])
    defects, stops = mes.seen
    assert defects.path == "/mes/records" and stops.path == "/mes/stops"
    assert [p["event_id"] for p in defects.body] == [d1.id, d2.id]
    assert defects.headers["Idempotency-Key"] == f"{d1.id}..{d2.id}"
    assert stops.headers["Idempotency-Key"] == s1.id
    assert defects.headers["Authorization"] == "Bearer tok-123"
    assert defects.headers["Content-Type"] == "application/json"
    for p in defects.body:
        validate("defect", p)
    validate("stop", stops.body[0])
    assert sink.stats().records_sent == 3 and sink.state is SinkState.CONNECTED


async def test_single_mode_one_post_per_record_basic_auth(mes: MesServer, tmp_path: Path) -> None:
    sink = await started(tmp_path, mes.url(), batch=False,
                         auth={"username": "edge", "password": "pw"})
    records = [defect_record(), defect_record()]
    await sink.send(records)
    assert [s.headers["Idempotency-Key"] for s in mes.seen] == [r.id for r in records]
    assert [s.body["event_id"] for s in mes.seen] == [r.id for r in records]  # objects
    assert mes.seen[0].headers["Authorization"] == "Basic " + base64.b64encode(b"edge:pw").decode()


@pytest.mark.parametrize("status", [500, 503, 429])
async def test_server_errors_are_unavailable_then_recover(mes: MesServer, tmp_path: Path,
                                                          status: int) -> None:
    sink = await started(tmp_path, mes.url())
    mes.fail(status, "database locked")
    with pytest.raises(SinkUnavailable, match=f"HTTP {status}: database locked"):
        await sink.send([defect_record()])
    assert sink.state is SinkState.DISCONNECTED
    await sink.send([defect_record()])
    assert sink.state is SinkState.CONNECTED
    assert (sink.stats().unavailable, sink.stats().records_sent) == (1, 1)


@pytest.mark.parametrize(("status", "body"), [(400, '{"error": "defect_code unknown"}'),
                                              (413, "payload too large"), (422, "bad station")])
async def test_client_errors_are_rejected_with_the_body(mes: MesServer, tmp_path: Path,
                                                        status: int, body: str) -> None:
    sink = await started(tmp_path, mes.url())
    ok, bad = stop_record(), defect_record()
    mes.fail(status, body)  # the first request (the defect group) is refused
    with pytest.raises(SinkRejected) as err:
        await sink.send([bad, ok])
    assert err.value.record_ids == (bad.id,)
    assert f"HTTP {status}" in err.value.reason and body in err.value.reason
    assert sink.stats().records_sent == 1 and sink.stats().rejected == 1


@pytest.mark.parametrize(("status", "what"), [(401, "credentials refused"), (404, "not found"),
                                              (302, "redirect not followed")])
async def test_misconfiguration_keeps_records_and_fails_loudly(mes: MesServer, tmp_path: Path,
                                                               status: int, what: str) -> None:
    sink = await started(tmp_path, mes.url())
    mes.fail(status, "nope")
    with pytest.raises(SinkUnavailable, match=what):
        await sink.send([defect_record()])
    assert sink.state is SinkState.FAILED
    assert len(mes.seen) == 1  # the redirect was not followed


async def test_timeout_is_unavailable(mes: MesServer, tmp_path: Path) -> None:
    sink = await started(tmp_path, mes.url(), timeout_ms=200)
    mes.fail(201, "", delay_s=1.0)
    with pytest.raises(SinkUnavailable, match="timed out"):
        await sink.send([defect_record()])


async def test_connection_refused_is_unavailable(tmp_path: Path) -> None:
    sink = await started(tmp_path, f"http://127.0.0.1:{free_port()}/x")
    with pytest.raises(SinkUnavailable, match="connection refused"):
        await sink.send([defect_record()])
    assert sink.state is SinkState.DISCONNECTED


async def test_https_with_ca_file(mes_tls: MesServer, tmp_path: Path, pki: Pki) -> None:
    sink = await started(tmp_path, mes_tls.url(), tls={"ca_file": str(pki.ca)})
    await sink.send([defect_record()])
    assert len(mes_tls.seen) == 1


async def test_https_verification_on_by_default(mes_tls: MesServer, tmp_path: Path) -> None:
    sink = await started(tmp_path, mes_tls.url())  # system store does not know the test CA
    with pytest.raises(SinkUnavailable, match="TLS certificate verification failed"):
        await sink.send([defect_record()])
    assert sink.state is SinkState.FAILED and mes_tls.seen == []


async def test_both_auth_kinds_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="either auth.bearer_token or auth.username"):
        await started(tmp_path, "http://127.0.0.1:1/x",
                      auth={"bearer_token": "t", "username": "u"})
