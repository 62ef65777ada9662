"""A one-station line on the fake GigE Vision camera, free-run or PLC-triggered."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from plc.tags import load_tags
from tests.e2e.harness import write_config


def genicam_line_config(tmp: Path, *, mqtt_port: int, modbus_port: int, serial: str,
                        trigger: str = "free-run", frame_ms: int = 500) -> Path:
    """write_config's line with `cam1` = the fake camera `serial`. With a camera trigger
    the station is triggered by the soft PLC's handshake signals (plc/tags.yaml)."""
    path = write_config(tmp, mqtt_port=mqtt_port, modbus_port=modbus_port)
    cfg: dict[str, Any] = yaml.safe_load(path.read_text())
    cfg["cameras"]["cam1"] = {
        "type": "genicam", "serial": serial, "pixel_format": "BayerRG8", "frame_rate": 20,
        "sensor_roi": [0, 0, 320, 240], "read_timeout_ms": 300, "stall_after_ms": 800,
        "reconnect_initial_ms": 100, "reconnect_max_ms": 500, "trigger": trigger}
    if trigger != "free-run":
        st = cfg["lines"]["line1"]["stations"]["station1"]
        st["mode"] = "triggered"
        st["signals"] = load_tags().signals("line1.station1", "modbus")
        st["trigger"] = {"frame_ms": frame_ms, "clear_ms": 3000}
        cfg["plcs"]["softplc"]["poll_ms"] = 5
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path
