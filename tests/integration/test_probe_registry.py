"""`edge-agent probe` checks every sink through its plugin's own probe: a Sparkplug sink is
connected (and nothing published into the spBv1.0 namespace), a broker that is not there
is a FAIL row naming the broker; no sink is skipped in silence."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import paho.mqtt.client as mqtt

from agent.commands.probe import probe_sinks
from agent.configfile import load_config
from tests.conftest import REPO
from tests.support.mosquitto import Mosquitto
from tests.support.ports import free_port


def _loaded(tmp_path: Path, sinks: dict[str, dict[str, object]]):  # type: ignore[no-untyped-def]
    station = {"camera": "cam1", "model": "m", "sinks": list(sinks)}
    cfg = {"site": "plant", "agent_id": "edge1", "state_dir": str(tmp_path / "state"),
           "cameras": {"cam1": {"type": "synthetic"}},
           "models": {"m": {"path": str(REPO / "models" / "defect-cnn")}},
           "sinks": sinks, "lines": {"L1": {"stations": {"S1": station}}}}
    path = tmp_path / "agent.yaml"
    path.write_text(json.dumps(cfg))
    return load_config(str(path))


def test_every_sink_is_probed_by_its_plugin(tmp_path: Path, mosquitto: Mosquitto) -> None:
    seen: list[str] = []
    ready = threading.Event()
    spy = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="spy")
    spy.on_connect = lambda c, *_: (c.subscribe("spBv1.0/#"), ready.set())
    spy.on_message = lambda _c, _u, m: seen.append(m.topic)
    spy.connect("127.0.0.1", mosquitto.port)
    spy.loop_start()
    assert ready.wait(5)
    dead = free_port()
    try:
        loaded = _loaded(tmp_path, {
            "spb": {"type": "sparkplug", "host": "127.0.0.1", "port": mosquitto.port,
                    "group_id": "plant"},
            "gone": {"type": "sparkplug", "host": "127.0.0.1", "port": dead, "group_id": "plant"},
            "drop": {"type": "file", "dir": str(tmp_path / "drop")},
        })
        rows = probe_sinks(loaded, None, 999, timeout=3)
    finally:
        spy.loop_stop()
        spy.disconnect()
    by_target = {r.target: r for r in rows}
    assert set(by_target) == {"spb", "gone", "drop"}
    assert by_target["spb"].ok and "nothing published" in by_target["spb"].detail
    assert not by_target["gone"].ok and by_target["gone"].address == f"sparkplug 127.0.0.1:{dead}"
    assert by_target["drop"].ok and (tmp_path / "drop").is_dir()
    assert seen == []  # the probe published nothing a Sparkplug host would read as data
