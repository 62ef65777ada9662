"""MES sink cost per batch next to a bare baseline on the same peer, in one run.

    .venv/bin/python bench/bench_sinks.py [--batches 40] [--batch 50] [--runs 3]

1. MQTT (a local Mosquitto started by this script): `MqttSink.send(batch)` at QoS 1,
   which returns after every PUBACK (paho thread -> asyncio bridge), vs bare paho:
   publish the same payloads and `wait_for_publish()` each, in one thread.
2. HTTP (a local http.server): `HttpSink.send(batch)` with `batch: true` (one POST of a
   JSON array) and with `batch: false` (one POST per record), vs one bare urllib POST
   of the same array.
3. File drop (a temporary folder): `FileSink.send(batch)` (JSON lines, fsync) vs a bare
   write + fsync of the same bytes.

Prints per-batch median and p99 in milliseconds, records/s from the median, and the
ratio of each sink's median to its baseline's median.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Awaitable, Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import agent.config  # noqa: E402,F401
from agent.protocols.base import SinkContext, SinkState, wire_payload  # noqa: E402
from agent.protocols.file import config as file_plugin  # noqa: E402
from agent.protocols.http import config as http_plugin  # noqa: E402
from agent.protocols.mqtt import config as mqtt_plugin  # noqa: E402
from agent.types import Record  # noqa: E402
from tests.support.mosquitto import Mosquitto  # noqa: E402
from tests.support.mqtt_peer import AGENT, SITE, defect_record  # noqa: E402
from tests.support.ports import free_port  # noqa: E402

Timings = list[float]


def summary(name: str, ms: Timings, batch: int, base: Timings | None) -> str:
    med = statistics.median(ms)
    p99 = sorted(ms)[max(0, int(len(ms) * 0.99) - 1)]
    ratio = f"{med / statistics.median(base):6.2f}x" if base else "   base"
    return (f"  {name:<34} median {med:8.2f} ms  p99 {p99:8.2f} ms  "
            f"{batch / med * 1000:9.0f} rec/s  {ratio}")


async def time_async(fn: Callable[[list[Record]], Awaitable[None]],
                     batches: list[list[Record]]) -> Timings:
    out = []
    for b in batches:
        t = time.perf_counter()
        await fn(b)
        out.append((time.perf_counter() - t) * 1000)
    return out


def time_sync(fn: Callable[[list[Record]], None], batches: list[list[Record]]) -> Timings:
    out = []
    for b in batches:
        t = time.perf_counter()
        fn(b)
        out.append((time.perf_counter() - t) * 1000)
    return out


def make_batches(n: int, size: int) -> list[list[Record]]:
    return [[defect_record() for _ in range(size)] for _ in range(n)]


# ---- MQTT --------------------------------------------------------------------------------

async def bench_mqtt(work: Path, args: argparse.Namespace) -> list[str]:
    broker = Mosquitto(work).start()
    ctx = SinkContext(SITE, AGENT, work, work)
    cfg = mqtt_plugin.MqttSinkConfig(type="mqtt", host=broker.host, port=broker.port)
    sink = mqtt_plugin.build("bench", cfg, ctx)
    raw = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    raw.connect(broker.host, broker.port)
    raw.loop_start()

    def bare(batch: list[Record]) -> None:
        infos = [raw.publish(f"edge/{SITE}/{r.line}/{r.station}/defect",
                             json.dumps(wire_payload(r), separators=(",", ":")), qos=1)
                 for r in batch]
        for i in infos:
            i.wait_for_publish(10)

    try:
        await sink.start()
        while sink.state is not SinkState.CONNECTED:
            await asyncio.sleep(0.01)
        s_ms: Timings = []
        b_ms: Timings = []
        for _ in range(args.runs):  # alternate, so both see the same machine load
            s_ms += await time_async(sink.send, make_batches(args.batches, args.batch))
            b_ms += await asyncio.to_thread(time_sync, bare,
                                            make_batches(args.batches, args.batch))
        await sink.close()
    finally:
        raw.disconnect()
        raw.loop_stop()
        broker.stop()
    return [f"MQTT QoS 1 (local Mosquitto), per batch of {args.batch}:",
            summary("bare paho publish + wait_for_publish", b_ms, args.batch, None),
            summary("MqttSink.send", s_ms, args.batch, b_ms)]


# ---- HTTP --------------------------------------------------------------------------------

class _Ok(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(204)
        self.send_header("Content-Length", "0")
        self.end_headers()

    protocol_version = "HTTP/1.1"  # as MES servers speak: the connection may be kept alive

    def log_message(self, *a: Any) -> None:
        pass


async def bench_http(work: Path, args: argparse.Namespace) -> list[str]:
    port = free_port()
    server = ThreadingHTTPServer(("127.0.0.1", port), _Ok)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}/records"
    ctx = SinkContext(SITE, AGENT, work, work)
    sinks = {mode: http_plugin.build(
        "bench", http_plugin.HttpSinkConfig(type="http", url=url, batch=mode), ctx)
        for mode in (True, False)}
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def bare(batch: list[Record]) -> None:
        body = json.dumps([wire_payload(r) for r in batch]).encode()
        req = urllib.request.Request(url, data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
        with opener.open(req, timeout=5) as r:
            r.read()

    res: dict[str, Timings] = {"bare": [], "batch": [], "single": []}
    try:
        for s in sinks.values():
            await s.start()
        for _ in range(args.runs):
            res["batch"] += await time_async(sinks[True].send, make_batches(args.batches,
                                                                           args.batch))
            res["single"] += await time_async(sinks[False].send,
                                              make_batches(max(1, args.batches // 5), args.batch))
            res["bare"] += await asyncio.to_thread(time_sync, bare,
                                                   make_batches(args.batches, args.batch))
    finally:
        server.shutdown()
        server.server_close()
    return [f"HTTP POST (local http.server), per batch of {args.batch}:",
            summary("bare urllib POST of the array", res["bare"], args.batch, None),
            summary("HttpSink.send batch: true", res["batch"], args.batch, res["bare"]),
            summary("HttpSink.send batch: false", res["single"], args.batch, res["bare"])]


# ---- file --------------------------------------------------------------------------------

async def bench_file(work: Path, args: argparse.Namespace) -> list[str]:
    ctx = SinkContext(SITE, AGENT, work, work)
    sink = file_plugin.build("bench", file_plugin.FileSinkConfig(
        type="file", dir="drop", rotate_bytes=64 * 1024 * 1024), ctx)
    path = work / "bare.jsonl"
    fh = open(path, "ab")  # noqa: SIM115

    def bare(batch: list[Record]) -> None:
        fh.write(b"".join(json.dumps(wire_payload(r), separators=(",", ":")).encode() + b"\n"
                          for r in batch))
        fh.flush()
        os.fsync(fh.fileno())

    s_ms: Timings = []
    b_ms: Timings = []
    try:
        await sink.start()
        for _ in range(args.runs):
            s_ms += await time_async(sink.send, make_batches(args.batches, args.batch))
            b_ms += time_sync(bare, make_batches(args.batches, args.batch))
        await sink.close()
    finally:
        fh.close()
    return [f"File drop, JSON lines + fsync, per batch of {args.batch}:",
            summary("bare write + fsync", b_ms, args.batch, None),
            summary("FileSink.send", s_ms, args.batch, b_ms)]


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batches", type=int, default=40)
    p.add_argument("--batch", type=int, default=50)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--only", choices=("mqtt", "http", "file"), help="run one peer's bench")
    args = p.parse_args()
    benches = {"mqtt": bench_mqtt, "http": bench_http, "file": bench_file}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for name, bench in benches.items():
            if args.only not in (None, name):
                continue
            print("\n".join(await bench(work, args)), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
