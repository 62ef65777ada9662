"""Outbox store: durable enqueue, order, leases, bounds, disk full, corrupt files, stats."""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agent.config.models import OutboxSettings
from agent.outbox import Outbox
from agent.outbox.watermark import Loss
from agent.protocols.outbox_policy import OutboxPolicy
from agent.types import Record, RecordKind, new_event_id


def rec(n: int, size: int = 10, created: datetime | None = None) -> Record:
    return Record(id=new_event_id(), kind=RecordKind.DEFECT, line="L1", station="S1",
                  payload={"schema_version": 1, "n": n, "pad": "x" * size},
                  created=created or datetime.now(UTC))


def open_box(tmp_path: Path, **policy: object) -> Outbox:
    return Outbox.open(tmp_path / "outbox.sqlite3", OutboxSettings(),
                       {"mes": OutboxPolicy(**policy)})  # type: ignore[arg-type]


async def test_enqueue_then_lease_in_order_with_original_fields(tmp_path: Path) -> None:
    box = open_box(tmp_path)
    try:
        records = [rec(i) for i in range(5)]
        assert all(await asyncio.gather(*(box.enqueue("mes", r) for r in records[:1])))
        for r in records[1:]:
            assert await box.enqueue("mes", r)
        leased = await box.lease("mes", 3)
        assert [item.record for item in leased] == records[:3]
        assert not any(item.record.replayed for item in leased)
        assert box.stats()["mes"].depth == 5
        assert await box.ack("mes", [item.seq for item in leased]) == 3
        rest = await box.lease("mes", 10)
        assert [item.record.id for item in rest] == [r.id for r in records[3:]]
        st = box.stats()["mes"]
        assert (st.depth, st.sent) == (2, 3)
    finally:
        await box.close()


async def test_concurrent_enqueues_share_commits(tmp_path: Path) -> None:
    box = Outbox.open(tmp_path / "o.sqlite3", OutboxSettings(group_commit_ms=20), {})
    try:
        ok = await asyncio.gather(*(box.enqueue("mes", rec(i)) for i in range(40)))
        assert all(ok)
        store = box.store_stats()
        assert store.records_committed == 40
        assert store.commits < 40  # shared: 40 callers, fewer fsyncs
        leased = await box.lease("mes", 100)
        assert [i.record.payload["n"] for i in leased] == list(range(40))
    finally:
        await box.close()


async def test_release_puts_records_back_first_and_marks_them_replayed(tmp_path: Path) -> None:
    box = open_box(tmp_path)
    try:
        for i in range(4):
            await box.enqueue("mes", rec(i))
        first = await box.lease("mes", 2)
        assert await box.release("mes", [i.seq for i in first]) == 2
        again = await box.lease("mes", 4)
        assert [i.record.payload["n"] for i in again] == [0, 1, 2, 3]
        assert [i.record.replayed for i in again] == [True, True, False, False]
        assert box.stats()["mes"].retried == 2
    finally:
        await box.close()


async def test_reopen_restores_inflight_and_marks_everything_replayed(tmp_path: Path) -> None:
    box = open_box(tmp_path)
    created = datetime.now(UTC) - timedelta(hours=1)
    records = [rec(i, created=created) for i in range(3)]
    for r in records:
        await box.enqueue("mes", r)
    await box.lease("mes", 2)  # in flight at the "crash"
    await box.close()
    box = open_box(tmp_path)
    try:
        assert box.stats()["mes"].depth == 3
        leased = await box.lease("mes", 10)
        assert [i.record.id for i in leased] == [r.id for r in records]
        assert all(i.record.replayed for i in leased)
        assert all(i.record.created == created for i in leased)
        await box.enqueue("mes", rec(9))
        new = await box.lease("mes", 10)
        assert [i.record.replayed for i in new] == [False]
    finally:
        await box.close()


async def test_counters_survive_reopen(tmp_path: Path) -> None:
    box = open_box(tmp_path)
    await box.enqueue("mes", rec(1))
    await box.ack("mes", [i.seq for i in await box.lease("mes", 1)])
    await box.close()
    box = open_box(tmp_path)
    try:
        assert box.stats()["mes"].sent == 1
    finally:
        await box.close()


async def test_bury_moves_to_dead_with_reason(tmp_path: Path) -> None:
    box = open_box(tmp_path)
    try:
        await box.enqueue("mes", rec(1))
        await box.enqueue("mes", rec(2))
        leased = await box.lease("mes", 2)
        await box.bury("mes", [leased[0].seq], "payload too large")
        await box.release("mes", [leased[1].seq])
        st = box.stats()["mes"]
        assert (st.depth, st.dead, st.dead_lettered) == (1, 1, 1)
        assert [i.record.payload["n"] for i in await box.lease("mes", 5)] == [2]
    finally:
        await box.close()
    with sqlite3.connect(tmp_path / "outbox.sqlite3") as conn:
        assert conn.execute("SELECT status, reason FROM records WHERE status='dead'").fetchall() \
            == [("dead", "payload too large")]


