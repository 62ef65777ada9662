"""Evidence delivery: the file drop copies the images beside the record; the HTTP sink uploads
them (multipart with the record, or PUT first) to a real HTTPS server with a bearer token."""

from __future__ import annotations

import email.parser
import email.policy
import hashlib
import json
import queue
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import agent.config  # noqa: F401  (import before any plugin module: circular import)
from agent.config.evidence import EvidenceConfig
from agent.event_ids import EventIds
from agent.evidence.capture import with_ref
from agent.evidence.retention import Retention
from agent.evidence.store import EvidenceStore
from agent.evidence.writer import EvidenceJob, EvidenceWriter
from agent.protocols.base import SinkContext, SinkUnavailable
from agent.protocols.file.config import FileSinkConfig
from agent.protocols.file.factory import build as build_file
from agent.protocols.http.config import HttpSinkConfig
from agent.protocols.http.factory import build as build_http
from agent.types import Record
from tests.support.mqtt_peer import AGENT, SITE, defect_record, stop_record
from tests.support.ports import free_port
from tests.support.tls import Pki, make_pki

TOKEN = "s3cret-token"


@dataclass
class Req:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Mes:
    port: int
    seen: list[Req] = field(default_factory=list)
    replies: queue.Queue[int] = field(default_factory=queue.Queue)

    def url(self, path: str) -> str:
        return f"https://127.0.0.1:{self.port}{path}"


