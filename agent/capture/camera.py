"""One capture thread per camera: read the source, hand the newest frame to every consumer.

The thread is a small supervisor loop: connect (with capped backoff and jitter when
reconnecting), stream until the source stalls, freezes or ends, close, repeat. It
never raises: every failure becomes a counted error and a `CameraEvent`.

A frozen picture (the same content for `frozen_after_s`) is never handed out, and the
freeze holds across reconnects until the picture really changes: reconnecting does
not make a frozen camera "streaming" again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import numpy as np

from agent.backoff import Backoff
from agent.capture.base import FrameSource, Grab, Idle, SourceError, SourceState
from agent.capture.events import CameraEvent, CameraStats
from agent.capture.freeze import FreezeDetector
from agent.capture.pacing import FpsMeter, Pacer
from agent.capture.slot import LatestFrame
from agent.capture.sources.camera_options import CameraOptions
from agent.capture.transform import FrameTransform
from agent.logutil import RepeatLimiter
from agent.types import Frame, utc_now

__all__ = ["Camera", "CameraEvent", "CameraStats", "Listener"]

log = logging.getLogger(__name__)

Listener = Callable[[CameraEvent], None]
_ERROR_PAUSE_S = 0.02  # between failed reads, so a dead source does not spin a core
_FROZEN_PAUSE_S = 0.02  # between frozen frames of an unpaced recording (nothing paces it)


class _Stop(Exception):
    """Internal: stop() was called while the thread waited."""


class Camera:
    """A camera: one source, one capture thread, one newest-frame slot per consumer."""

    def __init__(
        self,
        name: str,
        source: FrameSource,
        options: CameraOptions,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.source = source
        self.options = options
        self._clock = clock
        self._slots: list[LatestFrame] = []
        self._listeners: list[Listener] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._state = SourceState.CONNECTING
        self._lock = threading.Lock()
        self._transform = FrameTransform(options.rotate, options.roi)
        self._pacer = Pacer(options.fps)
        self._meter = FpsMeter()
        self._freeze = FreezeDetector(options.freeze.max_changed, options.freeze.ignore)
        self._frozen_since: float | None = None
        self._backoff = Backoff(options.reconnect_initial_ms / 1000, options.reconnect_max_ms / 1000)
        self._errors = RepeatLimiter(log, f"camera {name!r} ({source.description})")
        self._seq = 0
        self._captured = self._skipped = self._read_errors = 0
        self._reconnects = self._open_errors = self._failed_reconnects = 0
        self._last_t: float | None = None
        self._streak_t = 0.0  # when the current run of frames (or the attempt) began
        self._alive_t = float("-inf")  # last IDLE read: a triggered source waiting, healthy

    # ----- public API -----

    def subscribe(self) -> LatestFrame:
        """A new newest-frame slot for one consumer (call before start())."""
        slot = LatestFrame()
        with self._lock:
            self._slots.append(slot)
        return slot

    def add_listener(self, fn: Listener) -> None:
        """`fn(event)` is called from the capture thread on every state change and error."""
        with self._lock:
            self._listeners.append(fn)

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError(f"camera {self.name!r} already started")
        self._thread = threading.Thread(target=self._run, name=f"capture-{self.name}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the capture thread, wait up to `timeout` for it, close every slot."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("camera %r: capture thread still blocked in %s after %.1f s",
                            self.name, self.source.description, timeout)
        self._close_slots()

    @property
    def state(self) -> SourceState:
        """The current state; a blocked read shows as stalled once `stall_after_ms` passed."""
        state = self._state
        if state is SourceState.STREAMING and self._since_frame() > self._stall_after_s:
            return SourceState.STALLED
        return state

    @property
    def frozen_since(self) -> float | None:
        """While frozen: when (clock time) the picture stopped changing; else None."""
        return self._frozen_since

    def stats(self) -> CameraStats:
        now = self._clock()
        with self._lock:
            dropped = sum(s.dropped for s in self._slots)
        last = self._last_t
        return CameraStats(
            captured=self._captured,
            dropped=dropped,
            read_errors=self._read_errors,
            reconnects=self._reconnects,
            fps=self._meter.rate(now),
            last_frame_age_s=None if last is None else now - last,
            state=self.state,
            skipped=self._skipped,
            open_errors=self._open_errors,
        )

    # ----- the capture thread -----

    def _run(self) -> None:
        final, why = SourceState.STOPPED, "stopped"
        try:
            final = self._supervise()
            why = "end of source" if final is SourceState.STOPPED else "gave up reconnecting"
        except _Stop:
            pass
        except Exception as exc:  # a bug must not kill silently: report, end as failed
            log.exception("camera %r: capture thread crashed", self.name)
            self._error(f"capture thread crashed: {exc!r}")
            final, why = SourceState.FAILED, "capture thread crashed"
        finally:
            self._safe_close_source()
            self._set_state(final, why, error=final is SourceState.FAILED)
            self._close_slots()

    def _supervise(self) -> SourceState:
        """connect -> stream -> close, until stopped, ended or out of reconnects."""
        first = True
        while True:
            if not self._connect(first):
                return SourceState.FAILED
            first = False
            ended = self._stream()
            self._safe_close_source()
            if ended:
                return SourceState.STOPPED

    def _connect(self, first: bool) -> bool:
        """Open the source; retry with backoff. False when max_reconnects is used up."""
        while True:
            if not first:
                if not self._wait_before_reconnect():
                    return False
            first = False
            self._streak_t = self._clock()
            try:
                self.source.open()
                self._streak_t = self._clock()  # the stall clock starts once it is open
                return True
            except Exception as exc:  # SourceError, or anything a driver throws
                self._open_errors += 1
                self._error(f"cannot open: {_reason(exc)}")
                self._safe_close_source()

    def _wait_before_reconnect(self) -> bool:
        limit = self.options.max_reconnects
        if limit is not None and self._failed_reconnects >= limit:
            self._error(f"giving up after {limit} failed reconnect(s)")
            return False
        delay = self._backoff.next_delay()
        self._set_state(SourceState.RECONNECTING, f"reconnecting in {delay:.2f} s")
        self._sleep(delay)
        self._reconnects += 1
        self._failed_reconnects += 1  # cleared by the first frame after the reconnect
        return True

    def _stream(self) -> bool:
        """Read until the source ends (True) or stalls/freezes (False: reconnect)."""
        self._pacer.reset()  # the freeze detector keeps its reference: a freeze outlives this
        while True:
            self._sleep(self._pacer.delay(self._clock()) if not self.source.live else 0.0)
            self._wait_for_consumers()
            t_read = self._clock()
            try:
                grab = self.source.read(self._clock)
            except Exception as exc:
                if self._read_failed(exc):
                    return False
                continue
            if grab is None:
                return True
            if isinstance(grab, Idle):
                self._idle()
                continue
            self._check_read_time(self._clock() - t_read)
            if not self._handle(grab):
                return False

    def _read_failed(self, exc: BaseException) -> bool:
        """Count a failed read; True once the camera has been without a frame too long."""
        self._read_errors += 1
        self._error(f"read failed: {_reason(exc)}")
        if self._since_frame() > self._stall_after_s:
            self._set_state(SourceState.STALLED,
                            f"no frame for {self._since_frame():.1f} s", error=True)
            return True
        self._sleep(_ERROR_PAUSE_S)
        return False

    def _check_read_time(self, seconds: float) -> None:
        """A read slower than read_timeout_ms counts as a read error (its frame is kept)."""
        limit_ms = self.options.read_timeout_ms
        if seconds * 1000 > limit_ms:
            self._read_errors += 1
            self._error(f"read took {seconds * 1000:.0f} ms (read_timeout_ms {limit_ms})")

    def _handle(self, grab: Grab) -> bool:
        """Check, transform and publish one grab; False to reconnect (frozen)."""
        self._captured += 1
        frozen_s = self._freeze.update(grab.image, grab.t_grab)
        if frozen_s > self.options.frozen_after_s:
            return self._frozen(frozen_s, grab.t_grab)
        if self.source.live and not self._pacer.admit(grab.t_grab):
            self._skipped += 1
            return True
        if not self.source.live:
            self._pacer.admit(grab.t_grab)
        try:
            image = self._transform.apply(grab.image)
        except SourceError as exc:
            return not self._read_failed(exc)
        self._publish(grab, image)
        return True

    def _frozen(self, frozen_s: float, t: float) -> bool:
        """A frozen frame is dropped. Reconnect at once when the freeze is found, then
        after every `frozen_after_s` of the same picture on a fresh connection."""
        if self._frozen_since is None or self._state is not SourceState.STALLED:
            self._frozen_since = self._freeze.since
            self._set_state(SourceState.STALLED,
                            f"frozen: the same picture for {frozen_s:.1f} s", error=True)
        if not self.source.live:  # a recording keeps its pace (none given: a short pause)
            self._pacer.admit(t)
            if self.options.fps is None:
                self._sleep(_FROZEN_PAUSE_S)
        return self._clock() - self._streak_t <= self.options.frozen_after_s

    def _publish(self, grab: Grab, image: np.ndarray) -> None:
        self._seq += 1
        frame = Frame(
            pixels=image,
            camera_id=self.name,
            seq=self._seq,
            t_capture=grab.t_grab,
            wall_time=utc_now(),
            part_id=grab.part_id,
            truth=grab.truth,
        )
        self._last_t = grab.t_grab
        self._meter.tick(grab.t_grab)
        for slot in self._snapshot_slots():
            slot.put(frame)
        if self._state is not SourceState.STREAMING:
            self._streaming()

    def _idle(self) -> None:
        """A triggered source is healthy and waits for its trigger: not stalled."""
        self._alive_t = self._clock()
        if self._state is not SourceState.STREAMING:
            self._streaming()

    def _streaming(self) -> None:
        self._frozen_since = None
        self._backoff.reset()
        self._failed_reconnects = 0
        self._errors.recovered("streaming again")
        self._set_state(SourceState.STREAMING, "streaming")

    # ----- helpers -----

    @property
    def _stall_after_s(self) -> float:
        return self.options.stall_after_ms / 1000

    def _since_frame(self) -> float:
        """Seconds since the last frame, or since this (re)connect if that is later."""
        last = self._last_t
        ref = self._streak_t if last is None else max(last, self._streak_t)
        return self._clock() - max(ref, self._alive_t)

    def _wait_for_consumers(self) -> None:
        """An unpaced recording (file, folder, synthetic without fps) is read at the pace
        of its consumers: decoding frames only to drop them would take the CPU that
        inference needs. Live sources never wait; the wait is bounded by half the stall
        time, so a consumer that stopped taking frames never makes the camera look stalled
        (the frame read then replaces the pending one and counts as dropped)."""
        if self.source.live or self.options.fps is not None:
            return
        deadline = self._clock() + self._stall_after_s / 2
        for slot in list(self._slots):
            while slot.pending and not self._stop.is_set():
                remaining = deadline - self._clock()
                if remaining <= 0 or slot.wait_taken(min(remaining, 0.05)):
                    break

    def _sleep(self, seconds: float) -> None:
        if self._stop.wait(seconds) if seconds > 0 else self._stop.is_set():
            raise _Stop

    def _set_state(self, state: SourceState, message: str, error: bool = False) -> None:
        previous, self._state = self._state, state
        if state is previous and not error:
            return
        log.log(logging.WARNING if error else logging.INFO, "camera %r (%s): %s -> %s: %s",
                self.name, self.source.description, previous, state, message)
        self._emit(state, previous, message, error)

    def _error(self, message: str) -> None:
        self._errors.failure("%s", message)
        self._emit(self._state, self._state, message, True)

    def _emit(self, state: SourceState, previous: SourceState, message: str, error: bool) -> None:
        text = f"camera {self.name!r} ({self.source.description}): {message}"
        event = CameraEvent(self.name, state, previous, text, utc_now(), error)
        with self._lock:
            listeners = tuple(self._listeners)
        for fn in listeners:
            try:
                fn(event)
            except Exception:
                log.exception("camera %r: event listener %r failed", self.name, fn)

    def _snapshot_slots(self) -> tuple[LatestFrame, ...]:
        with self._lock:
            return tuple(self._slots)

    def _close_slots(self) -> None:
        for slot in self._snapshot_slots():
            slot.close()

    def _safe_close_source(self) -> None:
        try:
            self.source.close()
        except Exception as exc:
            log.debug("camera %r: closing %s failed: %r", self.name, self.source.description, exc)


def _reason(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, SourceError) else f"{type(exc).__name__}: {exc}"
