"""`edge-agent probe` and `edge-agent cameras` on the fake GigE Vision camera."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO
from tests.support.fake_gige import FakeGigECamera


def write_config(tmp: Path, cameras: dict[str, dict[str, object]]) -> Path:
    cfg = {
        "site": "plant", "agent_id": "edge1", "state_dir": str(tmp / "state"),
        "cameras": cameras,
        "models": {"m": {"path": str(REPO / "models" / "defect-cnn")}},
        "lines": {"line1": {"stations": {
            f"s{i}": {"camera": name, "model": "m"} for i, name in enumerate(cameras)}}},
    }
    path = tmp / "agent.yaml"
    path.write_text(json.dumps(cfg))
    return path


def edge_agent(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "agent", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=60)


def test_probe_reports_identity_settings_fps_and_stream(tmp_path: Path) -> None:
    path = write_config(tmp_path, {
        "good": {"type": "genicam", "serial": "EA0003", "pixel_format": "BayerGR8",
                 "exposure_us": 3000, "frame_rate": 25, "sensor_roi": [0, 0, 256, 128]},
        "bad": {"type": "genicam", "address": "127.0.0.1", "gain": 99}})
    with FakeGigECamera(tmp_path, serial="EA0003"):
        out = edge_agent("probe", str(path))
    assert out.returncode == 1, out.stdout + out.stderr  # the bad camera fails the probe
    lines = {ln.split()[0]: ln for ln in out.stdout.splitlines() if ln.startswith(("good", "bad"))}
    good = lines["good"]
    assert " OK " in good and "Aravis Fake serial EA0003 firmware 0.8.26" in good
    assert "BayerGR8 256x128+0+0, exposure 3000 us" in good
    fps = float(good.split(" fps over")[0].rsplit(" ", 1)[1])
    assert 20 <= fps <= 30
    assert "stream: completed" in good and "failed 0" in good
    assert " FAIL " in lines["bad"] and "Gain 99 is out of range: the camera allows 0..10" in lines["bad"]
    assert "Traceback" not in out.stderr


def test_cameras_lists_the_device_with_a_snippet(tmp_path: Path) -> None:
    with FakeGigECamera(tmp_path, serial="EA0004"):
        out = edge_agent("cameras")
    assert out.returncode == 0, out.stderr
    assert "Aravis-Fake-EA0004" in out.stdout and "127.0.0.1" in out.stdout
    assert 'cam_EA0004:\n    type: genicam\n    serial: "EA0004"' in out.stdout
