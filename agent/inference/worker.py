"""InferenceWorker: one thread per station, from its newest-frame slot to `on_result`.

The worker takes the newest frame; a frame already older than the station's latency
budget when inference would start is dropped and counted (`dropped_late`), never
inspected late. Every inspection, including one that carries an error, goes to
`on_result(key, inspection)`; an exception there is logged once and counted, and the
worker keeps going. When the slot is closed and empty (the source ended or capture
stopped) the worker ends. While idle it re-warms the model after `rewarm_after_idle_s`.

With `prepare_ahead` (the default) a second thread pre-processes the next frame while
the model runs on the current one and hands it over through a one-place buffer: on a
saturated station the model never waits for pre-processing (on 2+ cores), and the frame
it gets is at most one inference older than the newest. The budget check is repeated
when inference starts, so a frame that waited too long is still dropped, not inspected.

A triggered station's worker (`triggered=True`) takes no frame of its own: each
`request(t, timeout, done)` (one per PLC trigger) is served in turn on the worker thread,
with the first frame captured after `t` (waited for until `timeout` seconds after the
request), and `done(inspection)` gets it, or `done(None)` when no such frame came (or the
worker stopped). That frame is the part's only one, so it is inspected whatever its age;
it counts in the worker's stats (inspected, errors, busy, progress) like any other.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from agent.capture.slot import LatestFrame
from agent.inference.runner import ModelRunner, Prepared
from agent.inference.stats import WorkerStats
from agent.logutil import RepeatLimiter
from agent.types import Frame, Inspection

log = logging.getLogger(__name__)

POLL_S = 0.1  # how often an idle or paused worker looks at stop / pause / warm-up
BUSY_WINDOW_S = 10.0
_END = None  # the preparing thread's last hand-over: the source ended (or it crashed)
Done = Callable[[Inspection | None], None]


@dataclass
class Request:
    """Triggered mode: inspect the first frame captured after `after`, waited for until
    `deadline` (both monotonic), and hand it (or None) to `done` on the worker thread.
    `withdrawn`: the caller no longer waits (its trigger gave up): skipped, not inspected."""

    after: float
    deadline: float
    done: Done
    withdrawn: bool = False


class InferenceWorker:
    def __init__(self, key: str, runner: ModelRunner, slot: LatestFrame, budget_ms: float,
                 on_result: Callable[[str, Inspection], None],
                 clock: Callable[[], float] = time.monotonic, prepare_ahead: bool = True,
                 triggered: bool = False) -> None:
        self.key = key
        self.runner = runner
        self.slot = slot
        self.budget_ms = budget_ms
        self.on_result = on_result
        self.clock = clock
        self._cond = threading.Condition()
        self._stopping = False
        self._paused = False
        self._thread: threading.Thread | None = None
        self._preparer: threading.Thread | None = None
        self.prepare_ahead = prepare_ahead and not triggered
        self.triggered = triggered
        self._requests: queue.Queue[Request] = queue.Queue()
        self._ready: queue.Queue[Prepared | None] = queue.Queue(maxsize=1)
        self._late = RepeatLimiter(log, f"station {key}")
        self._late_ahead = RepeatLimiter(log, f"station {key} (preparing)")  # its own thread
        self._callback = RepeatLimiter(log, f"station {key} result handler", logging.ERROR)
        self._inspected = self._dropped_late = self._errors = self._callback_errors = 0
        self._busy: deque[tuple[float, float]] = deque()  # (end time, busy seconds)
        self._started = clock()
        self._last_progress: float | None = None
        self._last_loop = self._started

    # -- control ---------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError(f"inference worker {self.key!r} already started")
        self._started = self._last_loop = self.clock()
        target = (self._run_triggered if self.triggered else
                  self._run_ahead if self.prepare_ahead else self._run)
        self._thread = threading.Thread(target=target, name=f"infer-{self.key}", daemon=True)
        if self.prepare_ahead:
            self._preparer = threading.Thread(target=self._prepare_loop, daemon=True,
                                              name=f"prepare-{self.key}")
            self._preparer.start()
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Finish the frame in progress, then end; waits up to `timeout`."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        deadline = time.monotonic() + timeout
        if self._preparer is not None:
            self._preparer.join(timeout)
        if self._thread is not None:
            self._thread.join(max(0.0, deadline - time.monotonic()))
            if self._thread.is_alive():
                log.error("station %s: inference worker still busy after %.1f s (model %s)",
                          self.key, timeout, self.runner.name)
                return
        self._refuse_requests()  # none is left waiting once the thread has ended

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the worker to end (e.g. after its source ended); True when it has."""
        if self._thread is not None:
            self._thread.join(timeout)
        return self._thread is None or not self._thread.is_alive()

    def use(self, runner: ModelRunner) -> ModelRunner:
        """Inspect the next frame with `runner` (loaded and warmed up); returns the previous
        one. Never waits: the frame in progress finishes on the runner it started with."""
        with self._cond:
            previous, self.runner = self.runner, runner
        return previous

    def pause(self) -> None:
        """Operator pause: frames stay in the slot (the newest replaces older ones)."""
        with self._cond:
            self._paused = True
        log.info("station %s: inspection paused", self.key)

    def resume(self) -> None:
        with self._cond:
            self._paused = False
            self._cond.notify_all()
        log.info("station %s: inspection resumed", self.key)

    def request(self, after: float, timeout: float, done: Done) -> Request:
        """Triggered mode: inspect the first frame captured after `after` (see the module
        docstring); never blocks. `done` runs on the worker thread (or here, once stopped or
        when the thread has died: answered None at once, never left waiting). Set the
        returned request's `withdrawn` when no longer waiting for it."""
        req = Request(after, self.clock() + timeout, done)
        self._requests.put(req)
        ended = self._thread is not None and not self._thread.is_alive()
        if ended or (self._stopping and self._thread is None):
            self._refuse_requests()
        return req

    # -- the thread ------------------------------------------------------------------------

    def _run_triggered(self) -> None:
        """Triggered mode: requests in turn; re-warms while idle (a part after a pause
        must not pay for a cold model)."""
        try:
            while not self._stopping:
                self._last_loop = self.clock()
                try:
                    req = self._requests.get(timeout=POLL_S)
                except queue.Empty:
                    self.runner.maybe_rewarm()
                    continue
                if req.withdrawn:  # its trigger gave up: the next part must not wait for it
                    continue
                frame = self.slot.get_after(req.after, max(0.0, req.deadline - self.clock()))
                insp = None
                if frame is not None:
                    start = self.clock()
                    insp = self.runner.infer(frame)
                    self._count(start, insp)
                _answer(req, insp)
        except Exception:  # a bug must not end inspection silently
            log.exception("station %s: inference worker crashed", self.key)
        finally:
            self._refuse_requests()

    def _refuse_requests(self) -> None:
        while True:
            try:
                _answer(self._requests.get_nowait(), None)
            except queue.Empty:
                return

    def _run(self) -> None:
        try:
            self._from_slot(self._handle, beat=True)
        except Exception:  # a bug must not end inspection silently
            log.exception("station %s: inference worker crashed", self.key)

    def _prepare_loop(self) -> None:
        """prepare_ahead: newest frame -> pre-processed -> the one-place buffer."""
        try:
            self._from_slot(self._prepare, beat=False)  # the inference thread beats
        except Exception:  # a bug must not end inspection silently
            log.exception("station %s: frame preparation crashed", self.key)
        self._hand_over(_END)

    def _from_slot(self, handle: Callable[[Frame], None], beat: bool) -> None:
        """Newest frame -> `handle` until stopping or the source ended; re-warms while idle.
        `beat`: this is the thread whose loop `stats().last_loop` reports."""
        while self._wait_unpaused():
            if beat:
                self._last_loop = self.clock()
            frame = self.slot.get(timeout=POLL_S)
            if frame is not None:
                handle(frame)
            elif self.slot.closed and not self.slot.pending:
                log.info("station %s: frame source closed; inference worker ends", self.key)
                return
            elif self._ready.empty():  # (always, with one thread) nothing prepared waits
                self.runner.maybe_rewarm()

    def _prepare(self, frame: Frame) -> None:
        if not self._too_old(frame, self.clock(), self._late_ahead):
            self._hand_over(self.runner.prepare(frame))

    def _hand_over(self, item: Prepared | None) -> None:
        while True:
            try:
                self._ready.put(item, timeout=POLL_S)
                return
            except queue.Full:
                if self._stopping:
                    return

    def _run_ahead(self) -> None:
        """prepare_ahead: the buffer -> session.run -> post -> on_result."""
        try:
            while self._wait_unpaused():
                self._last_loop = self.clock()
                try:
                    item = self._ready.get(timeout=POLL_S)
                except queue.Empty:
                    continue
                if item is _END:
                    return
                start = self.clock()
                if not self._too_old(item.frame, start, self._late):
                    runner = self.runner  # once per frame: a swap takes effect between frames
                    if item.by is not runner:
                        item = runner.prepare(item.frame)
                    self._inspect(start, runner.finish(item))
        except Exception:  # a bug must not end inspection silently
            log.exception("station %s: inference worker crashed", self.key)

    def _wait_unpaused(self) -> bool:
        """False once stopping; blocks while paused."""
        with self._cond:
            while self._paused and not self._stopping:
                self._last_loop = self.clock()
                self._cond.wait(POLL_S)
            return not self._stopping

    def _too_old(self, frame: Frame, now: float, late: RepeatLimiter) -> bool:
        """True (counted, logged) when the frame is past the budget; called from either
        thread (each with its own limiter), hence the lock around the count."""
        age_ms = (now - frame.t_capture) * 1000.0
        if age_ms <= self.budget_ms:
            late.recovered("frames within the latency budget again")
            return False
        with self._cond:
            self._dropped_late += 1
        late.failure("dropping frames older than the latency budget when inference "
                           "would start (frame %s#%d: %.1f ms > %.1f ms)",
                           frame.camera_id, frame.seq, age_ms, self.budget_ms)
        return True

    def _handle(self, frame: Frame) -> None:
        start = self.clock()
        if not self._too_old(frame, start, self._late):
            self._inspect(start, self.runner.infer(frame))

    def _inspect(self, start: float, inspection: Inspection) -> None:
        self._deliver(inspection)
        self._count(start, inspection)

    def _count(self, start: float, inspection: Inspection) -> None:
        if inspection.error is not None:
            self._errors += 1
        end = self.clock()
        self._inspected += 1
        self._last_progress = end
        with self._cond:
            self._busy.append((end, end - start))

    def _deliver(self, inspection: Inspection) -> None:
        try:
            self.on_result(self.key, inspection)
        except Exception as exc:
            self._callback_errors += 1
            self._callback.failure("failed on frame %s#%d: %r", inspection.camera_id,
                                   inspection.frame_seq, exc)
        else:
            self._callback.recovered()

    # -- stats -----------------------------------------------------------------------------

    def _busy_fraction(self, now: float) -> float:
        with self._cond:
            while self._busy and self._busy[0][0] < now - BUSY_WINDOW_S:
                self._busy.popleft()
            busy = sum(b for _, b in self._busy)
        span = min(BUSY_WINDOW_S, now - self._started)
        return min(1.0, busy / span) if span > 0 else 0.0

    def stats(self) -> WorkerStats:
        now = self.clock()
        running = self._thread is not None and self._thread.is_alive()
        if self._preparer is not None:
            running = running and self._preparer.is_alive()
        return WorkerStats(self._inspected, self._dropped_late, self._errors,
                           self._callback_errors, self._busy_fraction(now), self._last_progress,
                           self._last_loop, self._paused, running)


def _answer(req: Request, insp: Inspection | None) -> None:
    try:
        req.done(insp)
    except Exception:  # the caller's hand-over must not end the worker
        log.exception("triggered inspection: result hand-over failed")
