"""The console's live view: nothing held or encoded without a viewer; drawn, then encoded,
on its own thread while one watches; viewers counted and forgotten."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

import cv2
import numpy as np

from agent.types import Finding, Frame, Inspection, ModelInfo, Result, StageTimings, Verdict
from agent.web.live import IDLE_S, LiveEncoder, Viewers, viewer_id
from agent.web.tap import FrameTap

KEY = "L1/S1"


def _insp(seq: int, findings: tuple[Finding, ...] = ()) -> Inspection:
    px = np.full((120, 160, 3), 90, np.uint8)
    now = datetime.now(UTC)
    return Inspection("cam", seq, 0.0, now, ModelInfo("m", "1", "x", "CPU"), findings,
                      StageTimings(), (120, 160), frame=Frame(px, "cam", seq, 0.0, now))


def _verdict(seq: int, result: Result = Result.NG, late: bool = False) -> Verdict:
    return Verdict("L1", "S1", "cam", result, seq, budget_exceeded=late)


def _wait(cond, timeout: float = 3.0) -> None:  # type: ignore[no-untyped-def]
    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.01)


def test_tap_holds_nothing_while_nobody_watches() -> None:
    tap = FrameTap()
    tap.on_inspection(KEY, _insp(1))
    tap.on_verdict(_verdict(1))
    assert tap.latest() == {}
    tap.watching = True
    tap.on_inspection(KEY, _insp(2))
    assert tap.latest()[KEY].inspection.frame_seq == 2
    tap.stop_watching()
    assert tap.latest() == {} and not tap.watching


def test_encodes_on_its_own_thread_only_while_watched() -> None:
    tap = FrameTap()
    threads: list[str] = []
    enc = LiveEncoder(tap, fps=50, quality=80,
                      station_info=lambda k: (threads.append(threading.current_thread().name)
                                              or {"crack": 0.5}, [(0.1, 0.1, 0.9, 0.9)]))
    enc.start()
    try:
        time.sleep(0.2)
        assert enc.encoded == {} and not tap.watching  # nobody asked: idle
        assert enc.request(KEY, "v1") is None  # the first request wakes it
        tap.on_verdict(_verdict(5, late=True))
        tap.on_inspection(KEY, _insp(5, (Finding("crack", 0.9, (20, 20, 80, 70)),)))
        _wait(lambda: enc.snapshot(KEY) is not None)
        snap = enc.snapshot(KEY)
        assert snap is not None and snap.seq == 5 and snap.banner == "LATE"
        img = cv2.imdecode(np.frombuffer(snap.jpeg, np.uint8), cv2.IMREAD_COLOR)
        assert img.shape == (120, 160, 3)
        assert img[45, 20, 2] > 150 and img[45, 20, 0] < 120  # the red box edge was drawn
        assert set(threads) == {"console-live"}
        time.sleep(0.1)
        assert enc.encoded[KEY] == 1  # the same frame is not encoded again
        tap.on_verdict(_verdict(6, Result.OK))
        tap.on_inspection(KEY, _insp(6))
        _wait(lambda: (s := enc.snapshot(KEY)) is not None and s.seq == 6)
        assert enc.snapshot(KEY).banner == "OK"  # type: ignore[union-attr]
        # the viewer goes away: within IDLE_S + a tick the tap lets go and encoding stops
        _wait(lambda: not tap.watching, IDLE_S + 2)
        assert tap.latest() == {} and enc.snapshot(KEY) is None
        n = enc.encoded[KEY]
        tap.on_inspection(KEY, _insp(7))
        time.sleep(0.2)
        assert enc.encoded[KEY] == n
    finally:
        enc.stop()


def test_viewers_are_counted_bounded_and_forgotten() -> None:
    v = Viewers()
    for i in range(300):
        v.seen(f"v{i}", 100.0)
    assert v.count(100.0) == 256
    assert v.count(100.0 + IDLE_S + 0.1) == 0
    assert viewer_id("n=3&viewer=abc_1", "127.0.0.1") == "abc_1"
    assert viewer_id("viewer=../../x", "127.0.0.1") == "127.0.0.1"
