"""Camera state machine with injected faults a real peer cannot produce on demand
(open failing N times, a driver raising, frozen pictures, a live rate). Real sources
are exercised in tests/integration/test_capture_*.py."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import numpy as np

from agent.capture.base import Grab, SourceError, SourceState
from agent.capture.camera import Camera
from agent.capture.events import CameraEvent
from agent.capture.sources.synthetic_source import SyntheticCameraConfig
from tests.support.camera_events import Events

S = SourceState


def _opts(**kw: object) -> SyntheticCameraConfig:
    base: dict[str, object] = dict(
        type="synthetic", stall_after_ms=150, reconnect_initial_ms=20, reconnect_max_ms=100,
        frozen_after_s=0.2,
    )
    base.update(kw)
    return SyntheticCameraConfig.model_validate(base)


class FakeSource:
    """Scripted faults: `open_failures` failed opens, then frames; `frozen` repeats one image."""

    def __init__(self, open_failures: int = 0, live: bool = False, frozen: bool = False,
                 open_exc: type[Exception] = SourceError, period: float = 0.005) -> None:
        self.camera_id = "fake"
        self.description = "fake source"
        self.live = live
        self.open_failures = open_failures
        self.open_exc = open_exc
        self.frozen = frozen
        self.period = period
        self.opens = 0
        self.n = 0

    def open(self) -> None:
        self.opens += 1
        if self.opens <= self.open_failures:
            raise self.open_exc(f"fake open failure {self.opens}")

    def read(self, clock: Callable[[], float]) -> Grab | None:
        time.sleep(self.period)
        self.n += 1
        value = 0 if self.frozen else self.n % 256
        return Grab(np.full((8, 8, 3), value, np.uint8), clock())

    def close(self) -> None:
        pass


def _start(src: FakeSource, **opts: object) -> tuple[Camera, Events]:
    cam = Camera("cam1", src, _opts(**opts))
    ev = Events()
    cam.add_listener(ev)
    cam.start()
    return cam, ev


def _reached(state: S) -> Callable[[list[CameraEvent]], bool]:
    return lambda items: any(e.state is state and e.previous is not state for e in items)


def test_open_failures_retry_with_backoff_then_stream() -> None:
    src = FakeSource(open_failures=3)
    cam, ev = _start(src)
    slot = cam.subscribe()
    assert ev.wait(_reached(S.STREAMING))
    cam.stop()
    assert ev.transitions() == [
        (S.CONNECTING, S.RECONNECTING), (S.RECONNECTING, S.STREAMING), (S.STREAMING, S.STOPPED)
    ]
    errors = [e for e in ev.items if e.error]
    assert [e.message for e in errors] == [
        f"camera 'cam1' (fake source): cannot open: fake open failure {i}" for i in (1, 2, 3)
    ]
    st = cam.stats()
    assert (st.reconnects, st.open_errors, st.state) == (3, 3, S.STOPPED)
    assert slot.closed


def test_gives_up_after_max_reconnects_and_closes_slots() -> None:
    src = FakeSource(open_failures=100)
    cam, ev = _start(src, max_reconnects=2)
    slot = cam.subscribe()
    assert ev.wait(_reached(S.FAILED))
    assert slot.get(timeout=5) is None  # woken by close, not by timeout
    cam.stop()
    assert src.opens == 3  # first try + 2 reconnects
    assert cam.state is S.FAILED
    assert "giving up after 2 failed reconnect(s)" in ev.items[-2].message


def test_unexpected_driver_exception_is_an_event_not_a_crash() -> None:
    src = FakeSource(open_failures=1, open_exc=RuntimeError)
    cam, ev = _start(src)
    assert ev.wait(_reached(S.STREAMING))
    cam.stop()
    assert "cannot open: RuntimeError: fake open failure 1" in ev.items[0].message


def test_failing_listener_does_not_stop_capture() -> None:
    def broken(event: CameraEvent) -> None:
        raise ZeroDivisionError("listener bug")

    cam = Camera("cam1", FakeSource(), _opts())
    cam.add_listener(broken)
    slot = cam.subscribe()
    cam.start()
    first = slot.get(timeout=5)
    second = slot.get(timeout=5)
    cam.stop()
    assert first is not None and second is not None and second.seq > first.seq


def test_frozen_stream_is_stalled_then_reconnected() -> None:
    src = FakeSource(frozen=True)
    cam, ev = _start(src)
    assert ev.wait(lambda items: sum(e.state is S.RECONNECTING for e in items) >= 1
                   and src.opens >= 2)
    cam.stop()
    stalled = [e for e in ev.items if e.state is S.STALLED]
    assert stalled and "frozen: the same picture for" in stalled[0].message
    assert ev.transitions()[:3] == [
        (S.CONNECTING, S.STREAMING), (S.STREAMING, S.STALLED), (S.STALLED, S.RECONNECTING)
    ]


def test_a_freeze_holds_across_reconnects_until_the_picture_changes() -> None:
    src = FakeSource(frozen=True)
    cam, ev = _start(src)
    slot = cam.subscribe()
    assert ev.wait(_reached(S.STALLED))
    since = cam.frozen_since
    first = slot.get(timeout=1)
    while slot.pending:
        slot.get(timeout=1)
    assert since is not None and first is not None and first.t_capture >= since
    assert ev.wait(lambda items: src.opens >= 4)  # reconnected, and still the same picture
    assert not slot.pending  # no frozen frame was handed out after the freeze was found
    assert cam.frozen_since == since  # the freeze counts from the first frozen frame
    moves = ev.transitions()
    assert moves[:2] == [(S.CONNECTING, S.STREAMING), (S.STREAMING, S.STALLED)]
    assert set(moves[2:]) == {(S.STALLED, S.RECONNECTING), (S.RECONNECTING, S.STALLED)}
    src.frozen = False  # the picture changes: streaming again, at once
    assert ev.wait(lambda items: items[-1].state is S.STREAMING)
    assert slot.get(timeout=1) is not None and cam.frozen_since is None
    cam.stop()


def test_live_source_is_decimated_to_target_fps_and_skips_counted() -> None:
    src = FakeSource(live=True, period=0.002)
    cam = Camera("cam1", src, _opts(fps=20))
    slot = cam.subscribe()  # before start: a frame published to no slot would not add up
    cam.start()
    frames = [slot.get(timeout=5) for _ in range(5)]
    cam.stop()
    st = cam.stats()
    assert all(f is not None for f in frames)
    assert st.skipped > 0
    assert st.captured == st.skipped + slot.put_count
    assert slot.put_count == slot.delivered + slot.dropped + int(slot.pending)


def test_transform_error_is_a_read_error_and_stalls() -> None:
    cam, ev = _start(FakeSource(), roi=(0, 0, 100, 100))
    assert ev.wait(_reached(S.STALLED))
    cam.stop()
    assert cam.stats().read_errors >= 1
    assert any("roi [0, 0, 100, 100] does not fit the 8x8 frame" in e.message for e in ev.items)


def test_state_shows_stalled_while_a_read_blocks() -> None:
    gate = threading.Event()

    class Blocking(FakeSource):
        def read(self, clock: Callable[[], float]) -> Grab | None:
            if self.n >= 2:
                gate.wait(10)
            return super().read(clock)

    cam, ev = _start(Blocking())
    assert ev.wait(_reached(S.STREAMING))
    deadline = time.monotonic() + 10
    while cam.state is not S.STALLED and time.monotonic() < deadline:
        time.sleep(0.02)
    assert cam.state is S.STALLED
    assert cam.stats().state is S.STALLED
    gate.set()
    cam.stop()


def test_slow_read_counts_as_read_error_but_keeps_the_frame() -> None:
    cam, ev = _start(FakeSource(period=0.08), read_timeout_ms=50, stall_after_ms=2000)
    slot = cam.subscribe()
    frame = slot.get(timeout=5)
    cam.stop()
    assert frame is not None
    assert cam.stats().read_errors >= 1
    assert any("(read_timeout_ms 50)" in e.message and e.error for e in ev.items)


def test_stop_from_a_listener_does_not_deadlock() -> None:
    cam = Camera("cam1", FakeSource(), _opts())
    cam.add_listener(lambda e: cam.stop() if e.state is S.STREAMING else None)
    slot = cam.subscribe()
    cam.start()
    while slot.get(timeout=5) is not None:
        pass
    cam.stop()
    assert cam.state is S.STOPPED
