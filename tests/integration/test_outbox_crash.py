"""Crash safety: a child process enqueues and forwards, and is killed with SIGKILL at random
points. After every kill, everything `enqueue` returned True for is in the store exactly once
(or was already acknowledged by the sink) and comes out in order."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from agent.config.models import OutboxSettings
from agent.outbox import Forwarder, Outbox
from agent.protocols.base import SinkState
from agent.protocols.outbox_policy import OutboxPolicy
from agent.types import Record
from tests.conftest import REPO

CHILD = r'''
import asyncio, os, sys
from pathlib import Path
from agent.config.models import OutboxSettings
from agent.outbox import Forwarder, Outbox
from agent.protocols.base import SinkState
from agent.protocols.outbox_policy import OutboxPolicy
from agent.types import Record, RecordKind, new_event_id

def say(line):
    os.write(1, (line + "\n").encode())

class PrintSink:
    name = "mes"
    state = SinkState.CONNECTED
    async def start(self): pass
    async def close(self): pass
    async def send(self, batch):
        await asyncio.sleep(0.002)
        for r in batch:
            say(f"S {r.payload['p']} {r.payload['i']} {r.id}")

async def producer(box, p, base):
    i = base
    while True:
        r = Record(id=new_event_id(), kind=RecordKind.DEFECT, payload={"p": p, "i": i})
        if await box.enqueue("mes", r):
            say(f"E {p} {i} {r.id}")
        i += 1

async def main():
    rnd = int(sys.argv[2])
    pol = OutboxPolicy(batch_size=7)
    box = Outbox.open(Path(sys.argv[1]), OutboxSettings(group_commit_ms=1), {"mes": pol})
    fwd = Forwarder(box, PrintSink(), pol)
    await fwd.start()
    say("READY")
    await asyncio.gather(*(producer(box, p, rnd * 1_000_000) for p in range(4)))

asyncio.run(main())
'''

ROUNDS = 5


def run_and_kill(script: Path, db: Path, rnd: int, out: Path, delay: float) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with out.open("wb") as fh:
        proc = subprocess.Popen([sys.executable, str(script), str(db), str(rnd)], stdout=fh,
                                stderr=subprocess.PIPE, env=env, cwd=REPO)
    deadline = time.monotonic() + 60
    while b"READY" not in out.read_bytes():
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        assert time.monotonic() < deadline, "child never became ready"
        time.sleep(0.01)
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    if proc.stderr:
        proc.stderr.close()


def parse(out: Path) -> tuple[list[tuple[int, int, str]], list[tuple[int, int, str]]]:
    enq: list[tuple[int, int, str]] = []
    sent: list[tuple[int, int, str]] = []
    for line in out.read_text().splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[0] in "ES" and len(parts[3]) == 36:
            (enq if parts[0] == "E" else sent).append((int(parts[1]), int(parts[2]), parts[3]))
    return enq, sent


class Collector:
    name = "mes"
    state = SinkState.CONNECTED

    def __init__(self) -> None:
        self.got: list[Record] = []

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def send(self, batch: Sequence[Record]) -> None:
        self.got.extend(batch)


def assert_in_order(deliveries: Sequence[tuple[int, int, str]]) -> None:
    """Per producer, first deliveries come in enqueue order; a repeat is the same id again."""
    first_seen: dict[str, tuple[int, int]] = {}
    last: dict[int, int] = {}
    for p, i, rid in deliveries:
        if rid in first_seen:
            assert first_seen[rid] == (p, i)
            continue
        first_seen[rid] = (p, i)
        assert i > last.get(p, -1), f"producer {p}: {i} delivered after {last.get(p)}"
        last[p] = i


async def test_sigkill_at_random_points_loses_nothing(tmp_path: Path) -> None:
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    db = tmp_path / "outbox.sqlite3"
    enqueued: list[tuple[int, int, str]] = []
    sent: list[tuple[int, int, str]] = []
    for rnd in range(ROUNDS):
        out = tmp_path / f"round{rnd}.out"
        await asyncio.to_thread(run_and_kill, script, db, rnd, out, rng.uniform(0.05, 0.6))
        e, s = parse(out)
        assert e, f"round {rnd} enqueued nothing (seed {seed})"
        enqueued += e
        sent += s
        check_store(db, enqueued, sent, seed)

    collector = Collector()
    pol = OutboxPolicy(batch_size=50)
    box = Outbox.open(db, OutboxSettings(), {"mes": pol})
    # the high-water mark never cried wolf: no round's start counted a loss
    assert box.stats()["mes"].lost == 0 and box.store_stats().lost_at_start == 0
    fwd = Forwarder(box, collector, pol)
    await fwd.start()
    try:
        deadline = time.monotonic() + 30
        while box.stats()["mes"].depth:
            assert time.monotonic() < deadline, "drain did not finish"
            await asyncio.sleep(0.02)
    finally:
        await fwd.stop()
        await box.close()
    assert all(r.replayed for r in collector.got)  # all stored by an earlier process
    drained = [(r.payload["p"], r.payload["i"], r.id) for r in collector.got]
    delivered = sent + drained
    missing = {rid for *_, rid in enqueued} - {rid for *_, rid in delivered}
    assert not missing, f"{len(missing)} acknowledged enqueues never delivered (seed {seed})"
    assert_in_order(delivered)


def check_store(db: Path, enqueued: Sequence[tuple[int, int, str]],
                sent: Sequence[tuple[int, int, str]], seed: int) -> None:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT id, payload, status FROM records ORDER BY seq").fetchall()
    conn.close()
    ids = [r[0] for r in rows]
    assert len(ids) == len(set(ids)), f"duplicate rows in the store (seed {seed})"
    lost = {rid for *_, rid in enqueued} - set(ids) - {rid for *_, rid in sent}
    assert not lost, f"{len(lost)} records enqueue returned True for are gone (seed {seed})"
    order = [(json.loads(p)["p"], json.loads(p)["i"], rid) for rid, p, _ in rows]
    assert_in_order(order)
