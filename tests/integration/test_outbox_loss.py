"""Lost data is never silent: a child process enqueues records (each committed), is killed
with SIGKILL, and random blocks are written into its `-wal`; SQLite then drops, without a
word, every transaction from the first damaged frame on. The reopened store counts the
missing records against the high-water mark kept outside the database and reports them
(per sink `lost`, a `Loss`, an ERROR log); a quarantined file reports all it held."""

from __future__ import annotations

import asyncio
import logging
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from agent.config.models import OutboxSettings
from agent.decision.payloads import payload_schemas
from agent.outbox import Outbox
from agent.outbox.watermark import Loss, Watermark, mark_path
from agent.protocols.outbox_policy import OutboxPolicy
from agent.runtime.outbox_alarms import OutboxAlarms
from agent.types import Record, RecordKind
from tests.conftest import REPO

N = 279
CHILD = r'''
import asyncio, os, sys
from pathlib import Path
from agent.config.models import OutboxSettings
from agent.outbox import Outbox
from agent.types import Record, RecordKind, new_event_id

async def main():
    box = Outbox.open(Path(sys.argv[1]), OutboxSettings(), {})
    for i in range(int(sys.argv[2])):
        sink = "mes" if i % 3 else "plant"
        r = Record(id=new_event_id(), kind=RecordKind.DEFECT, payload={"i": i})
        assert await box.enqueue(sink, r)
    os.write(1, b"DONE\n")
    await asyncio.sleep(60)

asyncio.run(main())
'''


def enqueue_and_kill(db: Path, n: int) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(db), str(n)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=REPO)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == b"DONE\n", (
            proc.stderr.read().decode() if proc.stderr else "")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)


def corrupt_wal(db: Path, seed: int) -> None:
    """Random 4 KiB blocks in the middle half of the WAL (past its header)."""
    wal = db.with_name(db.name + "-wal")
    size = wal.stat().st_size
    assert size > 64 * 1024, "the records should still be in the WAL"
    rnd = random.Random(seed)
    with wal.open("r+b") as fh:
        for _ in range(4):
            fh.seek(rnd.randrange(size // 4, size * 3 // 4))
            fh.write(rnd.randbytes(4096))


def damage(db: Path) -> None:
    """The database beyond use (its pages are in the WAL until a checkpoint: both)."""
    for suffix in ("", "-wal", "-shm"):
        f = db.with_name(db.name + suffix)
        if f.exists():
            f.write_bytes(b"garbage " * 1024)


def policies() -> dict[str, OutboxPolicy]:
    return {"mes": OutboxPolicy(), "plant": OutboxPolicy()}


async def reopen(db: Path) -> tuple[Outbox, list[Loss]]:
    box = Outbox.open(db, OutboxSettings(), policies())
    losses: list[Loss] = []
    box.set_loss_listener(losses.append)
    await asyncio.sleep(0.05)
    return box, losses


async def test_records_dropped_with_a_damaged_wal_are_counted_and_reported(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    db = tmp_path / "outbox.sqlite3"
    enqueue_and_kill(db, N)
    corrupt_wal(db, seed=16)
    with caplog.at_level(logging.ERROR):
        box, losses = await reopen(db)
    try:
        held = {s: st.depth for s, st in box.stats().items()}
        missing = {s: n - held[s] for s, n in (("mes", 186), ("plant", 93)) if n > held[s]}
        print(f"records missing after the damage: {missing} of {N}")
        assert sum(missing.values()) > 0, "the damage should have cost records"
        (loss,) = losses
        assert loss.cause == "missing_at_start" and loss.lost == missing
        assert {s: box.stats()[s].lost for s in missing} == missing
        assert box.store_stats().lost_at_start == sum(missing.values())
        assert any(f"OUTBOX LOST {sum(missing.values())} RECORD(S)" in r.getMessage()
                   for r in caplog.records)
    finally:
        await box.close()
    box, losses = await reopen(db)  # reported once; the count stays (persisted)
    try:
        assert losses == []
        assert {s: box.stats()[s].lost for s in missing} == missing
    finally:
        await box.close()


async def test_a_quarantined_file_reports_every_record_it_held(tmp_path: Path) -> None:
    db = tmp_path / "outbox.sqlite3"
    enqueue_and_kill(db, 30)
    damage(db)
    box, losses = await reopen(db)
    try:
        (loss,) = losses
        assert loss.cause == "quarantined" and loss.lost == {"mes": 20, "plant": 10}
        assert loss.path == box.store_stats().moved_aside and ".corrupt-" in (loss.path or "")
        assert box.stats()["mes"].lost == 20 and box.store_stats().lost_at_start == 30
    finally:
        await box.close()


class AuditLines(list):  # type: ignore[type-arg]
    def write(self, event: str, **fields: object) -> None:
        self.append((event, fields))


async def test_a_quarantine_raises_an_alarm_record_an_audit_line_and_metrics(
        tmp_path: Path) -> None:
    db = tmp_path / "outbox.sqlite3"
    enqueue_and_kill(db, 30)
    damage(db)
    box = Outbox.open(db, OutboxSettings(), policies())
    audit, records = AuditLines(), list[Record]()
    alarms = OutboxAlarms(box, audit, records.append, "plant1", "edge-07")
    try:
        alarms.start()
        await asyncio.sleep(0.05)
        (record,) = records
        assert record.kind is RecordKind.ALARM and record.line is record.station is None
        jsonschema.validate(record.payload, payload_schemas()["alarm"])
        p = record.payload
        assert (p["event"], p["cause"], p["lost"]) == ("records_lost", "quarantined", 30)
        assert p["lost_by_sink"] == {"mes": 20, "plant": 10} and ".corrupt-" in p["path"]
        ((event, fields),) = audit
        assert event == "outbox_loss" and fields["lost"] == 30 and fields["cause"] == "quarantined"
        samples = {s.name: s.value for s in alarms.samples()}
        assert samples["edge_agent_outbox_quarantined"] == 1.0
        assert samples["edge_agent_outbox_lost_at_start"] == 30.0
        assert samples["edge_agent_outbox_loss_alarms_total"] == 1.0
    finally:
        await box.close()


async def test_a_clean_restart_reports_nothing(tmp_path: Path) -> None:
    db = tmp_path / "outbox.sqlite3"
    enqueue_and_kill(db, 40)  # killed, but the WAL is whole: nothing lost
    box, losses = await reopen(db)
    try:
        assert losses == [] and box.stats()["mes"].depth == 26
        leased = await box.lease("mes", 10)
        await box.ack("mes", [i.seq for i in leased])  # delivered: not lost
    finally:
        await box.close()
    box, losses = await reopen(db)
    try:
        assert losses == [] and box.stats()["mes"].depth == 16
    finally:
        await box.close()


def test_a_torn_slot_leaves_the_other_one(tmp_path: Path) -> None:
    mark = Watermark(tmp_path / "o.sqlite3")
    mark.write(10, {"mes": 4})
    mark.write(12, {"mes": 6})
    mark.close()
    path = mark_path(tmp_path / "o.sqlite3")
    data = bytearray(path.read_bytes())
    data[:40] = b"\xff" * 40  # generation 2 sits in the first slot (1 in the second)
    path.write_bytes(bytes(data))
    got = Watermark(tmp_path / "o.sqlite3").read()
    assert got is not None and (got.max_seq, got.held) == (10, {"mes": 4})
