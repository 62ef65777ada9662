"""The daemon through a broker outage and through SIGKILL + restart (issue 9)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from plc.softplc import SoftPlc
from plc.tags import load_tags
from tests.e2e.harness import Daemon, dropped_records, write_config
from tests.support.mosquitto import Mosquitto
from tests.support.mqtt_collector import Collector
from tests.support.ports import free_port
from tests.support.waiting import wait_for as wait

# many defects, but no stop: the outage tests are about records
RULES = [{"class": c, "min_score": 0.6, "k": 2, "n": 3, "action": "alert", "defect_code": code}
         for c, code in (("scratch", 101), ("spot", 201), ("crack", 301), ("dent", 401))]
SCHEDULE = [None, "scratch", "spot", None, "crack", "dent"]


def ids(records: list[dict]) -> list[str]:  # type: ignore[type-arg]
    return [r["event_id"] for r in records]


def first_seen(collector: Collector) -> list[str]:
    out: list[str] = []
    for m in collector.on_topic("/line1/station1/defect"):
        eid = m.json()["event_id"]
        if eid not in out:
            out.append(eid)
    return out


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    b = Mosquitto(tmp_path, persistence=True).start()
    try:
        yield b
    finally:
        b.stop()


@pytest.fixture
def plc_port() -> Iterator[int]:
    """The soft PLC in a thread of its own loop is not needed: the daemon tolerates a
    PLC that is down, but records are what these tests watch, so serve one anyway."""
    import asyncio
    import threading

    port = free_port()
    loop = asyncio.new_event_loop()
    plc = SoftPlc(load_tags(), modbus_port=port)
    ready = threading.Event()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(plc.start())
        ready.set()
        loop.run_forever()
        loop.run_until_complete(plc.stop())
        loop.close()

    t = threading.Thread(target=serve, name="softplc-loop")
    t.start()
    assert ready.wait(10)
    try:
        yield port
    finally:
        loop.call_soon_threadsafe(loop.stop)
        t.join(10)


def test_broker_down_30s_every_record_arrives_in_order(tmp_path: Path, broker: Mosquitto,
                                                       plc_port: int) -> None:
    cfg = write_config(tmp_path, mqtt_port=broker.port, modbus_port=plc_port, seed=5,
                       schedule=SCHEDULE, fps=15, rules=RULES)
    collector = Collector("127.0.0.1", broker.port, client_id="outage-collector", persistent=True)
    daemon = Daemon(cfg)
    try:
        daemon.wait_started()
        wait(lambda: len(first_seen(collector)) >= 2, 40, "first defects over MQTT")
        broker.stop()
        outage_start = len(dropped_records(tmp_path / "drop"))
        time.sleep(30)
        during = dropped_records(tmp_path / "drop")
        assert len(during) > outage_start + 3, "the agent kept inspecting during the outage"
        broker.start()
        expected = ids(dropped_records(tmp_path / "drop"))
        wait(lambda: set(expected) <= set(first_seen(collector)), 40,
             "every defect record of the outage delivered")
        rc, seconds = daemon.terminate()
        assert rc == 0 and seconds < 5
    finally:
        daemon.ensure_dead()
        collector.close()
    got = [e for e in first_seen(collector) if e in set(expected)]
    assert got == expected, "delivered in the order they were decided"
    replayed = [m.json() for m in collector.on_topic("/line1/station1/defect")
                if m.json()["event_id"] in set(ids(during[outage_start:]))]
    # records whose delivery failed during the outage come back marked replayed
    assert any(p["replayed"] for p in replayed)


def test_sigkill_then_restart_delivers_committed_records(tmp_path: Path, broker: Mosquitto,
                                                         plc_port: int) -> None:
    # a long retry backoff (the first retry 10-20 s after the first failure) keeps records
    # in the outbox after the broker is back, so the kill lands while committed records
    # are still undelivered
    cfg = write_config(tmp_path, mqtt_port=broker.port, modbus_port=plc_port, seed=9,
                       schedule=SCHEDULE, fps=15, rules=RULES,
                       mqtt_outbox={"retry_initial_ms": 20000, "retry_cap_s": 60})
    collector = Collector("127.0.0.1", broker.port, client_id="kill-collector", persistent=True)
    status = lambda: [m.json()["state"] for m in collector.on_topic("/agent/edge-e2e/status")]  # noqa: E731
    first = Daemon(cfg)
    second: Daemon | None = None
    try:
        first.wait_started()
        wait(lambda: "online" in status() and first_seen(collector), 40, "online and a defect")
        broker.stop()
        before = len(dropped_records(tmp_path / "drop"))
        wait(lambda: len(dropped_records(tmp_path / "drop")) >= before + 2, 40,
             "defect records committed while the broker is down")
        n_status = len(status())
        broker.start()
        wait(lambda: status()[n_status:].count("online") >= 1, 20, "agent back online")
        first.kill()
        committed = ids(dropped_records(tmp_path / "drop"))
        undelivered = set(committed) - set(first_seen(collector))
        assert undelivered, "records were still in the outbox when the agent was killed"
        wait(lambda: "offline" in status()[n_status:], 20, "Last Will: offline")
        second = Daemon(cfg)
        second.wait_started()
        wait(lambda: set(committed) <= set(first_seen(collector)), 60,
             "records committed before the kill delivered after the restart")
        rc, _ = second.terminate()
        assert rc == 0
    finally:
        first.ensure_dead()
        if second is not None:
            second.ensure_dead()
        collector.close()
    states = status()[n_status:]
    assert states.index("offline") < len(states) - 1 and "online" in states[states.index("offline"):]
    redelivered = [m.json() for m in collector.on_topic("/line1/station1/defect")
                   if m.json()["event_id"] in undelivered]
    assert redelivered and all(p["replayed"] for p in redelivered)
