"""A PLC that refuses every write (Modbus exception 2) or the heartbeat's writes
(exception 4), served by pymodbus in another process: the daemon reports it unhealthy
(/healthz 503, metrics, an alarm record, audit), logs it once, and clears it all when
the PLC accepts writes again (issue 16)."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.harness import Daemon, dropped_records, write_config
from tests.e2e.test_daemon_heartbeat import healthz, metric, wait_until
from tests.integration.test_heartbeat_refused import serving
from tests.support.ports import free_port


@pytest.fixture
def plc(request: pytest.FixtureRequest) -> Iterator[tuple[int, subprocess.Popen[str]]]:
    yield from serving(request.param)


def config(tmp: Path, port: int) -> Path:
    path = write_config(tmp, mqtt_port=free_port(), modbus_port=port, schedule=[None])
    cfg = yaml.safe_load(path.read_text())
    del cfg["sinks"]["mqtt"]
    cfg["lines"]["line1"]["stations"]["station1"]["sinks"] = ["drop"]
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def log_lines(daemon: Daemon) -> list[dict[str, Any]]:
    out = []
    for line in daemon.log().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


@pytest.mark.parametrize("plc", [(2, None), (4, "0,1")], indirect=True,
                         ids=["exception 2 on every write", "exception 4 on the heartbeat"])
async def test_a_plc_refusing_writes_is_unhealthy_with_an_alarm(
        tmp_path: Path, plc: tuple[int, subprocess.Popen[str]]) -> None:
    port, server = plc
    code = server.args[server.args.index("--code") + 1]  # type: ignore[union-attr]
    daemon = Daemon(config(tmp_path, port))
    try:
        daemon.wait_started()
        await wait_until(lambda: "refuses writes" in healthz(daemon)[1].get("failing", {}).get(
            "heartbeat:softplc", ""), 30, "heartbeat check failing")
        t0 = time.monotonic()
        status, body = healthz(daemon)
        held = body["failing"]["heartbeat:softplc"]
        assert status == 503 and "refuses writes" in held and f"exception {code}" in held, body
        assert "plc:softplc" not in body["failing"]  # the link is up: it is the PLC refusing
        assert metric(daemon, "edge_agent_plc_refusing_writes") == 1.0
        assert metric(daemon, "edge_agent_heartbeat_beats_total") == 0.0
        await wait_until(lambda: dropped_records(tmp_path / "drop", "alarm"), 10, "alarm record")
        (alarm,) = dropped_records(tmp_path / "drop", "alarm")
        assert alarm["event"] == "raised" and "refuses writes" in alarm["reason"]
        assert any(a["event"] == "plc_refusing" for a in daemon.audit())
        await asyncio.sleep(max(0.0, 5.0 - (time.monotonic() - t0)))  # 25+ refused intervals
        assert metric(daemon, "edge_agent_heartbeat_refused_total") >= 25
        noisy = [ln["msg"] for ln in log_lines(daemon)
                 if ln["level"] in ("warning", "error") and "exception" in ln["msg"]]
        # one line for the heartbeat, at most one for the outputs put back at connect: no flood
        assert len([m for m in noisy if "counter is held" in m]) == 1, noisy
        assert len(noisy) <= 2, noisy

        server.send_signal(signal.SIGUSR1)  # the PLC takes writes again
        await wait_until(lambda: "heartbeat:softplc" not in healthz(daemon)[1].get("failing", {}),
                         10, "heartbeat check passing")
        await wait_until(lambda: metric(daemon, "edge_agent_plc_refusing_writes") == 0.0, 2,
                         "refusing metric 0 (/metrics is cached for 0.5 s)")
        await wait_until(lambda: len(dropped_records(tmp_path / "drop", "alarm")) == 2, 10,
                         "alarm cleared")
        cleared = dropped_records(tmp_path / "drop", "alarm")[1]
        assert cleared["event"] == "cleared" and cleared["trigger_event_id"] == alarm["event_id"]
        rc, _ = await asyncio.to_thread(daemon.terminate)
        assert rc == 0
    finally:
        daemon.ensure_dead()
