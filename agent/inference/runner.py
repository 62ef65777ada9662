"""ModelRunner: one loaded model; frame -> pre -> session.run -> post -> Inspection.

`infer` never raises: a frame that cannot be inspected (wrong shape or dtype, NaN
output, onnxruntime error) returns an Inspection with `error` set and no findings, is
counted, and is logged once (then at debug until the model recovers).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnxruntime as ort

from agent.config.models import ModelConfig
from agent.inference.errors import FrameError
from agent.inference.manifest import Manifest
from agent.inference.postprocess import Decoder, check_finite
from agent.inference.preprocess import Preprocessor
from agent.inference.stats import LatencyWindow, RunnerStats
from agent.logutil import RepeatLimiter
from agent.types import Finding, Frame, Inspection, ModelInfo, StageTimings

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Prepared:
    """A frame pre-processed for the model (or the reason it could not be)."""

    frame: Frame
    x: np.ndarray | None
    geom: Any
    pre_ms: float
    error: str | None
    by: object = None  # the runner that pre-processed it (a swap between frames re-prepares)


def _describe(exc: Exception) -> str:
    """A FrameError says what is wrong with the frame; anything else is named by its type."""
    return str(exc) if isinstance(exc, FrameError) else f"{type(exc).__name__}: {exc}".strip()


class ModelRunner:
    """Shared by the workers of every station using this model (session.run is thread-safe)."""

    def __init__(self, name: str, session: ort.InferenceSession, manifest: Manifest,
                 input_name: str, pre: Preprocessor, decoder: Decoder, info: ModelInfo,
                 active_providers: list[str], fallback: bool, cfg: ModelConfig,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.name = name
        self.session = session
        self.manifest = manifest
        self.input_name = input_name
        self.output_names: Sequence[str] = [o.name for o in session.get_outputs()]
        self.pre = pre
        self.decoder = decoder
        self.info = info
        self.active_providers = active_providers
        self.fallback = fallback
        self.cfg = cfg
        self.clock = clock
        self._lock = threading.Lock()
        self._warming = threading.Lock()
        self._limiter = RepeatLimiter(log, f"model {name}")
        self._infer_ms = LatencyWindow()
        self._total_ms = LatencyWindow()
        self._runs = self._errors = self._warmups = 0
        self._last_error: str | None = None
        self._last_run = clock()

    # -- warm-up ---------------------------------------------------------------------------

    def warmup(self) -> None:
        """Run the model on a blank input (first runs are 10-20x slower)."""
        x = self.pre.blank()
        for _ in range(max(1, self.cfg.warmup_runs)):
            self.session.run(None, {self.input_name: x})
        with self._lock:
            self._warmups += 1
            self._last_run = self.clock()

    def idle_s(self) -> float:
        with self._lock:
            return self.clock() - self._last_run

    def maybe_rewarm(self) -> bool:
        """Warm up again after `rewarm_after_idle_s` without a frame; True when it did."""
        if self.idle_s() < self.cfg.rewarm_after_idle_s:
            return False
        if not self._warming.acquire(blocking=False):
            return False  # another station's worker is warming this model right now
        try:
            log.debug("model %s: idle for %.0f s, warming up again", self.name, self.idle_s())
            self.warmup()
        except Exception as exc:  # a failing model shows up on the next frame, counted there
            self._limiter.failure("warm-up after idle failed: %s", exc)
            with self._lock:
                self._last_run = self.clock()
        finally:
            self._warming.release()
        return True

    # -- inference -------------------------------------------------------------------------

    def infer(self, frame: Frame) -> Inspection:
        return self.finish(self.prepare(frame))

    def prepare(self, frame: Frame) -> Prepared:
        """Pre-processing alone (a worker may run it while the previous frame is inferred);
        never raises: an error is carried to `finish`."""
        t0 = time.perf_counter()
        x: np.ndarray | None = None
        geom: Any = None
        error: str | None = None
        try:
            x, geom = self.pre(frame.pixels)
        except Exception as exc:  # numpy / OpenCV errors too: this frame only
            error = _describe(exc)
        return Prepared(frame, x, geom, (time.perf_counter() - t0) * 1000.0, error, self)

    def finish(self, p: Prepared) -> Inspection:
        """session.run -> post -> Inspection; the frame's age is taken now, as inference
        starts. Never raises."""
        frame = p.frame
        age_ms = (self.clock() - frame.t_capture) * 1000.0
        findings: tuple[Finding, ...] = ()
        error = p.error
        infer_ms = post_ms = 0.0
        if error is None and p.x is not None:
            t1 = t2 = time.perf_counter()
            try:
                outputs = self.session.run(None, {self.input_name: p.x})
                t2 = time.perf_counter()
                check_finite(outputs, self.output_names)
                findings = self.decoder(outputs, p.geom)
                post_ms = (time.perf_counter() - t2) * 1000.0
            except Exception as exc:  # onnxruntime and numpy errors too: this frame only
                error = _describe(exc)
            infer_ms = (t2 - t1) * 1000.0
        timings = StageTimings(max(0.0, age_ms), p.pre_ms, infer_ms, post_ms)
        self._account(frame, timings, error)
        return self._inspection(frame, findings, timings, error)

    def _account(self, frame: Frame, t: StageTimings, error: str | None) -> None:
        with self._lock:
            self._runs += 1
            self._last_run = self.clock()
            if error is None:
                self._limiter.recovered("inferring again")
            else:
                self._errors += 1
                self._last_error = error
                self._limiter.failure("frame %s#%d not inspected: %s", frame.camera_id,
                                      frame.seq, error)
        if error is None:
            self._infer_ms.add(t.infer_ms)
            self._total_ms.add(t.pre_ms + t.infer_ms + t.post_ms)

    def _inspection(self, frame: Frame, findings: tuple[Finding, ...], timings: StageTimings,
                    error: str | None) -> Inspection:
        shape = np.shape(frame.pixels)
        return Inspection(
            camera_id=frame.camera_id, frame_seq=frame.seq, t_capture=frame.t_capture,
            wall_time=frame.wall_time, model=self.info, findings=() if error else findings,
            timings=timings, frame_shape=(int(shape[0]), int(shape[1])) if len(shape) >= 2 else (0, 0),
            part_id=frame.part_id, truth=frame.truth,
            error=None if error is None else f"model {self.name}: {error}", frame=frame)

    # -- stats -----------------------------------------------------------------------------

    def stats(self) -> RunnerStats:
        p50_i, p99_i = self._infer_ms.percentiles(50, 99)
        p50_t, p99_t = self._total_ms.percentiles(50, 99)
        with self._lock:
            return RunnerStats(self._runs, self._errors, self._last_error, p50_i, p99_i,
                               p50_t, p99_t, self._warmups, self.info.provider, self.fallback)
