"""Plain statistics of a model runner and an inference worker (health collects them)."""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass

import numpy as np


class LatencyWindow:
    """The last `size` samples (ms); percentiles on demand. Thread-safe."""

    def __init__(self, size: int = 1024) -> None:
        self._samples: deque[float] = deque(maxlen=size)
        self._lock = threading.Lock()

    def add(self, ms: float) -> None:
        with self._lock:
            self._samples.append(ms)

    def percentiles(self, *qs: float) -> tuple[float | None, ...]:
        with self._lock:
            data = np.fromiter(self._samples, dtype=np.float64)
        if not data.size:
            return tuple(None for _ in qs)
        return tuple(float(v) for v in np.percentile(data, qs))


@dataclass(frozen=True)
class RunnerStats:
    """One model session. Latencies are over the last 1024 frames; None before the first."""

    runs: int  # frames inferred (successful or not)
    errors: int  # frames that ended in Inspection.error
    last_error: str | None
    p50_infer_ms: float | None  # session.run only
    p99_infer_ms: float | None
    p50_total_ms: float | None  # pre + session.run + post
    p99_total_ms: float | None
    warmups: int  # warm-up rounds (at load and after idle)
    provider: str  # the provider that actually runs
    fallback: bool  # the first-choice provider is not active


@dataclass(frozen=True)
class WorkerStats:
    """One station's inference worker."""

    inspected: int  # frames inferred and handed on (errors included)
    dropped_late: int  # frames older than the latency budget when inference would start
    errors: int  # inspections that carried an error
    callback_errors: int  # on_result raised (logged once, counted, worker kept going)
    busy_fraction: float  # share of the last ~10 s spent inferring and handing on
    last_progress: float | None  # monotonic time of the last finished frame
    last_loop: float  # monotonic time the worker loop last turned (alive even without frames)
    paused: bool
    running: bool
