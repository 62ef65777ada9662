"""The daemon speaking Sparkplug B and Home Assistant discovery (issue 22) to a real Mosquitto:
station telemetry from the health loop, defect records as DDATA, NDEATH when it is killed."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import yaml

from plc.softplc import SoftPlc
from tests.e2e.harness import Daemon, write_config
from tests.support.mosquitto import Mosquitto
from tests.support.mqtt_collector import Collector
from tests.support.spb_host import SpbHost, SpbMessage, value

SCHEDULE = [None, "crack", None, None]


def dialect_config(tmp: Path, mosquitto: Mosquitto, softplc: SoftPlc) -> Path:
    path = write_config(tmp, mqtt_port=mosquitto.port, modbus_port=softplc.modbus_port or 0,
                        schedule=SCHEDULE, fps=20,
                        mqtt_extra={"homeassistant": {"enabled": True}})
    cfg = yaml.safe_load(path.read_text())
    cfg["sinks"]["spb"] = {"type": "sparkplug", "host": "127.0.0.1", "port": mosquitto.port,
                           "group_id": "e2e", "status_interval_s": 1.0, "keepalive_s": 60,
                           "reconnect_max_s": 1.0}
    cfg["lines"]["line1"]["stations"]["station1"]["sinks"].append("spb")
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def aliased(birth: SpbMessage, msg: SpbMessage) -> dict[str, Any]:
    names = {m.alias: m.name for m in birth.payload.metrics}
    return {names[m.alias]: value(m) for m in msg.payload.metrics}


def wait_ddata(host: SpbHost, birth: SpbMessage, want: str, cond: Any, timeout: float,
               latest: dict[str, Any] | None = None) -> dict[str, Any]:
    """The first DDATA whose `want` passes `cond`; `latest` collects every value seen (data
    messages carry changed values only)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        m = host.next("DDATA", timeout=deadline - time.monotonic())
        got = aliased(birth, m)
        if latest is not None:
            latest.update(got)
        if want in got and cond(got[want]):
            return got
    raise AssertionError(f"no DDATA with {want}")


async def test_daemon_is_a_sparkplug_edge_node_and_a_home_assistant_device(
        tmp_path: Path, mosquitto: Mosquitto, softplc: SoftPlc) -> None:
    await asyncio.to_thread(_daemon_session, tmp_path, mosquitto, softplc)


def _daemon_session(tmp_path: Path, mosquitto: Mosquitto, softplc: SoftPlc) -> None:
    host = SpbHost(mosquitto.host, mosquitto.port, "e2e")
    ha = Collector(mosquitto.host, mosquitto.port, "homeassistant/#", "ha")
    daemon = Daemon(dialect_config(tmp_path, mosquitto, softplc))
    try:
        daemon.wait_started()
        nbirth = host.next("NBIRTH", timeout=30)
        dbirth = host.next("DBIRTH", timeout=30)
        assert dbirth.device == "line1:station1"
        node = {m.name: value(m) for m in nbirth.payload.metrics}
        assert node["bdSeq"] == 0 and node["Properties/Agent Id"] == "edge-e2e"
        latest = {m.name: value(m) for m in dbirth.payload.metrics}
        wait_ddata(host, dbirth, "Verdicts/OK", lambda v: v > 0, 30, latest)  # health loop
        if not latest["Camera/FPS"] > 5:
            wait_ddata(host, dbirth, "Camera/FPS", lambda v: v > 5, 30, latest)
        assert latest["Camera/State"] == "streaming" and latest["PLC/Link"] == "connected"
        assert latest["Inference/p99 ms"] > 0 and latest["Camera/Frame Age ms"] is not None
        defect = wait_ddata(host, dbirth, "Events/Defect/defect_code", lambda v: v == 301, 40)
        assert defect["Events/Defect/defect_class"] == "crack"
        configs = ha.wait_for("/config", 5, 10)
        assert {m.topic.split("/")[1] for m in configs} == {"sensor", "binary_sensor"}
        daemon.kill()  # SIGKILL: the broker publishes the Last Will
        ndeath = host.next("NDEATH", timeout=10)
        assert value(next(m for m in ndeath.payload.metrics if m.name == "bdSeq")) == 0
    finally:
        daemon.ensure_dead()
        host.close()
        ha.close()
