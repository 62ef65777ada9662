"""`edge-agent probe` and the daemon's MQTT sink agree, on the same config, about a broker with
TLS that is not verified (`verify: false`), `topics:` overrides, and an ACL that refuses one
station's topic: what the probe says passes is delivered, what it says fails is refused."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.commands.probe import probe_sinks
from agent.configfile import LoadedConfig, load_config
from agent.protocols.base import SinkContext, SinkRejected, SinkState
from agent.protocols.mqtt.factory import build
from tests.conftest import REPO
from tests.integration.test_mqtt_sink import wait_state
from tests.support.mosquitto import Mosquitto
from tests.support.mqtt_peer import broker_conf, defect_record
from tests.support.tls import make_pki

OVERRIDE = "plant-x/{line}/{station}/defects"


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    pki = make_pki(tmp_path / "pki")
    acl = tmp_path / "acl"
    acl.write_text("topic readwrite plant-x/L1/S1/#\n"  # S2's defects are refused
                   "topic readwrite edge/#\n")
    b = Mosquitto(tmp_path, extra_conf=broker_conf(pki.mosquitto_conf(), f"acl_file {acl}"))
    b.start()
    try:
        yield b
    finally:
        b.stop()


def _config(tmp_path: Path, broker: Mosquitto) -> LoadedConfig:
    station = {"camera": "cam1", "model": "m", "sinks": ["mes"]}
    cfg = {
        "site": "plant", "agent_id": "edge1", "state_dir": str(tmp_path / "state"),
        "cameras": {"cam1": {"type": "synthetic"}},
        "models": {"m": {"path": str(REPO / "models" / "defect-cnn")}},
        "sinks": {"mes": {"type": "mqtt", "host": broker.host, "port": broker.port,
                          "tls": {"verify": False},  # the test CA is not in the system store
                          "topics": {"defect": OVERRIDE}}},
        "lines": {"L1": {"stations": {"S1": station, "S2": station}}},
    }
    path = tmp_path / "agent.yaml"
    path.write_text(json.dumps(cfg))
    return load_config(str(path))


async def _daemon_delivers(loaded: LoadedConfig, station: str) -> bool:
    cfg = loaded.config
    ctx = SinkContext(cfg.site, cfg.agent_id, loaded.base_dir, loaded.base_dir)
    sink = build("mes", cfg.sinks["mes"], ctx)  # type: ignore[arg-type]
    await sink.start()
    try:
        await wait_state(sink, SinkState.CONNECTED)
        await sink.send([defect_record("L1", station)])
        return True
    except SinkRejected:
        return False
    finally:
        await sink.close()


async def test_probe_and_daemon_agree(tmp_path: Path, broker: Mosquitto) -> None:
    loaded = _config(tmp_path, broker)
    verdicts: dict[str, tuple[bool, bool]] = {}
    for station in ("S1", "S2"):
        rows = probe_sinks(loaded, ("L1", station), 999, timeout=10)
        assert rows[0].signal == "connect" and rows[0].ok, rows  # verify: false connects
        (defect,) = [r for r in rows if r.address == f"plant-x/L1/{station}/defects"]
        verdicts[station] = (defect.ok, await _daemon_delivers(loaded, station))
    assert verdicts == {"S1": (True, True), "S2": (False, False)}
