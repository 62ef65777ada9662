"""The Sparkplug B sink against a real Mosquitto, watched by a host application that decodes
with its own protoc build of the .proto (tests/support/spb_host.py)."""

from __future__ import annotations

import asyncio
import random
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

import agent.config  # noqa: F401  (import before any plugin module: circular import)
from agent.config.models import OutboxSettings
from agent.outbox import Forwarder, Outbox
from agent.protocols.base import SinkContext, SinkState, SinkUnavailable
from agent.protocols.outbox_policy import OutboxPolicy
from agent.protocols.sparkplug.config import SparkplugSinkConfig
from agent.protocols.sparkplug.factory import build
from agent.protocols.sparkplug.sink import SparkplugSink
from agent.types import Record
from tests.support.mosquitto import Mosquitto
from tests.support.mqtt_peer import defect_record
from tests.support.spb_host import REPO, SpbHost, SpbMessage, value

GROUP, NODE = "plant1", "edge-07"


def station(ok: int = 5, ng: int = 1, latched: bool = False) -> dict[str, Any]:
    return {"ok": ok, "ng": ng, "unknown": 0, "last_verdict": "OK", "last_defect_code": 17,
            "last_defect_class": "scratch", "camera_state": "streaming", "fps": 25.0,
            "frame_age_ms": 3.5, "infer_p99_ms": 9.25, "latched": latched,
            "plc_link": "connected"}


def snapshot(**s1: Any) -> dict[str, Any]:
    return {"outbox_depth": {"spb": 0}, "stations": {"L1/S1": station(**s1), "L1/S2": station()}}


def config(broker: Mosquitto, **extra: Any) -> SparkplugSinkConfig:
    return SparkplugSinkConfig.model_validate({
        "type": "sparkplug", "host": broker.host, "port": broker.port, "group_id": GROUP,
        "reconnect_max_s": 0.5, "ack_timeout_s": 3.0, **extra})


async def start(broker: Mosquitto, tmp_path: Path, **extra: Any) -> SparkplugSink:
    sink = build("spb", config(broker, **extra), SinkContext(GROUP, NODE, tmp_path, tmp_path))
    sink.set_birth({"agent_id": NODE, "site": GROUP, "version": "9.9", "models": []})
    await sink.publish_snapshot(snapshot())
    await sink.start()
    return sink


async def next_msg(host: SpbHost, verb: str | None = None, timeout: float = 10.0) -> SpbMessage:
    return await asyncio.to_thread(host.next, verb, timeout)


def names(m: SpbMessage) -> dict[str, Any]:
    return {x.name: x for x in m.payload.metrics}


@pytest.fixture
def host(mosquitto: Mosquitto) -> Any:
    h = SpbHost(mosquitto.host, mosquitto.port, GROUP)
    yield h
    h.close()


def with_evidence(r: Record) -> Record:
    payload = {**r.payload, "evidence": {"id": "ev-1", "path": "evidence/2026/ev-1.jpg"}}
    return Record(id=r.id, kind=r.kind, payload=payload, line=r.line, station=r.station)


