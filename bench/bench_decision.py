"""Decision engine cost per inspection, next to a pass-through baseline, in one run.

    .venv/bin/python bench/bench_decision.py [--frames 5000] [--runs 5]

Scenarios (one station, 4 rules like config/demo.yaml, 3 findings per frame):
  clean      no finding passes a rule                      -> OK verdicts
  defect     a scratch in every frame (ongoing incident)   -> NG verdicts, no records
  flicker    defect on/off every 4 frames (k2/n3, clear 2) -> incidents open/close: records + commands
  publish    clean + publish_inspections                   -> one pydantic record per verdict
Baseline: building the Verdict dataclass and its latency dict directly (what a
decision-free pass-through would cost). Per-call median and p99 in microseconds,
the ratio to the baseline median, and the share of a 100 ms latency budget.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agent.configfile import parse_config  # noqa: E402
from agent.decision.engine import DecisionEngine  # noqa: E402
from agent.types import (  # noqa: E402
    Finding,
    Inspection,
    ModelInfo,
    Result,
    StageTimings,
    Verdict,
)

MODEL = ModelInfo("defect-cnn", "1.0.0", "ab" * 32, "CPUExecutionProvider")
RULES = [
    {"class": "crack", "min_score": 0.8, "k": 2, "n": 3, "action": "stop", "defect_code": 301},
    {"class": "scratch", "min_score": 0.7, "k": 2, "n": 3, "action": "reject", "defect_code": 101,
     "clear_after": 2, "roi": [0.1, 0.1, 0.9, 0.9]},
    {"class": "spot", "min_score": 0.7, "k": 2, "n": 3, "action": "reject", "defect_code": 201},
    {"class": "dent", "min_score": 0.7, "k": 2, "n": 3, "action": "alert", "defect_code": 401},
]


def engine(base: Path, publish: bool) -> DecisionEngine:
    (base / "model").mkdir(exist_ok=True)
    (base / "model" / "model.onnx").write_bytes(b"x")
    doc = {"site": "plant", "agent_id": "bench", "state_dir": "state",
           "cameras": {"cam1": {"type": "synthetic"}}, "models": {"m1": {"path": "model"}},
           "plcs": {"p1": {"type": "modbus", "host": "127.0.0.1", "port": 5020}},
           "lines": {"l1": {"stations": {"s1": {
               "camera": "cam1", "model": "m1", "plc": "p1", "rules": RULES,
               "publish_inspections": publish}}}}}
    return DecisionEngine(parse_config(yaml.safe_dump(doc), "bench.yaml", base, {}).config)


def inspection(seq: int, defect: bool) -> Inspection:
    findings = [Finding("dent", 0.2, (10, 10, 40, 40)), Finding("spot", 0.3, None)]
    findings.append(Finding("scratch", 0.9 if defect else 0.1, (100, 100, 140, 130)))
    return Inspection("cam1", seq, time.monotonic(), datetime.now(UTC), MODEL, tuple(findings),
                      StageTimings(1.0, 2.0, 20.0, 1.0), frame_shape=(240, 320))


def pattern(name: str, i: int) -> bool:
    return {"clean": False, "publish": False, "defect": True}.get(name, (i // 4) % 2 == 0)


def time_engine(name: str, frames: int, base: Path) -> list[float]:
    eng = engine(base, publish=name == "publish")
    inputs = [inspection(i, pattern(name, i)) for i in range(frames)]
    out = []
    for i, insp in enumerate(inputs):
        t0 = time.perf_counter()
        eng.on_inspection("l1", "s1", insp, insp.t_capture + 0.03)
        out.append(time.perf_counter() - t0)
        if i == frames - 1 and name == "flicker":
            assert eng.stats().defects > 0
    return out


def time_baseline(frames: int) -> list[float]:
    inputs = [inspection(i, False) for i in range(frames)]
    out = []
    for insp in inputs:
        t0 = time.perf_counter()
        t = insp.timings
        lat = {"frame_age_ms": t.frame_age_ms, "pre_ms": t.pre_ms, "infer_ms": t.infer_ms,
               "post_ms": t.post_ms, "total_ms": t.total_ms}
        Verdict("l1", "s1", insp.camera_id, Result.OK, insp.frame_seq, latency_ms=lat)
        out.append(time.perf_counter() - t0)
    return out


def pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(q / 100 * len(s)))] * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--frames", type=int, default=5000)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    names = ["clean", "defect", "flicker", "publish"]
    samples: dict[str, list[float]] = {n: [] for n in ["baseline", *names]}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.runs):  # interleave runs so machine noise hits all alike
            samples["baseline"] += time_baseline(args.frames)
            for n in names:
                samples[n] += time_engine(n, args.frames, Path(tmp))
    base_p50 = pct(samples["baseline"], 50)
    print(f"decision engine, {args.runs} runs x {args.frames} frames, per call (us)")
    print(f"{'scenario':<10} {'p50':>9} {'p99':>9} {'x baseline p50':>15} {'% of 100 ms (p99)':>18}")
    for n, xs in samples.items():
        p50, p99 = pct(xs, 50), pct(xs, 99)
        print(f"{n:<10} {p50:9.1f} {p99:9.1f} {p50 / base_p50:15.1f} {p99 / 1000:17.3f}%")


if __name__ == "__main__":
    main()
