"""A reload that changes a station's `sinks:` re-routes its records: the record router holds
the station -> sinks map of the running config, and a reload replaces it (the daemon in
one process, no PLC)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from agent.app import Agent, RunLimits
from agent.configfile import load_config

REPO = Path(__file__).resolve().parents[2]


def config(tmp: Path, sinks: list[str]) -> dict[str, Any]:
    return {
        "site": "t", "agent_id": "reload-routes", "state_dir": str(tmp / "state"),
        "health": {"listen": ""},
        "cameras": {"cam": {"type": "synthetic", "seed": 3, "width": 160, "height": 120,
                            "fps": 20}},
        "models": {"m": {"path": str(REPO / "models" / "defect-cnn")}},
        "sinks": {"a": {"type": "file", "dir": str(tmp / "a")},
                  "b": {"type": "file", "dir": str(tmp / "b")}},
        "lines": {"l1": {"stations": {"s1": {"camera": "cam", "model": "m", "sinks": sinks}}}},
    }


async def test_a_reload_replaces_a_station_s_sinks(tmp_path: Path) -> None:
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump(config(tmp_path, ["a"])))
    agent = Agent(load_config(path), RunLimits(duration_s=30))
    await agent.start()
    try:
        assert agent.router.station_sinks("l1", "s1") == ("a",)
        path.write_text(yaml.safe_dump(config(tmp_path, ["b"])))
        assert await agent.reload()
        assert agent.router.station_sinks("l1", "s1") == ("b",)
        assert agent.router.sinks_for(
            agent.engine.drift_record("l1", "s1", {"psi": 0.5}, 0.2)) == ("b",)
    finally:
        await agent.shutdown()
