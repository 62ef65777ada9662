"""Measure a loaded model: per-stage latencies through ModelRunner.infer and bare
session.run on the same session (same providers and threads). Used by `edge-agent bench`
and bench/bench_inference.py; prints nothing itself."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

from agent.inference.runner import ModelRunner
from agent.types import Frame


@dataclass(frozen=True)
class Percentiles:
    p50: float
    p99: float
    mean: float

    @classmethod
    def of(cls, samples_ms: Sequence[float]) -> Percentiles:
        a = np.asarray(samples_ms, dtype=np.float64)
        if not a.size:
            return cls(float("nan"), float("nan"), float("nan"))
        p50, p99 = np.percentile(a, [50, 99])
        return cls(float(p50), float(p99), float(a.mean()))


@dataclass(frozen=True)
class StageReport:
    frames: int
    errors: int
    pre: Percentiles
    infer: Percentiles  # session.run inside the pipeline
    post: Percentiles
    total: Percentiles  # the whole ModelRunner.infer call, wall clock
    added: Percentiles  # total minus session.run: what the pipeline adds per frame
    fps: float  # frames through ModelRunner.infer per second, back to back


@dataclass(frozen=True)
class BareReport:
    runs: int
    run: Percentiles
    fps: float


def synthetic_frames(count: int, width: int, height: int, seed: int = 1) -> list[Frame]:
    """Distinct conveyor frames (rendered once, before any timing)."""
    from agent.capture.synthetic_scene import ConveyorScene

    scene = ConveyorScene(seed, width=width, height=height, frames_per_part=2, defect_rate=0.5)
    now = datetime.now(UTC)
    out = []
    for i in range(count):
        sf = scene.next_frame()
        out.append(Frame(sf.image, "bench", i, time.monotonic(), now, sf.part_id, sf.label))
    return out


class _Samples:
    def __init__(self) -> None:
        self.pre: list[float] = []
        self.infer: list[float] = []
        self.post: list[float] = []
        self.total: list[float] = []
        self.added: list[float] = []
        self.errors = 0
        self.frames = 0
        self.seconds = 0.0


def _pipeline_round(runner: ModelRunner, frames: Sequence[Frame], n: int, s: _Samples) -> float:
    start = time.perf_counter()
    for i in range(n):
        f = frames[i % len(frames)]
        t0 = time.perf_counter()
        ins = runner.infer(f)
        wall = (time.perf_counter() - t0) * 1000.0
        if ins.error is not None:
            s.errors += 1
            continue
        t = ins.timings
        s.pre.append(t.pre_ms)
        s.infer.append(t.infer_ms)
        s.post.append(t.post_ms)
        s.total.append(wall)
        s.added.append(wall - t.infer_ms)
    elapsed = time.perf_counter() - start
    s.frames += n
    s.seconds += elapsed
    return elapsed


def _bare_round(runner: ModelRunner, inputs: Sequence[np.ndarray], n: int,
                runs: list[float]) -> float:
    name, session = runner.input_name, runner.session
    start = time.perf_counter()
    for i in range(n):
        t0 = time.perf_counter()
        session.run(None, {name: inputs[i % len(inputs)]})
        runs.append((time.perf_counter() - t0) * 1000.0)
    return time.perf_counter() - start


def compare(runner: ModelRunner, frames: Sequence[Frame], n: int,
            rounds: int = 10) -> tuple[StageReport, BareReport, float]:
    """Pipeline (runner.infer) and bare session.run, `n` frames each, interleaved in
    `rounds` so that load from other processes hits both alike. Returns both reports
    and the median over rounds of the pipeline/bare frames-per-second ratio."""
    inputs = [runner.pre(f.pixels)[0] for f in frames]
    s, runs, ratios = _Samples(), list[float](), list[float]()
    bare_seconds = 0.0
    per_round = max(1, n // rounds)
    for _ in range(rounds):
        pipe = _pipeline_round(runner, frames, per_round, s)
        bare = _bare_round(runner, inputs, per_round, runs)
        bare_seconds += bare
        ratios.append(bare / pipe)
    stages = StageReport(s.frames, s.errors, Percentiles.of(s.pre), Percentiles.of(s.infer),
                         Percentiles.of(s.post), Percentiles.of(s.total), Percentiles.of(s.added),
                         s.frames / s.seconds)
    bare_report = BareReport(len(runs), Percentiles.of(runs), len(runs) / bare_seconds)
    return stages, bare_report, float(np.median(ratios))
