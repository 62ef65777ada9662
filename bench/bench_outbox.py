"""Outbox benchmark: durable enqueue and drain, each next to its raw baseline, in one run.

  enqueue: 4 concurrent producers, synchronous=FULL, group commit
           vs raw SQLite (WAL, synchronous=FULL) single-row commits/s     target >= 5x
           The producers are what the daemon runs: stations handing records to the
           RecordRouter, which commits what is waiting in one transaction. Also shown:
           producers that each await every single enqueue (at most 4 records per fsync,
           so at most ~4x where the fsync dominates).
  drain:   outbox -> Forwarder -> the real MQTT sink -> Mosquitto, QoS 1 (delete after PUBACK)
           vs raw paho publishing the same messages pipelined at QoS 1    target >= 0.5x

Starts its own Mosquitto (tests/support/mosquitto.py) on a free port. Files go to a
temporary directory on the disk given by --dir (default: the system temp dir, which
must not be tmpfs for the FULL figures to mean anything).

    .venv/bin/python bench/bench_outbox.py [--seconds 2] [--trials 3] [--records 20000]
        [--backlog 256] [--skip-enqueue] [--skip-drain]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import paho.mqtt.client as mqtt  # noqa: E402

import agent.config  # noqa: E402,F401  (before plugin modules)
from agent.app import SWITCH_INTERVAL_S  # noqa: E402
from agent.config.models import OutboxSettings  # noqa: E402
from agent.outbox import Forwarder, Outbox  # noqa: E402
from agent.pipeline.records import RecordRouter  # noqa: E402
from agent.protocols.base import SinkContext, SinkState  # noqa: E402
from agent.protocols.mqtt.config import MqttSinkConfig  # noqa: E402
from agent.protocols.mqtt.factory import build  # noqa: E402
from agent.protocols.outbox_policy import OutboxPolicy  # noqa: E402
from agent.types import Record, RecordKind, new_event_id  # noqa: E402
from tests.support.mosquitto import Mosquitto  # noqa: E402

PAYLOAD = {"schema_version": 1, "site": "plant1", "line": "L1", "station": "S1",
           "camera": "cam1", "defect_code": 17, "defect_class": "scratch", "score": 0.93,
           "rule": "scratch>=0.80 k2/n3 -> stop", "frames": [41, 42], "scores": [0.9, 0.93],
           "model": {"name": "defect-cnn", "version": "1.0.0", "sha256": "ab" * 32,
                     "provider": "CPUExecutionProvider"},
           "latency": {"frame_age_ms": 3.1, "pre_ms": 2.0, "infer_ms": 9.4, "post_ms": 0.8}}
TOPIC = "edge/plant1/L1/S1/defect"


def record(station: str = "S1") -> Record:
    rid = new_event_id()
    return Record(id=rid, kind=RecordKind.DEFECT, line="L1", station=station,
                  payload={**PAYLOAD, "event_id": rid})


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))] if s else float("nan")


# --- enqueue ---------------------------------------------------------------------------

def raw_sqlite(workdir: Path, seconds: float) -> tuple[float, list[float]]:
    path = workdir / "raw.sqlite3"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("CREATE TABLE t (seq INTEGER PRIMARY KEY, id TEXT, payload TEXT)")
    lat: list[float] = []
    body = json.dumps(PAYLOAD)
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        a = time.perf_counter()
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO t (id, payload) VALUES (?, ?)", (new_event_id(), body))
        conn.execute("COMMIT")
        lat.append(time.perf_counter() - a)
    rate = len(lat) / (time.perf_counter() - t0)
    conn.close()
    for p in workdir.glob("raw.sqlite3*"):
        p.unlink()
    return rate, lat


async def outbox_enqueue(workdir: Path, seconds: float, producers: int,
                         outstanding: int) -> tuple[float, list[float], float]:
    path = workdir / "outbox.sqlite3"
    box = Outbox.open(path, OutboxSettings(synchronous="FULL"), {"mes": OutboxPolicy()})
    lat: list[float] = []
    stop = time.perf_counter() + seconds

    async def producer() -> None:
        while time.perf_counter() < stop:
            a = time.perf_counter()
            assert await box.enqueue("mes", record())
            lat.append(time.perf_counter() - a)

    t0 = time.perf_counter()
    await asyncio.gather(*(producer() for _ in range(producers * outstanding)))
    rate = len(lat) / (time.perf_counter() - t0)
    store = box.store_stats()
    await box.close()
    for p in workdir.glob("outbox.sqlite3*"):
        p.unlink()
    return rate, lat, store.records_committed / max(1, store.commits)


async def router_enqueue(workdir: Path, seconds: float, producers: int,
                         backlog: int) -> tuple[float, list[float], float]:
    """Stations submit records to the daemon's RecordRouter as fast as they are made (one per
    loop turn, holding back while `backlog` of theirs wait); durable when its commit returned."""
    path = workdir / "outbox.sqlite3"
    box = Outbox.open(path, OutboxSettings(synchronous="FULL"), {"mes": OutboxPolicy()})
    router = RecordRouter(box, {}, {f"L1/{n}": ("mes",) for n in range(producers)}, ("mes",))
    made: dict[str, float] = {}
    lat: list[float] = []
    waiting = [0] * producers
    queue_commit = box.enqueue_many_queued

    def timed_commit(sink: str, records: list[Record]) -> Coroutine[Any, Any, list[bool]]:
        result = queue_commit(sink, records)

        async def settled() -> list[bool]:
            ok = await result
            now = time.perf_counter()
            for r in records:
                lat.append(now - made.pop(r.id))
                waiting[int(r.station or 0)] -= 1
            return ok
        return settled()

    box.enqueue_many_queued = timed_commit  # type: ignore[method-assign]
    await router.start()
    stop = time.perf_counter() + seconds

    async def producer(n: int) -> None:
        while time.perf_counter() < stop:
            if waiting[n] >= backlog:
                await asyncio.sleep(0.0005)
                continue
            r = record(str(n))
            made[r.id] = time.perf_counter()
            waiting[n] += 1
            router.submit(r)
            await asyncio.sleep(0)

    t0 = time.perf_counter()
    await asyncio.gather(*(producer(n) for n in range(producers)))
    await router.stop()
    rate = router.routed / (time.perf_counter() - t0)
    store = box.store_stats()
    await box.close()
    for p in workdir.glob("outbox.sqlite3*"):
        p.unlink()
    return rate, lat, store.records_committed / max(1, store.commits)


# --- drain -----------------------------------------------------------------------------

def raw_paho(broker: Mosquitto, n: int) -> float:
    done = threading.Event()
    acked = [0]

    def on_publish(c: mqtt.Client, u: object, mid: int, rc: object, p: object) -> None:
        acked[0] += 1
        if acked[0] == n:
            done.set()

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-raw",
                         protocol=mqtt.MQTTv5)  # same protocol and defaults as the sink
    client.on_publish = on_publish
    client.connect(broker.host, broker.port, 30)
    client.loop_start()
    bodies = [json.dumps({**PAYLOAD, "event_id": new_event_id(), "replayed": False}).encode()
              for _ in range(n)]
    t0 = time.perf_counter()
    for body in bodies:
        client.publish(TOPIC, body, qos=1)
    assert done.wait(120), f"only {acked[0]} of {n} PUBACKs"
    rate = n / (time.perf_counter() - t0)
    client.disconnect()
    client.loop_stop()
    return rate


async def sink_only(broker: Mosquitto, workdir: Path, n: int, batch: int) -> float:
    """The MQTT sink's own ceiling: the same sends without the outbox."""
    cfg = MqttSinkConfig.model_validate({"type": "mqtt", "host": broker.host,
                                         "port": broker.port, "client_id": "bench-sink"})
    sink = build("mes", cfg, SinkContext("plant1", "bench", workdir, workdir))
    await sink.start()
    while sink.state is not SinkState.CONNECTED:
        await asyncio.sleep(0.01)
    records = [record() for _ in range(n)]
    t0 = time.perf_counter()
    for i in range(0, n, batch):
        await sink.send(records[i:i + batch])
    rate = n / (time.perf_counter() - t0)
    await sink.close()
    return rate