async def test_births_then_records_as_ddata_by_alias(mosquitto: Mosquitto, host: SpbHost,
                                                     tmp_path: Path) -> None:
    sink = await start(mosquitto, tmp_path)
    try:
        nbirth = await next_msg(host, "NBIRTH")
        dbirths = [await next_msg(host, "DBIRTH") for _ in range(2)]
        node = names(nbirth)
        assert nbirth.seq == 0 and not nbirth.retain
        assert value(node["bdSeq"]) == 0 and node["bdSeq"].datatype == 8  # UInt64
        assert value(node["Node Control/Rebirth"]) is False
        assert value(node["Properties/Version"]) == "9.9"
        assert [m.device for m in dbirths] == ["L1:S1", "L1:S2"]
        assert [m.seq for m in dbirths] == [1, 2]
        dev = names(dbirths[0])
        assert value(dev["Verdicts/OK"]) == 5 and value(dev["Stop/Latched"]) is False
        assert value(dev["Inference/p99 ms"]) == 9.25
        assert value(dev["Events/Defect/defect_code"]) is None  # born null
        aliases = [m.alias for b in (nbirth, *dbirths) for m in b.payload.metrics if m.name != "bdSeq"]
        assert len(aliases) == len(set(aliases)), "aliases not unique per edge node"

        record = with_evidence(defect_record("L1", "S1"))
        await sink.send([record])
        ddata = await next_msg(host, "DDATA")
        assert ddata.device == "L1:S1" and ddata.seq == 3
        assert all(not m.name for m in ddata.payload.metrics), "DDATA must use aliases only"
        by_name = {dev[k].alias: k for k in dev}
        got = {by_name[m.alias]: value(m) for m in ddata.payload.metrics}
        assert got["Events/Defect/defect_code"] == 17
        assert got["Events/Defect/defect_class"] == "scratch"
        assert got["Events/Defect/event_id"] == record.id
        assert got["Events/Defect/model/sha256"] == "ab" * 32
        # the payload model's evidence object, one metric per field
        assert got["Events/Defect/evidence/id"] == "ev-1"
        assert got["Events/Defect/evidence/path"] == "evidence/2026/ev-1.jpg"

        await sink.publish_snapshot(snapshot(ng=2, latched=True))  # by exception
        change = await next_msg(host, "DDATA")
        got = {by_name[m.alias]: value(m) for m in change.payload.metrics}
        assert got == {"Verdicts/NG": 2, "Stop/Latched": True} and change.seq == 4
    finally:
        await sink.close()
    deaths = [await next_msg(host, "DDEATH") for _ in range(2)]
    ndeath = await next_msg(host, "NDEATH")
    assert {m.device for m in deaths} == {"L1:S1", "L1:S2"}
    assert value(names(ndeath)["bdSeq"]) == 0 and ndeath.seq is None


async def test_rebirth_on_ncmd_with_the_same_bdseq(mosquitto: Mosquitto, host: SpbHost,
                                                   tmp_path: Path) -> None:
    sink = await start(mosquitto, tmp_path)
    try:
        first = await next_msg(host, "NBIRTH")
        await next_msg(host, "DBIRTH")
        await next_msg(host, "DBIRTH")
        await asyncio.to_thread(host.rebirth, NODE)
        again = await next_msg(host, "NBIRTH")
        dbirths = [await next_msg(host, "DBIRTH") for _ in range(2)]
    finally:
        await sink.close()
    assert again.seq == 0 and [m.seq for m in dbirths] == [1, 2]
    assert value(names(again)["bdSeq"]) == value(names(first)["bdSeq"])


async def test_seq_wraps_after_255(mosquitto: Mosquitto, host: SpbHost, tmp_path: Path) -> None:
    sink = await start(mosquitto, tmp_path)
    try:
        await next_msg(host, "NBIRTH")
        for _ in range(6):
            await sink.send([defect_record("L1", "S2") for _ in range(50)])
        seqs = [(await next_msg(host)).seq for _ in range(302)]  # 2 DBIRTH + 300 DDATA
    finally:
        await sink.close()
    assert seqs == [n % 256 for n in range(1, 303)]


CHILD = textwrap.dedent("""
    import asyncio, sys
    import agent.config
    from pathlib import Path
    from agent.protocols.base import SinkContext, SinkState
    from agent.protocols.sparkplug.config import SparkplugSinkConfig
    from agent.protocols.sparkplug.factory import build

    async def main() -> None:
        cfg = SparkplugSinkConfig(type="sparkplug", host="127.0.0.1", port=int(sys.argv[1]),
                                  group_id="plant1", keepalive_s=60)
        sink = build("spb", cfg, SinkContext("plant1", "edge-07", Path("."), Path(sys.argv[2])))
        await sink.start()
        while sink.state is not SinkState.CONNECTED:
            await asyncio.sleep(0.02)
        print("ready", flush=True)
        await asyncio.sleep(3600)

    asyncio.run(main())
""")


