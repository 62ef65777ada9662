"""The OpenVINO execution provider for real (issue 20), in the side venv .venv-openvino
(onnxruntime-openvino and onnxruntime install the same module, so they cannot share a
venv; scripts/setup.sh makes it with scripts/setup_openvino.sh).

- the bundled model loads through OpenVINO with `device_type: CPU`, and onnxruntime's own
  profile shows its nodes ran on OpenVINO, with the CPU provider's answer;
- a device this box lacks (NPU, GPU) follows the provider policy: with `require_first`
  the daemon refuses to start and says the device is missing; without it, it runs on the
  CPU provider, logs FALLBACK and exposes fallback="true" in /metrics.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from agent.capture.synthetic_scene import ConveyorScene
from agent.config.models import ModelConfig
from agent.inference.session import load_model
from agent.types import Frame
from tests.support.ports import free_port

REPO = Path(__file__).resolve().parents[2]
SIDE = REPO / ".venv-openvino"
PROBE = REPO / "tests" / "support" / "openvino_probe.py"
MODEL = REPO / "models" / "defect-cnn"


@pytest.fixture(scope="module")
def side_venv() -> Path:
    """The side venv's bin folder; made here when scripts/setup.sh has not made it yet."""
    if not (SIDE / "bin" / "edge-agent").exists():
        subprocess.run(["bash", str(REPO / "scripts" / "setup_openvino.sh")], check=True,
                       timeout=1200)
    return SIDE / "bin"


def probe(bin_dir: Path, device: str, *extra: str) -> dict:
    out = subprocess.run([str(bin_dir / "python"), str(PROBE), str(MODEL), device, *extra],
                         capture_output=True, text=True, timeout=120, cwd=REPO)
    assert out.returncode == 0, out.stderr[-2000:]
    return {**json.loads(out.stdout.strip().splitlines()[-1]), "stderr": out.stderr}


def test_the_bundled_model_runs_on_openvino_cpu(side_venv: Path) -> None:
    r = probe(side_venv, "CPU", "--profile")
    assert r["provider"] == "OpenVINOExecutionProvider" and r["fallback"] is False
    assert r["ran_on"] == ["OpenVINOExecutionProvider"]  # every node, by onnxruntime's profile
    assert r["error"] is None
    # the same answer as the default CPU provider in this venv
    runner = load_model("m", ModelConfig(path=str(MODEL)), REPO)
    image = ConveyorScene(seed=3, width=320, height=240).next_frame().image
    insp = runner.infer(Frame(image, "cam", 1, time.monotonic(), datetime.now(UTC)))
    top = max(insp.findings, key=lambda f: f.score)
    assert r["top"][0] == top.label
    assert r["top"][1] == pytest.approx(top.score, abs=1e-3)


def agent_config(tmp: Path, device: str, require_first: bool, port: int) -> Path:
    cfg = {
        "site": "t", "agent_id": "t", "state_dir": str(tmp / "state"),
        "health": {"listen": f"127.0.0.1:{port}"},
        "cameras": {"cam": {"type": "synthetic", "fps": 10}},
        "models": {"m": {"path": str(MODEL), "require_first": require_first, "providers": [
            {"name": "OpenVINOExecutionProvider", "options": {"device_type": device}}]}},
        "lines": {"l1": {"stations": {"s1": {"camera": "cam", "model": "m"}}}},
    }
    path = tmp / "agent.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_a_required_npu_this_box_lacks_refuses_to_start(side_venv: Path, tmp_path: Path) -> None:
    cfg = agent_config(tmp_path, "NPU", True, free_port())
    out = subprocess.run([str(side_venv / "edge-agent"), "run", "-c", str(cfg)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 3, out.stderr[-2000:]
    assert "required provider OpenVINOExecutionProvider is not active" in out.stderr
    assert "device_type NPU: no such device on this machine (OpenVINO sees: CPU)" in out.stderr
    assert "Traceback" not in out.stderr


def test_a_gpu_this_box_lacks_falls_back_loudly(side_venv: Path, tmp_path: Path) -> None:
    port = free_port()
    cfg = agent_config(tmp_path, "GPU", False, port)
    proc = subprocess.Popen([str(side_venv / "edge-agent"), "run", "-c", str(cfg),
                             "--duration", "60"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        info = None
        deadline = time.monotonic() + 60
        while info is None and time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
                    body = r.read().decode()
                info = next((line for line in body.splitlines()
                             if line.startswith("edge_agent_model_info{")), None)
            except OSError:
                time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert info is not None, err[-2000:]
    assert 'fallback="true"' in info and 'provider="CPUExecutionProvider"' in info
    assert "FALLBACK: first-choice provider OpenVINOExecutionProvider is NOT active" in err
    assert "device_type GPU: no such device on this machine" in err
