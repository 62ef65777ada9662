"""Run inside .venv-openvino (onnxruntime-openvino): load a model through the project's
loader with the OpenVINO execution provider, inspect one frame, and print what ran.

    .venv-openvino/bin/python tests/support/openvino_probe.py MODEL_DIR DEVICE [--profile]

Prints one JSON object: the active providers, the provider the runner reports, fallback,
the top finding, and (with --profile) the providers onnxruntime's own profile shows the
model's nodes ran on.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import onnxruntime as ort

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from agent.capture.synthetic_scene import ConveyorScene  # noqa: E402
from agent.config.models import ModelConfig  # noqa: E402
from agent.inference import providers  # noqa: E402
from agent.inference.session import load_model  # noqa: E402
from agent.types import Frame  # noqa: E402


def profiled_providers(onnx: Path, cfg: ModelConfig, x: np.ndarray, input_name: str) -> list[str]:
    """The providers of the nodes onnxruntime's profiler saw run (the truth, not the wish)."""
    plan = providers.plan(cfg, REPO)
    names, options = providers.session_providers(plan)
    so = providers.session_options(cfg)
    so.enable_profiling = True
    so.profile_file_prefix = str(Path(tempfile.mkdtemp()) / "ov")
    sess = ort.InferenceSession(str(onnx), so, providers=names, provider_options=options)
    sess.run(None, {input_name: x})
    events = json.loads(Path(sess.end_profiling()).read_text())
    return sorted({e["args"]["provider"] for e in events
                   if e.get("cat") == "Node" and "provider" in e.get("args", {})})


def main() -> None:
    model, device = Path(sys.argv[1]), sys.argv[2]
    cfg = ModelConfig(path=str(model), providers=[
        {"name": providers.OPENVINO, "options": {"device_type": device}}])
    runner = load_model("m", cfg, REPO)
    image = ConveyorScene(seed=3, width=320, height=240).next_frame().image
    insp = runner.infer(Frame(image, "cam", 1, time.monotonic(), datetime.now(UTC)))
    top = max(insp.findings, key=lambda f: f.score)
    out = {"onnxruntime": ort.__version__, "active": runner.active_providers,
           "provider": runner.info.provider, "fallback": runner.fallback,
           "top": [top.label, top.score], "error": insp.error,
           "devices": providers.openvino_devices()}
    if "--profile" in sys.argv:
        x, _ = runner.pre(image)
        out["ran_on"] = profiled_providers(model / "model.onnx", cfg, x, runner.input_name)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
