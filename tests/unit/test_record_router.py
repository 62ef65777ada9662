"""RecordRouter: records of a burst committed together, in order per sink, all counted."""

from __future__ import annotations

from pathlib import Path

from agent.config.models import OutboxSettings
from agent.outbox import Outbox
from agent.pipeline.records import RecordRouter
from agent.protocols.outbox_policy import OutboxPolicy
from agent.types import Record, RecordKind, new_event_id


def rec(n: int, station: str | None = "S1") -> Record:
    return Record(id=new_event_id(), kind=RecordKind.DEFECT,
                  line=None if station is None else "L1", station=station,
                  payload={"schema_version": 1, "n": n, "pad": "x" * 200})


ROUTES = {"L1/S1": ("mes", "file"), "L1/S2": ("mes",)}  # L1/S3: no sink


class Wakes:
    def __init__(self) -> None:
        self.n = 0

    def wake(self) -> None:
        self.n += 1


async def test_a_burst_is_committed_in_few_transactions_in_order_per_sink(
        tmp_path: Path) -> None:
    box = Outbox.open(tmp_path / "o.sqlite3", OutboxSettings(),
                      {"mes": OutboxPolicy(), "file": OutboxPolicy()})
    wakes = Wakes()
    router = RecordRouter(box, {"mes": wakes}, ROUTES, ("mes", "file"))  # type: ignore[dict-item]
    await router.start()
    try:
        before = box.store_stats().commits
        stations = ["S1", "S2", "S3"]
        for i in range(300):
            router.submit(rec(i, stations[i % 3]))
        await router.stop()  # everything submitted is committed before it returns
        store = box.store_stats()
        assert store.records_committed == 200 + 100  # mes: 200, file: 100
        assert store.commits - before <= 4  # one burst: a handful of commits, not 300
        mes = [i.record.payload["n"] for i in await box.lease("mes", 1000)]
        file = [i.record.payload["n"] for i in await box.lease("file", 1000)]
        assert mes == [i for i in range(300) if i % 3 != 2]
        assert file == list(range(0, 300, 3))
        assert (router.routed, router.unrouted, router.refused) == (300, 100, 0)
        assert wakes.n >= 1
    finally:
        await box.close()


async def test_records_over_the_bound_are_counted_refused(tmp_path: Path) -> None:
    box = Outbox.open(tmp_path / "o.sqlite3", OutboxSettings(),
                      {"mes": OutboxPolicy(max_bytes=4096, on_full="refuse_new")})
    router = RecordRouter(box, {}, {"L1/S1": ("mes",)}, ("mes",))
    await router.start()
    try:
        for i in range(40):
            router.submit(rec(i))
        await router.stop()
        st = box.stats()["mes"]
        assert router.refused == st.refused == 40 - st.depth > 0
        assert router.routed == st.depth
    finally:
        await box.close()


async def test_agent_records_go_everywhere_and_a_reload_reroutes_a_station(
        tmp_path: Path) -> None:
    box = Outbox.open(tmp_path / "o.sqlite3", OutboxSettings(),
                      {"mes": OutboxPolicy(), "file": OutboxPolicy()})
    router = RecordRouter(box, {}, ROUTES, ("mes", "file"))
    await router.start()
    try:
        router.submit(rec(0, None))  # agent-level: every sink
        router.submit(rec(1, "S3"))  # no sink yet
        await router.stop()
        router.set_routes({**ROUTES, "L1/S3": ("file",)})  # a reload gave S3 a sink
        await router.start()
        router.submit(rec(2, "S3"))
        router.submit(rec(3, "S1"))
        await router.stop()
        mes = [i.record.payload["n"] for i in await box.lease("mes", 10)]
        file = [i.record.payload["n"] for i in await box.lease("file", 10)]
        assert (mes, file) == ([0, 3], [0, 2, 3])
        assert router.unrouted == 1 and router.station_sinks("L1", "S3") == ("file",)
    finally:
        await box.close()
