"""One station at run time: its camera slot, model runner, worker and monitor.

Every station has an InferenceWorker thread. A continuous station's worker inspects
the newest frames and hands every Inspection to `on_inspection` on the asyncio loop; a
triggered station's worker inspects one frame captured after each PLC trigger and
`inspect_after` returns it to the trigger's caller (agent.pipeline.flow), which
hands it on the same way.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from agent.alarms import alarm_text
from agent.capture.base import SourceState
from agent.capture.camera import Camera
from agent.capture.slot import LatestFrame
from agent.config.station import StationConfig
from agent.inference.session import ModelRunner
from agent.inference.worker import InferenceWorker
from agent.types import Inspection

# returns True when the inspection sent a command to a PLC task (the loop must let it run)
InspectionHandler = Callable[["StationRuntime", Inspection], bool | None]


@dataclass
class StationMonitor:
    """Is inspection possible at this station right now, and if not, why?"""

    stall_s: float
    error_limit: int = 5
    camera_state: SourceState = SourceState.CONNECTING
    last_good: float = field(default_factory=time.monotonic)
    consecutive_errors: int = 0
    overruns: int = 0
    last_reason: str | None = None
    recent: deque[tuple[float, float, float]] = field(default_factory=lambda: deque(maxlen=300))

    def on_inspection(self, insp: Inspection, budget_ms: float, now: float) -> None:
        t = insp.timings
        self.recent.append((t.frame_age_ms, t.infer_ms, t.total_ms))
        if insp.error:
            self.consecutive_errors += 1
            return
        self.consecutive_errors = 0
        self.last_good = now
        total = insp.timings.total_ms
        self.overruns = self.overruns + 1 if total > budget_ms else 0

    def impossible_reason(self, now: float, triggered: bool) -> str | None:
        if self.camera_state not in (SourceState.STREAMING, SourceState.CONNECTING):
            return alarm_text("camera_state", state=self.camera_state.value)
        if self.consecutive_errors >= self.error_limit:
            return alarm_text("model_failing", n=self.consecutive_errors)
        if not triggered and now - self.last_good > self.stall_s:
            return alarm_text("no_inspection", seconds=f"{now - self.last_good:.1f}")
        if self.overruns >= 3 * self.error_limit:
            return alarm_text("budget_overrun", n=self.overruns)
        return None


class StationRuntime:
    def __init__(self, line: str, name: str, cfg: StationConfig, camera: Camera,
                 runner: ModelRunner, on_inspection: InspectionHandler,
                 loop: asyncio.AbstractEventLoop) -> None:
        self.line = line
        self.name = name
        self.key = f"{line}/{name}"
        self.cfg = cfg
        self.camera = camera
        self.runner = runner
        self.slot: LatestFrame = camera.subscribe()
        self.loop = loop
        self._on_inspection = on_inspection
        self._handed: deque[Inspection] = deque()  # worker -> loop, in order
        self._wake = threading.Lock()
        self._woken = False  # a drain is scheduled on the loop and has not started yet
        stall_s = max(2.0, 5 * cfg.latency_budget_ms / 1000.0)
        self.monitor = StationMonitor(stall_s=stall_s)
        self.worker = InferenceWorker(self.key, runner, self.slot, cfg.latency_budget_ms,
                                      self._from_worker, prepare_ahead=cfg.prepare_ahead,
                                      triggered=cfg.mode == "triggered")
        self.paused = False
        self.started = time.monotonic()

    @property
    def triggered(self) -> bool:
        return self.cfg.mode == "triggered"

    def _from_worker(self, _key: str, insp: Inspection) -> None:
        """Runs on the worker thread: hand over to the loop, never block. One wake-up of
        the loop per batch: inspections handed while a drain is already scheduled join
        it (each wake-up is a write to the loop's self-pipe and a GIL hand-over)."""
        self._handed.append(insp)
        with self._wake:
            if self._woken:
                return
            self._woken = True
        try:
            self.loop.call_soon_threadsafe(self._drain)
        except RuntimeError:  # loop closed during shutdown: the frame is dropped
            pass

    def use_runner(self, runner: ModelRunner) -> ModelRunner:
        """Hot swap: the next frame (continuous) or part (triggered) uses `runner`."""
        previous, self.runner = self.runner, runner
        self.worker.use(runner)
        return previous

    def _drain(self) -> None:
        """On the loop: every inspection handed so far, in order. After one that sent a
        command the rest wait behind the PLC task it woke (commands go first; when each
        inspection was its own callback, those already queued ran before it)."""
        with self._wake:
            self._woken = False
        self._drain_rest()

    def _drain_rest(self) -> None:
        handed = self._handed
        try:
            while handed:
                if self._on_inspection(self, handed.popleft()) and handed:
                    self.loop.call_soon(self._drain_rest)
                    return
        except Exception:  # logged by the loop; the rest of the batch is not left behind
            if handed:
                self.loop.call_soon(self._drain_rest)
            raise

    def start(self) -> None:
        self.worker.start()

    def stop(self, timeout: float = 5.0) -> None:
        self.worker.stop(timeout)

    def pause(self) -> None:
        """Continuous: the worker waits. Triggered: parts are still answered (the PLC waits
        for them); only the station's impossible-inspection alarms pause."""
        self.paused = True
        if not self.triggered:
            self.worker.pause()

    def resume(self) -> None:
        self.paused = False
        self.monitor.last_good = time.monotonic()
        if not self.triggered:
            self.worker.resume()

    def impossible_since(self) -> float | None:
        """When inspection became impossible, where known before it was noticed: a frozen
        camera's picture stopped changing `frozen_after_s` before the freeze was found."""
        if self.monitor.camera_state is SourceState.STREAMING:
            return None
        return self.camera.frozen_since

    def last_progress(self) -> float:
        """Monotonic time of the last finished inspection (for the systemd watchdog)."""
        if not self.triggered and not self.paused:
            last = self.worker.stats().last_progress
            return self.started if last is None else last
        return time.monotonic()  # triggered or paused: progress is driven by the PLC/operator

    async def inspect_after(self, t_trigger: float) -> Inspection | None:
        """Triggered mode: the station's worker inspects the first frame captured after the
        trigger (None when none came within `trigger.frame_ms`)."""
        answer: asyncio.Future[Inspection | None] = self.loop.create_future()

        def done(insp: Inspection | None) -> None:  # on the worker thread
            try:
                self.loop.call_soon_threadsafe(_settle, answer, insp)
            except RuntimeError:  # loop closed during shutdown
                pass

        req = self.worker.request(t_trigger, self.cfg.trigger.frame_ms / 1000.0, done)
        try:
            return await answer
        finally:  # answered, or the trigger gave up (cancelled): skipped if still queued
            req.withdrawn = True


def _settle(answer: asyncio.Future[Inspection | None], insp: Inspection | None) -> None:
    if not answer.done():  # the trigger may have given up on it (cancelled)
        answer.set_result(insp)
