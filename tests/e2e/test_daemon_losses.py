"""Lost data is loud, and a full disk does not stop the line (issue 16, sections 4 and 5).

The daemon as a process against the soft PLC: started with its state directory on a
full 256 KiB tmpfs it still inspects, stops the line and beats the heartbeat, reports
503 and counts the records it cannot store as lost; once space returns it opens the
outbox and raises an alarm record with the count. Started on an outbox whose WAL was
damaged after a SIGKILL, it raises an alarm record, an audit line, a metric and a log
with the number of committed records SQLite dropped."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from plc.softplc import SoftPlc
from tests.e2e.harness import Daemon, dropped_records, write_config
from tests.integration.test_outbox_loss import corrupt_wal, enqueue_and_kill
from tests.support.ports import free_port

SCHEDULE = [None, "crack", None, "scratch"]


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[Path]:
    """`tmp_path/state` on a 256 KiB tmpfs (we run as root), filled up by `filler`."""
    state = tmp_path / "state"
    state.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(state)], check=True)
    try:
        with (state / "filler").open("wb") as fh:
            try:
                fh.write(b"\0" * (512 * 1024))
                fh.flush()
            except OSError:
                pass
        yield state
    finally:
        subprocess.run(["umount", "-l", str(state)], check=False)


async def wait_until(cond, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await asyncio.to_thread(cond):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def metric(daemon: Daemon, name: str, **labels: str) -> float | None:
    _, body = daemon.get("/metrics")
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    pattern = rf"^{re.escape(name)}(?:\{{{re.escape(want)}\}})? (\S+)$" if want else \
        rf"^{re.escape(name)} (\S+)$"
    m = re.search(pattern, body.decode(), re.M)
    return float(m.group(1)) if m else None


def healthz(daemon: Daemon) -> tuple[int, dict]:  # type: ignore[type-arg]
    code, body = daemon.get("/healthz")
    return code, json.loads(body)


def loss_alarms(tmp_path: Path) -> list[dict]:  # type: ignore[type-arg]
    return [r for r in dropped_records(tmp_path / "drop", "alarm") if r.get("event") == "records_lost"]


async def test_full_disk_at_start_protects_the_line_and_recovers(
        tmp_path: Path, softplc: SoftPlc, full_disk: Path) -> None:
    cfg = write_config(tmp_path, mqtt_port=free_port(), modbus_port=softplc.modbus_port or 0,
                       schedule=SCHEDULE, fps=20)
    daemon = Daemon(cfg)
    try:
        await asyncio.to_thread(daemon.wait_started)
        code, body = await asyncio.to_thread(healthz, daemon)
        assert code == 503 and "disk full" in body["failing"]["outbox"]
        hb = softplc.state.get("agent.heartbeat")
        await wait_until(lambda: softplc.state.get("agent.heartbeat") != hb, 5, "heartbeat")
        await wait_until(lambda: softplc.state.get("line1.station1.stop_request"), 40,
                         "the crack stops the line though no record can be stored")
        softplc.press_reset()
        await wait_until(lambda: (metric(daemon, "edge_agent_outbox_lost_total", sink="drop")
                                  or 0) > 0, 20, "records counted as lost")
        assert metric(daemon, "edge_agent_outbox_disk_full") == 1.0
        assert metric(daemon, "edge_agent_outbox_open") == 0.0

        (full_disk / "filler").unlink()  # space returns
        await wait_until(lambda: "outbox" not in healthz(daemon)[1].get("failing", {}), 10,
                         "outbox healthy again")
        await wait_until(lambda: metric(daemon, "edge_agent_outbox_open") == 1.0, 5,
                         "the outbox open (metric)")  # /metrics is cached for 0.5 s
        await wait_until(lambda: loss_alarms(tmp_path), 20, "the loss alarm record")
        (alarm,) = loss_alarms(tmp_path)
        lost = metric(daemon, "edge_agent_outbox_lost_total", sink="drop")
        assert alarm["cause"] == "not_stored" and alarm["lost_by_sink"]["drop"] == lost
        rc, _ = await asyncio.to_thread(daemon.terminate)
        assert rc == 0
    finally:
        daemon.ensure_dead()
    audit = [a for a in daemon.audit() if a["event"] == "outbox_loss" and not a["ongoing"]]
    assert [a["cause"] for a in audit] == ["not_stored"] and audit[0]["lost"] == alarm["lost"]


async def test_records_a_damaged_wal_dropped_are_alarmed_audited_and_counted(
        tmp_path: Path, softplc: SoftPlc) -> None:
    cfg = write_config(tmp_path, mqtt_port=free_port(), modbus_port=softplc.modbus_port or 0,
                       schedule=[None], fps=10)
    db = tmp_path / "state" / "outbox.sqlite3"
    db.parent.mkdir()
    await asyncio.to_thread(enqueue_and_kill, db, 279)  # sinks "mes" and "plant"
    corrupt_wal(db, seed=16)
    daemon = Daemon(cfg)
    try:
        await asyncio.to_thread(daemon.wait_started)
        await wait_until(lambda: loss_alarms(tmp_path), 20, "the loss alarm record")
        (alarm,) = loss_alarms(tmp_path)
        assert alarm["cause"] == "missing_at_start" and alarm["lost"] > 0
        assert alarm["lost"] == sum(alarm["lost_by_sink"].values())
        for sink, n in alarm["lost_by_sink"].items():
            assert metric(daemon, "edge_agent_outbox_lost_total", sink=sink) == n
        assert metric(daemon, "edge_agent_outbox_lost_at_start") == alarm["lost"]
        rc, _ = await asyncio.to_thread(daemon.terminate)
        assert rc == 0
    finally:
        daemon.ensure_dead()
    (audit,) = [a for a in daemon.audit() if a["event"] == "outbox_loss"]
    assert audit["lost"] == alarm["lost"] and audit["cause"] == "missing_at_start"
    assert f"OUTBOX LOST {alarm['lost']} RECORD(S)" in daemon.log_path.read_text()