async def outbox_drain(broker: Mosquitto, workdir: Path, n: int, batch: int) -> float:
    pol = OutboxPolicy(batch_size=batch)
    box = Outbox.open(workdir / "drain.sqlite3", OutboxSettings(), {"mes": pol})
    for i in range(0, n, 500):
        assert all(await box.enqueue_many("mes", [record() for _ in range(min(500, n - i))]))
    cfg = MqttSinkConfig.model_validate({"type": "mqtt", "host": broker.host,
                                         "port": broker.port})
    sink = build("mes", cfg, SinkContext("plant1", "bench", workdir, workdir))
    await sink.start()
    while sink.state is not SinkState.CONNECTED:
        await asyncio.sleep(0.01)
    fwd = Forwarder(box, sink, pol)
    t0 = time.perf_counter()
    await fwd.start()
    while box.stats()["mes"].depth:
        await asyncio.sleep(0.002)
    rate = n / (time.perf_counter() - t0)
    await fwd.stop()
    await sink.close()
    await box.close()
    for p in workdir.glob("drain.sqlite3*"):
        p.unlink()
    return rate


# --- report ----------------------------------------------------------------------------

def row(name: str, rates: list[float], lat: list[float] | None = None) -> str:
    tail = ""
    if lat:
        tail = f"   latency p50 {pct(lat, 0.5) * 1e3:7.2f} ms   p99 {pct(lat, 0.99) * 1e3:7.2f} ms"
    spread = f"[{min(rates):8.0f} .. {max(rates):8.0f}]"
    return f"  {name:<52} {statistics.median(rates):9.0f} /s {spread}{tail}"


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=2.0, help="per enqueue trial")
    ap.add_argument("--trials", type=int, default=3)
    ap.add_argument("--skip-drain", action="store_true")
    ap.add_argument("--skip-enqueue", action="store_true")
    ap.add_argument("--backlog", type=int, default=256,
                    help="records a producer lets wait for their commit before it holds back "
                         "(the daemon's stations never wait: this only bounds memory)")
    ap.add_argument("--records", type=int, default=20000,
                    help="per drain trial (a backlog after an outage; steady state)")
    ap.add_argument("--dir", default=None, help="directory for the database files")
    args = ap.parse_args()
    sys.setswitchinterval(SWITCH_INTERVAL_S)  # as the daemon runs (agent/app.py)
    workdir = Path(tempfile.mkdtemp(prefix="bench-outbox-", dir=args.dir))
    try:
        await run(args, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


async def run(args: argparse.Namespace, workdir: Path) -> None:
    print(f"outbox benchmark: {args.trials} trial(s), files in {workdir}, "
          f"SQLite {sqlite3.sqlite_version}")
    if not args.skip_enqueue:
        await enqueue_section(args, workdir)
    if args.skip_drain:
        return
    for label, conf in (("set_tcp_nodelay true", "user root\nset_tcp_nodelay true"),
                        ("Mosquitto defaults (Nagle on)", "user root")):
        await drain_section(args, workdir, label, conf)


async def enqueue_section(args: argparse.Namespace, workdir: Path) -> None:
    raw_r: list[float] = []
    raw_l: list[float] = []
    backlogs = sorted({8, 32, args.backlog})
    rt = {b: ([], [], []) for b in backlogs}  # rates, latencies, records per commit
    one: tuple[list[float], list[float], list[float]] = ([], [], [])
    for _ in range(args.trials):  # interleaved: noise hits both sides alike
        r, lat = raw_sqlite(workdir, args.seconds)
        raw_r.append(r)
        raw_l += lat
        for b in backlogs:
            r, lat, pc = await router_enqueue(workdir, args.seconds, 4, b)
            rt[b][0].append(r)
            rt[b][1].extend(lat)
            rt[b][2].append(pc)
        r, lat, pc = await outbox_enqueue(workdir, args.seconds, 4, 1)
        one[0].append(r)
        one[1].extend(lat)
        one[2].append(pc)
    print("\nDurable enqueue, synchronous=FULL (records/s: median [min .. max]; latency: from "
          "the record's creation to its commit)")
    print(row("baseline: raw SQLite single-row FULL commits", raw_r, raw_l))
    for b in backlogs:
        print(row(f"4 producers -> RecordRouter -> outbox, {b:>3} waiting", rt[b][0], rt[b][1]))
    print(row("4 producers, each awaits every single enqueue", one[0], one[1]))
    base = statistics.median(raw_r)
    for b in backlogs:
        note = "  <- headline: daemon producers never wait" if b == args.backlog else ""
        print(f"  ratio router, {b:>3} waiting / raw:  {statistics.median(rt[b][0]) / base:5.2f}x  "
              f"(records per commit {statistics.median(rt[b][2]):5.1f}){note}")
    print("  target: >= 5x for the headline row")
    print(f"  ratio one-at-a-time / raw:      {statistics.median(one[0]) / base:5.2f}x  "
          f"(records per commit {statistics.median(one[2]):.1f}: at most 4 by design)")

async def drain_section(args: argparse.Namespace, workdir: Path, label: str, conf: str) -> None:
    broker = Mosquitto(workdir, extra_conf=conf).start()
    try:
        paho_r, sink_r, drain_r, drain500_r = [], [], [], []
        for _ in range(args.trials):
            paho_r.append(raw_paho(broker, args.records))
            sink_r.append(await sink_only(broker, workdir, args.records, 50))
            drain_r.append(await outbox_drain(broker, workdir, args.records, 50))
            drain500_r.append(await outbox_drain(broker, workdir, args.records, 500))
    finally:
        broker.stop()
    print(f"\nDrain to Mosquitto ({label}) at QoS 1, {args.records} records per trial "
          f"(records/s)")
    print(row("baseline: raw paho, pipelined QoS 1 publishes", paho_r))
    print(row("reference: MQTT sink.send alone, batches of 50", sink_r))
    print(row("outbox -> forwarder -> MQTT sink, batch_size 50", drain_r))
    print(row("outbox -> forwarder -> MQTT sink, batch_size 500 (default)", drain500_r))
    pb = statistics.median(paho_r)
    print(f"  ratio batch 500 / raw paho:  {statistics.median(drain500_r) / pb:5.2f}x  "
          f"(target >= 0.5x; the MQTT sink's default batch)")
    print(f"  ratio batch 50 / raw paho:   {statistics.median(drain_r) / pb:5.2f}x")
    print(f"  ratio batch 50 / sink alone: {statistics.median(drain_r) / statistics.median(sink_r):5.2f}x"
          "  (what the outbox itself costs)")

if __name__ == "__main__":
    asyncio.run(main())
