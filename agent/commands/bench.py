"""Benchmark a model: p50/p99 of each stage (pre, session.run, post) through the agent's
pipeline and of bare session.run, for each available execution provider.

    edge-agent bench                      # the bundled model (models/defect-cnn)
    edge-agent bench --model models/defect-cnn
    edge-agent bench --model yolo11n.onnx --providers CUDAExecutionProvider CPUExecutionProvider
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import onnxruntime as ort

from agent.config.models import PROVIDERS, ModelConfig
from agent.data import bundled_model
from agent.inference.benchmark import BareReport, StageReport, compare, synthetic_frames
from agent.inference.errors import ModelLoadError
from agent.inference.runner import ModelRunner
from agent.inference.session import open_model

SKIP = {"AzureExecutionProvider"}  # a remote-endpoint provider, not a local accelerator


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", type=Path, default=None,
                   help="model folder (model.onnx + model.yaml) or a bare .onnx file "
                        "(default: the bundled model)")
    p.add_argument("--providers", nargs="+", choices=PROVIDERS, metavar="PROVIDER",
                   help="providers to bench, one at a time (default: every available one)")
    p.add_argument("--frames", type=int, default=500, help="frames per measurement (default 500)")
    p.add_argument("--threads", type=int, default=1,
                   help="onnxruntime intra-op threads, as in the config (default 1)")
    p.add_argument("--frame-size", default="320x240", metavar="WxH",
                   help="size of the synthetic conveyor frames fed in (default 320x240)")
    g = p.add_argument_group("models without model.yaml")
    g.add_argument("--task", choices=["classification", "detection", "anomaly", "segmentation"])
    g.add_argument("--labels", help="comma-separated class labels")
    g.add_argument("--yolo-layout", choices=["v5", "v8", "v11", "end2end"])
    g.add_argument("--resize", choices=["resize", "letterbox"])


def overrides(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if args.task:
        out["task"] = args.task
    if args.labels:
        out["labels"] = [s.strip() for s in args.labels.split(",") if s.strip()]
    if args.yolo_layout:
        out["output"] = {"yolo_layout": args.yolo_layout}
    if args.resize:
        out["input"] = {"resize": args.resize}
    return out


def _frame_size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise SystemExit(f"edge-agent bench: --frame-size must be WIDTHxHEIGHT, got {text!r}") from None
    return w, h


def providers_to_bench(requested: list[str] | None) -> list[str]:
    if requested:
        return requested
    return [p for p in ort.get_available_providers() if p not in SKIP]


def main(args: argparse.Namespace) -> int:
    if args.model is None:
        args.model = bundled_model()
    width, height = _frame_size(args.frame_size)
    frames = synthetic_frames(32, width, height)
    benched = 0
    for provider in providers_to_bench(args.providers):
        cfg = ModelConfig(path=str(args.model), providers=[provider], require_first=True,
                          intra_op_threads=args.threads, warmup_runs=10)
        try:
            runner = open_model(args.model.stem or "model", args.model.resolve(), cfg,
                                overrides(args) or None)
        except ModelLoadError as exc:
            print(f"{provider}: skipped: {exc}\n", file=sys.stderr)
            continue
        if benched == 0:
            print(header(runner, args, width, height))
        stages, bare, ratio = compare(runner, frames, args.frames)
        print(report(provider, runner, stages, bare, ratio))
        benched += 1
    return 0 if benched else 2


def header(runner: ModelRunner, args: argparse.Namespace, width: int, height: int) -> str:
    m = runner.manifest
    size = "x".join(str(v) for v in runner.pre.size)
    return (f"model {m.name} {m.version} ({m.task}, input {runner.input_name} {size} "
            f"{runner.pre.dtype} {m.input.layout}, {m.input.resize}) from {args.model}\n"
            f"{args.frames} frames of {width}x{height}, intra_op_threads={args.threads}, "
            f"spinning off\n")


def report(provider: str, runner: ModelRunner, s: StageReport, b: BareReport,
           ratio: float) -> str:
    rows = [("pre", s.pre), ("session.run (pipeline)", s.infer), ("post", s.post),
            ("infer() total", s.total), ("added (total - run)", s.added),
            ("bare session.run", b.run)]
    lines = [f"{provider} (active: {', '.join(runner.active_providers)})",
             f"  {'stage':<24}{'p50 ms':>10}{'p99 ms':>10}"]
    lines += [f"  {name:<24}{p.p50:>10.3f}{p.p99:>10.3f}" for name, p in rows]
    lines.append(f"  throughput: pipeline {s.fps:,.0f} frames/s, bare session.run "
                 f"{b.fps:,.0f} frames/s, ratio {ratio:.2f} (median of interleaved rounds)")
    if s.errors:
        lines.append(f"  {s.errors} of {s.frames} frames failed: {runner.stats().last_error}")
    return "\n".join(lines) + "\n"
