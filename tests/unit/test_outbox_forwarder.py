"""Forwarder over a sink that fails on demand: order, retry, backoff cap, dead letters, stop."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Sequence
from pathlib import Path

from agent.backoff import Backoff
from agent.config.models import OutboxSettings
from agent.outbox import Forwarder, ForwarderState, Outbox
from agent.protocols.base import SinkRejected, SinkState, SinkUnavailable, wire_payload
from agent.protocols.outbox_policy import OutboxPolicy
from agent.types import Record, RecordKind, new_event_id


class FlakySink:
    """Records what it acknowledged; fails while `down`, rejects ids in `poison`."""

    def __init__(self, name: str = "mes") -> None:
        self.name = name
        self.down = False
        self.poison: set[str] = set()
        self.reject_all: str | None = None
        self.crash: Exception | None = None
        self.block: asyncio.Event | None = None
        self.delay_s = 0.0
        self.delivered: list[Record] = []
        self.attempts: list[float] = []  # monotonic time of every send

    @property
    def state(self) -> SinkState:
        return SinkState.DISCONNECTED if self.down else SinkState.CONNECTED

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def send(self, batch: Sequence[Record]) -> None:
        self.attempts.append(time.monotonic())
        if self.block is not None:
            await self.block.wait()
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.crash is not None:
            raise self.crash
        if self.down:
            raise SinkUnavailable("broker unreachable")
        if self.reject_all is not None:
            raise SinkRejected(self.reject_all)
        bad = [r.id for r in batch if r.id in self.poison]
        if bad:
            raise SinkRejected("schema violation", bad)
        self.delivered.extend(batch)


def rec(n: int) -> Record:
    return Record(id=new_event_id(), kind=RecordKind.DEFECT, payload={"schema_version": 1, "n": n})


def policy(**kw: object) -> OutboxPolicy:
    base: dict[str, object] = {"batch_size": 4, "retry_initial_ms": 10, "retry_cap_s": 0.2}
    return OutboxPolicy(**{**base, **kw})  # type: ignore[arg-type]


async def until(cond: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


class Rig:
    def __init__(self, tmp_path: Path, sink: FlakySink, pol: OutboxPolicy) -> None:
        self.box = Outbox.open(tmp_path / "outbox.sqlite3", OutboxSettings(), {sink.name: pol})
        self.fwd = Forwarder(self.box, sink, pol, random.Random(1))
        self.sink = sink

    async def __aenter__(self) -> Rig:
        await self.fwd.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.fwd.stop()
        await self.box.close()

    async def put(self, records: Sequence[Record]) -> None:
        for r in records:
            assert await self.box.enqueue(self.sink.name, r)


def ns(records: Sequence[Record]) -> list[int]:
    return [r.payload["n"] for r in records]


async def test_delivers_in_order_and_deletes_after_ack(tmp_path: Path) -> None:
    sink = FlakySink()
    async with Rig(tmp_path, sink, policy()) as rig:
        records = [rec(i) for i in range(11)]
        await rig.put(records)
        await until(lambda: len(sink.delivered) == 11)
        assert sink.delivered == records  # same ids, not replayed
        await until(lambda: rig.box.stats()["mes"].depth == 0)
        assert rig.box.stats()["mes"].sent == 11


async def test_outage_retries_in_order_marks_replayed(tmp_path: Path) -> None:
    sink = FlakySink()
    sink.down = True
    rig = Rig(tmp_path, sink, policy())
    await rig.put([rec(i) for i in range(10)])  # before start: the first lease is a full batch
    async with rig:
        await until(lambda: len(sink.attempts) >= 3)
        await until(lambda: rig.fwd.stats().state == ForwarderState.BACKOFF)
        assert rig.fwd.stats().last_error == "broker unreachable"
        await rig.put([rec(i) for i in range(10, 14)])
        sink.down = False
        await until(lambda: len(sink.delivered) == 14)
        assert ns(sink.delivered) == list(range(14))
        assert [r.replayed for r in sink.delivered[:4]] == [True] * 4  # the batch that failed
        assert not any(r.replayed for r in sink.delivered[4:])
        assert rig.box.stats()["mes"].retried >= 3  # every failed attempt gave its batch back
        assert rig.fwd.stats().backoff_s == 0


async def test_backoff_never_exceeds_cap_and_comes_back_within_cap_plus_1s(
        tmp_path: Path) -> None:
    sink = FlakySink()
    sink.down = True
    pol = policy(retry_initial_ms=20, retry_cap_s=0.3)
    async with Rig(tmp_path, sink, pol) as rig:
        await rig.put([rec(0)])
        await until(lambda: len(sink.attempts) >= 8)
        assert 0 < rig.fwd.stats().backoff_s <= 0.3
        gaps = [b - a for a, b in zip(sink.attempts, sink.attempts[1:], strict=False)]
        assert max(gaps[-3:]) >= 0.15  # grew to the cap (jitter draws from [cap/2, cap])
        sink.down = False
        back = time.monotonic()
        await until(lambda: len(sink.delivered) == 1)
        assert time.monotonic() - back <= 0.3 + 1.0 + 1.0  # cap + 1 s, plus 1 s for noisy CI


def test_backoff_grows_exponentially_then_caps() -> None:
    b = Backoff(0.1, 2.0, jitter=0.5, rng=random.Random(7))
    delays = [b.next_delay() for _ in range(12)]
    ceilings = [min(2.0, 0.1 * 2 ** i) for i in range(12)]
    assert all(c / 2 <= d <= c for d, c in zip(delays, ceilings, strict=True))
    b.reset()
    assert b.next_delay() <= 0.1


async def test_rejected_records_go_dead_with_reason_others_continue(tmp_path: Path) -> None:
    sink = FlakySink()
    records = [rec(i) for i in range(8)]
    sink.poison = {records[2].id, records[5].id}
    async with Rig(tmp_path, sink, policy()) as rig:
        await rig.put(records)
        await until(lambda: len(sink.delivered) >= 6)
        await until(lambda: rig.box.stats()["mes"].depth == 0)
        assert ns(sink.delivered) == [0, 1, 3, 4, 6, 7]
        st = rig.box.stats()["mes"]
        assert (st.dead, st.dead_lettered) == (2, 2)
    import sqlite3
    with sqlite3.connect(tmp_path / "outbox.sqlite3") as conn:
        rows = conn.execute("SELECT id, reason FROM records WHERE status = 'dead' ORDER BY seq")
        assert rows.fetchall() == [(records[2].id, "schema violation"),
                                   (records[5].id, "schema violation")]
    conn.close()


async def test_whole_batch_rejected_when_no_ids_named(tmp_path: Path) -> None:
    sink = FlakySink()
    sink.reject_all = "403 forbidden"
    async with Rig(tmp_path, sink, policy(batch_size=3)) as rig:
        await rig.put([rec(i) for i in range(3)])
        await until(lambda: rig.box.stats()["mes"].dead == 3)
        assert rig.fwd.stats().last_error == "rejected: 403 forbidden"
        sink.reject_all = None
        await rig.put([rec(3)])
        await until(lambda: len(sink.delivered) == 1)
        assert ns(sink.delivered) == [3]


async def test_unexpected_sink_error_is_retried_not_fatal(tmp_path: Path) -> None:
    sink = FlakySink()
    sink.crash = KeyError("bug in sink")
    async with Rig(tmp_path, sink, policy()) as rig:
        await rig.put([rec(0), rec(1)])
        await until(lambda: rig.fwd.stats().failed_sends >= 2)
        assert "KeyError" in (rig.fwd.stats().last_error or "")
        sink.crash = None
        await until(lambda: len(sink.delivered) == 2)
        assert ns(sink.delivered) == [0, 1]


async def test_wake_starts_delivery_without_waiting_for_the_poll(tmp_path: Path) -> None:
    sink = FlakySink()
    rig = Rig(tmp_path, sink, policy())
    rig.fwd.poll_s = 3600.0
    async with rig:
        await asyncio.sleep(0.05)  # forwarder is idle, waiting
        await rig.put([rec(0)])
        await until(lambda: len(sink.delivered) == 1, timeout=20)


async def test_stop_finishes_the_inflight_send(tmp_path: Path) -> None:
    sink = FlakySink()
    sink.delay_s = 0.3
    rig = Rig(tmp_path, sink, policy(batch_size=2))
    await rig.put([rec(i) for i in range(6)])
    async with rig:
        await until(lambda: len(sink.attempts) == 1)
    assert ns(sink.delivered) == [0, 1]
    box = Outbox.open(tmp_path / "outbox.sqlite3", OutboxSettings(), {})
    try:
        assert [i.record.payload["n"] for i in await box.lease("mes", 10)] == [2, 3, 4, 5]
    finally:
        await box.close()


async def test_stop_abandons_a_hung_send_and_keeps_its_records(tmp_path: Path) -> None:
    sink = FlakySink()
    sink.block = asyncio.Event()  # never set: the peer hangs
    rig = Rig(tmp_path, sink, policy(batch_size=2))
    rig.fwd.stop_wait_s = 0.2
    await rig.put([rec(i) for i in range(3)])
    async with rig:
        await until(lambda: len(sink.attempts) == 1)
    box = Outbox.open(tmp_path / "outbox.sqlite3", OutboxSettings(), {})
    try:
        leased = await box.lease("mes", 10)
        assert [i.record.payload["n"] for i in leased] == [0, 1, 2]
        assert all(i.record.replayed for i in leased)
    finally:
        await box.close()


async def test_records_made_ready_by_another_process_are_picked_up(tmp_path: Path) -> None:
    sink = FlakySink()
    records = [rec(0), rec(1)]
    sink.poison = {records[0].id}
    rig = Rig(tmp_path, sink, policy())
    rig.fwd.poll_s = 0.1
    async with rig:
        await rig.put(records)
        await until(lambda: rig.box.stats()["mes"].dead == 1 and len(sink.delivered) == 1)
        sink.poison = set()
        import sqlite3
        with sqlite3.connect(tmp_path / "outbox.sqlite3") as other:  # `edge-agent outbox retry`
            other.execute("UPDATE records SET status = 'ready', reason = NULL WHERE status='dead'")
        other.close()
        await until(lambda: len(sink.delivered) == 2)
        assert sink.delivered[1].id == records[0].id and sink.delivered[1].replayed
        await until(lambda: rig.box.stats()["mes"].dead == 0)


async def test_next_batch_leased_early_goes_back_untouched_when_a_send_fails(
        tmp_path: Path) -> None:
    sink = FlakySink()
    sink.block = asyncio.Event()
    rig = Rig(tmp_path, sink, policy(retry_initial_ms=300))  # one failure, then it is back
    await rig.put([rec(i) for i in range(8)])  # two full batches
    async with rig:
        await until(lambda: len(sink.attempts) == 1)  # batch 1 out, batch 2 leased meanwhile
        await until(lambda: rig.fwd._prefetch is not None and rig.fwd._prefetch.done())
        sink.down = True
        sink.block.set()
        await until(lambda: rig.fwd.stats().state == ForwarderState.BACKOFF)
        sink.block = None
        sink.down = False
        await until(lambda: len(sink.delivered) == 8)
    assert ns(sink.delivered) == list(range(8))
    assert [r.replayed for r in sink.delivered] == [True] * 4 + [False] * 4  # only batch 1 sent
    assert rig.box.stats()["mes"].retried == 4


async def test_sink_sending_stored_json_gets_records_without_decoded_payloads(
        tmp_path: Path) -> None:
    sink = FlakySink()
    sink.sends_stored_json = True  # type: ignore[attr-defined]
    async with Rig(tmp_path, sink, policy()) as rig:
        await rig.put([rec(1)])
        await until(lambda: len(sink.delivered) == 1)
    (got,) = sink.delivered
    assert got.payload == {} and got.payload_json == '{"schema_version":1,"n":1}'
    assert wire_payload(got) == {"schema_version": 1, "n": 1, "replayed": False}