def _handler(mes: Mes) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _any(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            status = 401 if self.headers.get("Authorization") != f"Bearer {TOKEN}" else 201
            if status == 201:
                try:
                    status = mes.replies.get_nowait()
                except queue.Empty:
                    pass
            mes.seen.append(Req(self.command, self.path, dict(self.headers), raw))
            self.send_response(status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        do_POST = do_PUT = _any  # noqa: N815

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return make_pki(tmp_path / "pki")


@pytest.fixture
def mes(pki: Pki) -> Iterator[Mes]:
    m = Mes(free_port())
    server = ThreadingHTTPServer(("127.0.0.1", m.port), _handler(m))
    server.daemon_threads = True
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(pki.server_cert, pki.server_key)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    t = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    t.start()
    try:
        yield m
    finally:
        server.shutdown()
        server.server_close()
        t.join(5)


def stored(tmp_path: Path, waits: tuple[str, ...]) -> tuple[EvidenceStore, dict[str, Any]]:
    """One evidence item written by the real writer (full frame, crop, annotated copy)."""
    store = EvidenceStore(tmp_path / "evidence")
    writer = EvidenceWriter(store, Retention(store, 10**9, 1e9, 0), EvidenceConfig(), "")
    got: queue.Queue[dict[str, Any] | None] = queue.Queue()
    writer.start()
    pixels = np.random.default_rng(1).integers(0, 255, (120, 160, 3), dtype=np.uint8)
    writer.submit(EvidenceJob(EventIds()(), pixels, (("scratch", 0.9, (10.0, 10.0, 50.0, 40.0)),),
                              {"verdict": "NG"}, waits, lambda job, ref, err: got.put(ref)))
    ref = got.get(timeout=10)
    writer.stop()
    assert ref is not None and len(ref["files"]) == 2
    return store, ref


def multipart_parts(req: Req) -> dict[str, tuple[str | None, bytes]]:
    msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + req.headers["Content-Type"].encode() + b"\r\n\r\n" + req.body)
    out = {}
    for part in msg.iter_parts():
        name = part.get_param("name", header="content-disposition")
        key = name if name != "file" else part.get_filename()
        out[str(key)] = (part.get_filename(), part.get_payload(decode=True))
    return out


async def http_sink(tmp_path: Path, mes: Mes, pki: Pki, store: EvidenceStore, **cfg: Any) -> Any:
    config = HttpSinkConfig.model_validate({
        "type": "http", "url": mes.url("/mes/records"), "timeout_ms": 2000,
        "tls": {"ca_file": str(pki.ca)}, "auth": {"bearer_token": TOKEN}, **cfg})
    sink = build_http("mes", config, SinkContext(SITE, AGENT, tmp_path, tmp_path))
    sink.attach_evidence(store)
    await sink.start()
    return sink


async def test_http_multipart_carries_record_and_images(tmp_path: Path, mes: Mes,
                                                        pki: Pki) -> None:
    store, ref = stored(tmp_path, ("mes",))
    sink = await http_sink(tmp_path, mes, pki, store, evidence="multipart")
    assert sink.takes_evidence
    linked = with_ref(defect_record(), ref)
    before, after = defect_record(), stop_record()
    await sink.send([before, linked, after])
    # order kept: the plain defect batch, the record with images alone, then the stop
    assert [(r.method, r.headers["Content-Type"].split(";")[0]) for r in mes.seen] == [
        ("POST", "application/json"), ("POST", "multipart/form-data"),
        ("POST", "application/json")]
    parts = multipart_parts(mes.seen[1])
    record = json.loads(parts["record"][1])
    assert record["event_id"] == linked.id and record["evidence"] == ref
    name, image = parts["image"]
    assert name == f"{ref['id']}.jpg" and hashlib.sha256(image).hexdigest() == ref["sha256"]
    assert {f"{ref['id']}.crop0.jpg", f"{ref['id']}.annotated.jpg"} <= set(parts)
    assert mes.seen[1].headers["Idempotency-Key"] == linked.id
    assert store.waiting(ref["id"]) == []  # delivered: retention may delete it now
    await sink.close()


async def test_http_put_then_post_retried_in_order(tmp_path: Path, mes: Mes, pki: Pki) -> None:
    store, ref = stored(tmp_path, ("mes",))
    sink = await http_sink(tmp_path, mes, pki, store, evidence="put",
                           evidence_url=mes.url("/mes/evidence/{name}"))
    linked = with_ref(defect_record(), ref)
    mes.replies.put(503)  # the first PUT fails: nothing else is sent, the record stays
    with pytest.raises(SinkUnavailable):
        await sink.send([linked])
    assert [r.method for r in mes.seen] == ["PUT"] and store.waiting(ref["id"]) == ["mes"]
    mes.seen.clear()
    await sink.send([linked])  # the outbox's retry: every image, then the record
    assert [(r.method, r.path) for r in mes.seen] == [
        ("PUT", f"/mes/evidence/{ref['id']}.jpg"),
        ("PUT", f"/mes/evidence/{ref['id']}.crop0.jpg"),
        ("PUT", f"/mes/evidence/{ref['id']}.annotated.jpg"),
        ("POST", "/mes/records")]
    assert hashlib.sha256(mes.seen[0].body).hexdigest() == ref["sha256"]
    assert mes.seen[0].headers["Content-Type"] == "image/jpeg"
    assert json.loads(mes.seen[3].body)[0]["evidence"]["id"] == ref["id"]
    assert store.waiting(ref["id"]) == []
    await sink.close()


async def test_http_off_sends_only_the_reference(tmp_path: Path, mes: Mes, pki: Pki) -> None:
    store, ref = stored(tmp_path, ())
    sink = await http_sink(tmp_path, mes, pki, store)
    assert not sink.takes_evidence
    await sink.send([with_ref(defect_record(), ref)])
    assert [r.method for r in mes.seen] == ["POST"]
    assert json.loads(mes.seen[0].body)[0]["evidence"]["url"] == ref["url"]
    await sink.close()


async def test_file_drop_copies_images_beside_the_record(tmp_path: Path) -> None:
    store, ref = stored(tmp_path, ("drop",))
    cfg = FileSinkConfig.model_validate({"type": "file", "dir": "drop"})
    sink = build_file("drop", cfg, SinkContext(SITE, AGENT, tmp_path, tmp_path))
    sink.attach_evidence(store)
    await sink.start()
    linked: Record = with_ref(defect_record(), ref)
    await sink.send([linked])
    await sink.close()
    drop = tmp_path / "drop"
    image = drop / f"{ref['id']}.jpg"
    assert hashlib.sha256(image.read_bytes()).hexdigest() == ref["sha256"]
    assert (drop / f"{ref['id']}.crop0.jpg").exists()
    assert (drop / f"{ref['id']}.annotated.jpg").exists()
    lines = [json.loads(x) for f in drop.glob("*.jsonl") for x in f.read_text().splitlines()]
    assert [r["evidence"]["id"] for r in lines] == [ref["id"]]
    assert store.waiting(ref["id"]) == [] and not list(drop.glob(".*"))
    # an image retention deleted meanwhile: the record is still written, the miss counted
    store.delete(ref["id"])
    cfg2 = FileSinkConfig.model_validate({"type": "file", "dir": "drop2"})
    sink2 = build_file("drop", cfg2, SinkContext(SITE, AGENT, tmp_path, tmp_path))
    sink2.attach_evidence(store)
    await sink2.start()
    await sink2.send([with_ref(defect_record(), ref)])
    await sink2.close()
    assert sink2.stats().evidence_missing == 3
    assert len(list((tmp_path / "drop2").glob("*.jsonl"))) == 1