def born_and_killed(broker: Mosquitto, host: SpbHost, state_dir: Path) -> tuple[int, int]:
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(broker.port), str(state_dir)],
                             cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        birth = host.next("NBIRTH")
        child.send_signal(signal.SIGKILL)
        child.wait(10)
        death = host.next("NDEATH", timeout=10)  # the Will, long before keepalive (60 s)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(10)
        assert child.stdout is not None
        child.stdout.close()
    return value(names(birth)["bdSeq"]), value(names(death)["bdSeq"])


def test_ndeath_on_kill_carries_the_bdseq_of_the_birth(mosquitto: Mosquitto, host: SpbHost,
                                                       tmp_path: Path) -> None:
    first = born_and_killed(mosquitto, host, tmp_path)
    second = born_and_killed(mosquitto, host, tmp_path)  # restarted: bdSeq kept on disk
    assert first == (0, 0) and second == (1, 1)


async def test_records_wait_in_the_outbox_while_the_primary_host_is_offline(
        mosquitto: Mosquitto, host: SpbHost, tmp_path: Path) -> None:
    await asyncio.to_thread(host.state, False, 1000)
    sink = await start(mosquitto, tmp_path, primary_host_id="scada")
    pol = OutboxPolicy(batch_size=10, retry_initial_ms=50, retry_cap_s=0.3)
    box = Outbox.open(tmp_path / "outbox.sqlite3", OutboxSettings(), {"spb": pol})
    fwd = Forwarder(box, sink, pol, random.Random(1))
    await fwd.start()
    try:
        ids = [r.id for r in [defect_record("L1", "S1") for _ in range(3)]
               if await box.enqueue("spb", r) or True]
        assert await asyncio.to_thread(host.quiet, 1.0) == []  # no birth, no data
        assert box.stats()["spb"].depth == 3
        with pytest.raises(SinkUnavailable, match="primary host scada is offline"):
            await sink.send([defect_record()])

        await asyncio.to_thread(host.state, True, 2000)
        birth = await next_msg(host, "NBIRTH")
        got = [await next_msg(host, "DDATA") for _ in range(3)]
        assert len({m.seq for m in got}) == 3
        await until(lambda: box.stats()["spb"].depth == 0)
        await asyncio.to_thread(host.state, False, 1500)  # older than the last: ignored
        assert [m.verb for m in await asyncio.to_thread(host.quiet, 0.5)] == []
        assert sink.state is SinkState.CONNECTED

        await asyncio.to_thread(host.state, False, 3000)
        death = await next_msg(host, "NDEATH")
        assert value(names(death)["bdSeq"]) == value(names(birth)["bdSeq"])
        await until(lambda: sink.state is SinkState.DISCONNECTED)
        for r in [defect_record("L1", "S1") for _ in range(2)]:
            await box.enqueue("spb", r)
            ids.append(r.id)
        assert [m.verb for m in await asyncio.to_thread(host.quiet, 1.0)] == []
        assert box.stats()["spb"].depth == 2

        await asyncio.to_thread(host.state, True, 4000)
        reborn = await next_msg(host, "NBIRTH")
        assert value(names(reborn)["bdSeq"]) == value(names(birth)["bdSeq"]) + 1
        later = [await next_msg(host, "DDATA") for _ in range(2)]
        await until(lambda: box.stats()["spb"].depth == 0)
    finally:
        await fwd.stop()
        await sink.close()
        await box.close()
    assert len(later) == 2 and len(ids) == 5


async def until(cond: Any, timeout: float = 10.0) -> None:
    for _ in range(int(timeout / 0.05)):
        if cond():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not met in time")