async def test_size_cap_evicts_oldest_and_counts(tmp_path: Path) -> None:
    box = open_box(tmp_path, max_bytes=4096)
    try:
        for i in range(40):  # ~ 40 x 230 bytes, cap 4096
            assert await box.enqueue("mes", rec(i, size=200))
        st = box.stats()["mes"]
        assert st.bytes <= 4096
        assert st.evicted == 40 - st.depth
        assert st.evicted > 0
        kept = [i.record.payload["n"] for i in await box.lease("mes", 100)]
        assert kept == list(range(40 - st.depth, 40))  # the newest survive, in order
    finally:
        await box.close()


async def test_size_cap_refuse_new_keeps_oldest_and_counts(tmp_path: Path) -> None:
    box = open_box(tmp_path, max_bytes=4096, on_full="refuse_new")
    try:
        results = [await box.enqueue("mes", rec(i, size=200)) for i in range(40)]
        st = box.stats()["mes"]
        assert results.count(False) == st.refused > 0
        kept = [i.record.payload["n"] for i in await box.lease("mes", 100)]
        assert kept == list(range(st.depth))
        assert st.evicted == 0
    finally:
        await box.close()


async def test_record_larger_than_the_cap_is_refused(tmp_path: Path) -> None:
    box = open_box(tmp_path, max_bytes=4096)
    try:
        assert not await box.enqueue("mes", rec(1, size=5000))
        assert box.stats()["mes"].refused == 1
    finally:
        await box.close()


async def test_expired_records_are_evicted_and_counted(tmp_path: Path) -> None:
    box = open_box(tmp_path, max_age_s=60)
    try:
        old = datetime.now(UTC) - timedelta(minutes=5)
        await box.enqueue("mes", rec(1, created=old))
        await box.enqueue("mes", rec(2))
        await asyncio.sleep(1.1)  # sweeps run at most once a second per sink
        leased = await box.lease("mes", 10)
        assert [i.record.payload["n"] for i in leased] == [2]
        assert box.stats()["mes"].evicted == 1
    finally:
        await box.close()


