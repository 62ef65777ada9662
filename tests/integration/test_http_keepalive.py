"""HTTP sink keeps its connection alive against an HTTP/1.1 server, and a kept connection
that the server closed while idle costs a fresh connection, not a record."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

import agent.config  # noqa: F401  (import before any plugin module: circular import)
from agent.protocols.base import SinkContext
from agent.protocols.http.config import HttpSinkConfig
from agent.protocols.http.factory import build
from tests.support.mqtt_peer import AGENT, SITE, defect_record
from tests.support.ports import free_port


class Mes:
    def __init__(self, drop_after_each: bool) -> None:
        self.drop_after_each = drop_after_each  # close without saying so: a stale kept connection
        self.connections: set[int] = set()
        self.ids: list[str] = []


def _handler(mes: Mes) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:  # noqa: N802
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            mes.connections.add(self.client_address[1])
            mes.ids.append(body["event_id"])
            self.send_response(204)
            self.send_header("Content-Length", "0")
            self.end_headers()
            self.close_connection = mes.drop_after_each

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture(params=[False, True], ids=["kept", "dropped-by-server"])
def mes(request: pytest.FixtureRequest) -> Iterator[Mes]:
    mes = Mes(request.param)
    port = free_port()
    server = ThreadingHTTPServer(("127.0.0.1", port), _handler(mes))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    mes.port = port  # type: ignore[attr-defined]
    yield mes
    server.shutdown()
    server.server_close()


async def test_one_connection_for_many_posts_and_none_lost_when_the_server_drops_it(
        mes: Mes, tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{mes.port}/records"  # type: ignore[attr-defined]
    sink = build("mes", HttpSinkConfig(type="http", url=url, batch=False),
                 SinkContext(SITE, AGENT, tmp_path, tmp_path))
    await sink.start()
    sent = []
    for i in range(4):
        batch = [defect_record(code=5 * i + k) for k in range(5)]
        await sink.send(batch)
        sent += [r.id for r in batch]
    await sink.close()
    assert mes.ids == sent  # every record once, in order
    if mes.drop_after_each:
        assert sink.conns.opened == 20  # each stale connection replaced, no record refused
    else:
        assert sink.conns.opened == 1 and len(mes.connections) == 1
