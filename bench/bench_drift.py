"""Per-frame cost of drift monitoring, and of a health scrape.

    .venv/bin/python bench/bench_drift.py [--frames 300] [--runs 5]

1. `DriftMonitor.observe()` per frame with the default pixel subsampling (every 4th row
   and column) vs the same monitor on every pixel (stride 1, the baseline), at 640x480
   and 1920x1080, with full windows (PSI computed every frame). Median and p99 per
   frame over all runs, and the ratio of the medians.
2. `Metrics.render()` (one /metrics scrape) with 4 stations of observations and
   40 gauge samples: median and p99.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agent.config.station import DriftConfig  # noqa: E402
from agent.health.drift import DriftMonitor  # noqa: E402
from agent.health.metrics import GaugeSample, Metrics  # noqa: E402
from agent.types import Finding, Inspection, ModelInfo, StageTimings  # noqa: E402

MODEL = ModelInfo("defect", "1", "abc", "CPUExecutionProvider")


def _insp(seq: int) -> Inspection:
    return Inspection("cam1", seq, 0.0, datetime.now(UTC), MODEL,
                      (Finding("ok", 0.9), Finding("scratch", 0.05)), StageTimings())


def _frames(w: int, h: int, n: int) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
    return [np.roll(base, 7 * i, axis=1) for i in range(n)]


def _observe_ms(stride: int, frames: list[np.ndarray], runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        mon = DriftMonitor(DriftConfig(baseline_frames=10, window_frames=10), stride=stride)
        for i, f in enumerate(frames[:20]):  # fill baseline and window first
            mon.observe(f, _insp(i))
        for i, f in enumerate(frames):
            t = time.perf_counter()
            mon.observe(f, _insp(i))
            out.append((time.perf_counter() - t) * 1000)
    return out


def _p99(xs: list[float]) -> float:
    return sorted(xs)[max(0, int(len(xs) * 0.99) - 1)]


def bench_drift(frames: int, runs: int) -> None:
    print("1. DriftMonitor.observe() per frame (ms)")
    print(f"   {'size':>10} {'stride 4 p50':>13} {'p99':>8} {'stride 1 p50':>13} {'p99':>8} "
          f"{'ratio':>7}")
    for w, h in ((640, 480), (1920, 1080)):
        fs = _frames(w, h, frames)
        sub = _observe_ms(4, fs, runs)
        full = _observe_ms(1, fs, runs)
        ratio = statistics.median(sub) / statistics.median(full)
        print(f"   {w}x{h:<5} {statistics.median(sub):13.3f} {_p99(sub):8.3f} "
              f"{statistics.median(full):13.3f} {_p99(full):8.3f} {ratio:7.3f}")


def bench_scrape(runs: int) -> None:
    m = Metrics()
    for s in range(4):
        for i in range(100):
            m.observe_inspection("L1", f"S{s}", _insp(i))
    m.add_gauge_source(lambda: [GaugeSample(f"edge_agent_g{i % 10}", {"k": str(i)}, i, "g")
                                for i in range(40)])
    times = []
    for _ in range(runs * 20):
        t = time.perf_counter()
        m.render()
        times.append((time.perf_counter() - t) * 1000)
    print(f"2. Metrics.render(): p50 {statistics.median(times):.3f} ms, p99 {_p99(times):.3f} ms")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--frames", type=int, default=300)
    p.add_argument("--runs", type=int, default=5)
    args = p.parse_args()
    logging.disable(logging.WARNING)  # tiny windows on noise: drift warnings are expected
    bench_drift(args.frames, args.runs)
    bench_scrape(args.runs)


if __name__ == "__main__":
    main()