async def test_full_disk_refuses_counts_flags_and_recovers(tmp_path: Path,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    box = open_box(tmp_path)
    losses: list[Loss] = []
    box.set_loss_listener(losses.append)
    try:
        await box.enqueue("mes", rec(0))
        pages = await box._writer.submit(
            lambda c, _: c.execute("PRAGMA page_count").fetchone()[0], durable=False)
        await box._writer.submit(
            lambda c, _: c.execute(f"PRAGMA max_page_count = {pages}"), durable=False)
        with caplog.at_level(logging.ERROR):
            results = [await box.enqueue("mes", rec(i, size=3000)) for i in range(1, 6)]
        assert results[-3:] == [False] * 3  # the last free page may still take one
        assert box.store_stats().disk_full
        assert box.stats()["mes"].lost == results.count(False)
        assert sum("disk full" in r.getMessage() for r in caplog.records) == 1  # logged once
        await box._writer.submit(lambda c, _: c.execute("PRAGMA max_page_count = 1000000"),
                                 durable=False)
        assert await box.enqueue("mes", rec(6))
        assert not box.store_stats().disk_full
        await asyncio.sleep(0.01)
        lost = results.count(False)  # reported when it starts, and with the count at the end
        assert [(x.cause, x.ongoing, x.total) for x in losses] == [
            ("not_stored", True, 1), ("not_stored", False, lost)]
        stored = [0] + [n for n, ok in zip(range(1, 6), results, strict=True) if ok] + [6]
        assert [i.record.payload["n"] for i in await box.lease("mes", 10)] == stored
    finally:
        await box.close()
    box = open_box(tmp_path)  # the count of the records never stored is kept in the file
    try:
        assert box.stats()["mes"].lost == lost
    finally:
        await box.close()


async def test_garbage_file_is_moved_aside_loudly(tmp_path: Path,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "outbox.sqlite3"
    path.write_bytes(b"this is not a database at all\n" * 200)
    with caplog.at_level(logging.ERROR):
        box = Outbox.open(path, OutboxSettings(), {})
    try:
        aside = box.store_stats().moved_aside
        assert aside is not None and Path(aside).read_bytes().startswith(b"this is not")
        assert ".corrupt-" in aside
        assert any("moved aside" in r.getMessage() and r.levelno == logging.ERROR
                   for r in caplog.records)
        assert await box.enqueue("mes", rec(1))
    finally:
        await box.close()


async def test_foreign_sqlite_file_is_moved_aside_not_emptied(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE orders (id INTEGER)")
        conn.execute("INSERT INTO orders VALUES (42)")
    conn.close()
    box = Outbox.open(path, OutboxSettings(), {})
    try:
        aside = box.store_stats().moved_aside
        assert aside is not None
        with sqlite3.connect(aside) as old:
            assert old.execute("SELECT id FROM orders").fetchall() == [(42,)]
        old.close()
        assert box.stats() == {}
    finally:
        await box.close()


async def test_close_checkpoints_the_wal(tmp_path: Path) -> None:
    box = open_box(tmp_path)
    await box.enqueue("mes", rec(1))
    await box.close()
    wal = tmp_path / "outbox.sqlite3-wal"
    assert not wal.exists() or wal.stat().st_size == 0
    assert not await box.enqueue("mes", rec(2))  # closed: refused, not raised


async def test_payload_that_is_not_json_is_stored_as_text(tmp_path: Path) -> None:
    box = open_box(tmp_path)
    try:
        r = Record(id=new_event_id(), kind=RecordKind.DEFECT, payload={"when": datetime(2026, 1, 1)})
        assert await box.enqueue("mes", r)
        (leased,) = await box.lease("mes", 1)
        assert leased.record.payload == {"when": "2026-01-01 00:00:00"}
    finally:
        await box.close()


async def test_enqueue_many_is_one_commit_in_order(tmp_path: Path) -> None:
    box = open_box(tmp_path)
    try:
        before = box.store_stats().commits
        assert await box.enqueue_many("mes", [rec(i) for i in range(50)]) == [True] * 50
        store = box.store_stats()
        assert store.commits == before + 1 and store.records_committed == 50
        assert [i.record.payload["n"] for i in await box.lease("mes", 100)] == list(range(50))
    finally:
        await box.close()


async def test_enqueue_many_over_the_bound_refuses_each_one_that_does_not_fit(
        tmp_path: Path) -> None:
    box = open_box(tmp_path, max_bytes=4096, on_full="refuse_new")
    try:
        results = await box.enqueue_many("mes", [rec(i, size=200) for i in range(40)])
        st = box.stats()["mes"]
        assert results == [True] * st.depth + [False] * (40 - st.depth)
        assert st.refused == 40 - st.depth > 0 and st.bytes <= 4096
    finally:
        await box.close()


async def test_enqueue_many_evicts_the_oldest_to_make_room(tmp_path: Path) -> None:
    box = open_box(tmp_path, max_bytes=4096)
    try:
        assert all(await box.enqueue_many("mes", [rec(i, size=200) for i in range(10)]))
        assert all(await box.enqueue_many("mes", [rec(i, size=200) for i in range(10, 30)]))
        st = box.stats()["mes"]
        kept = [i.record.payload["n"] for i in await box.lease("mes", 100)]
        assert st.evicted == 30 - len(kept) > 0 and kept == list(range(30 - len(kept), 30))
    finally:
        await box.close()


async def test_lease_without_decoding_keeps_the_stored_json(tmp_path: Path) -> None:
    box = open_box(tmp_path)
    try:
        r = rec(7)
        await box.enqueue("mes", r)
        (leased,) = await box.lease("mes", 1, decode_payload=False)
        assert leased.record.payload == {}
        assert leased.record.payload_json is not None
        assert json.loads(leased.record.payload_json) == r.payload
    finally:
        await box.close()


async def test_unlease_returns_records_as_if_never_leased(tmp_path: Path) -> None:
    box = open_box(tmp_path)
    try:
        await box.enqueue_many("mes", [rec(i) for i in range(3)])
        first = await box.lease("mes", 3)
        assert await box.unlease("mes", [i.seq for i in first]) == 3
        again = await box.lease("mes", 3)
        assert [i.seq for i in again] == [i.seq for i in first]
        assert [i.attempts for i in again] == [0, 0, 0]
        assert not any(i.record.replayed for i in again)
        assert box.stats()["mes"].retried == 0
    finally:
        await box.close()


def test_too_old_sqlite_is_refused_naming_the_version(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sqlite3, "sqlite_version_info", (3, 31, 1))
    monkeypatch.setattr(sqlite3, "sqlite_version", "3.31.1")
    with pytest.raises(RuntimeError, match=r"SQLite 3\.31\.1 is too old; 3\.35\.0 or newer"):
        open_box(tmp_path)
