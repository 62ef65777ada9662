"""GPU execution-provider check (run on a machine with an NVIDIA GPU and onnxruntime-gpu).

For the bundled model: which providers onnxruntime offers, what the agent's provider
policy does with CUDA and TensorRT wishes (active provider, fallback, require_first
refusal message), and infer p50/p99 per provider next to bare `session.run` on CPU.

    python bench/gpu_check.py [--frames 2000] [--out results.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import onnxruntime as ort

from agent.capture.synthetic_scene import ConveyorScene
from agent.config.models import ModelConfig
from agent.inference.errors import ModelLoadError
from agent.inference.session import load_model
from agent.types import Frame, utc_now

REPO = Path(__file__).resolve().parent.parent
CASES: list[tuple[str, dict[str, Any]]] = [
    ("cpu", {"providers": ["CPUExecutionProvider"]}),
    ("cuda required", {"providers": ["CUDAExecutionProvider", "CPUExecutionProvider"],
                       "require_first": True}),
    ("tensorrt>cuda>cpu", {"providers": [
        {"name": "TensorrtExecutionProvider",
         "options": {"trt_fp16_enable": True, "trt_engine_cache_enable": True,
                     "trt_engine_cache_path": "/tmp/trt-cache"}},
        "CUDAExecutionProvider", "CPUExecutionProvider"]}),
    ("tensorrt required", {"providers": ["TensorrtExecutionProvider", "CPUExecutionProvider"],
                           "require_first": True}),
]


def pct(xs: list[float], q: int) -> float:
    return statistics.quantiles(xs, n=100, method="inclusive")[q - 1]


def frames(n: int) -> list[Frame]:
    scene = ConveyorScene(seed=3, width=320, height=240)
    return [Frame(scene.next_frame().image, "gpu", i, time.monotonic(), utc_now())
            for i in range(n)]


def run_case(name: str, spec: dict[str, Any], fs: list[Frame]) -> dict[str, Any]:
    cfg = ModelConfig(path="models/defect-cnn", **spec)
    t0 = time.perf_counter()
    try:
        runner = load_model("defect", cfg, REPO)
    except ModelLoadError as exc:
        return {"case": name, "refused": str(exc)}
    load_s = time.perf_counter() - t0
    infer, total = [], []
    for f in fs:
        f2 = Frame(f.pixels, f.camera_id, f.seq, time.monotonic(), f.wall_time)
        insp = runner.infer(f2)
        assert insp.error is None, insp.error
        infer.append(insp.timings.infer_ms)
        total.append(insp.timings.pre_ms + insp.timings.infer_ms + insp.timings.post_ms)
    x, _ = runner.pre(fs[0].pixels)
    bare = []
    for _ in range(len(fs)):
        t = time.perf_counter()
        runner.session.run(None, {runner.input_name: x})
        bare.append((time.perf_counter() - t) * 1000)
    return {"case": name, "active": runner.active_providers, "provider": runner.info.provider,
            "fallback": runner.fallback, "load_s": round(load_s, 2),
            "infer_p50_ms": pct(infer, 50), "infer_p99_ms": pct(infer, 99),
            "pipeline_p50_ms": pct(total, 50), "bare_run_p50_ms": pct(bare, 50),
            "bare_run_p99_ms": pct(bare, 99)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=2000)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    info = {"onnxruntime": ort.__version__, "device": ort.get_device(),
            "available": ort.get_available_providers()}
    print(json.dumps(info))
    fs = frames(args.frames)
    results = [info]
    for name, spec in CASES:
        r = run_case(name, spec, fs)
        print(json.dumps(r), flush=True)
        results.append(r)
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
