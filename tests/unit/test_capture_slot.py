"""LatestFrame: newest frame wins, drops counted exactly, waiters woken."""

from __future__ import annotations

import threading
import time

import numpy as np

from agent.capture.slot import LatestFrame
from agent.types import Frame, utc_now


def _frame(seq: int, t: float | None = None) -> Frame:
    return Frame(
        pixels=np.zeros((2, 2, 3), np.uint8),
        camera_id="cam",
        seq=seq,
        t_capture=time.monotonic() if t is None else t,
        wall_time=utc_now(),
    )


def test_newest_frame_wins_and_replaced_frames_are_dropped() -> None:
    slot = LatestFrame()
    for i in range(5):
        slot.put(_frame(i))
    got = slot.get(timeout=0)
    assert got is not None and got.seq == 4
    assert (slot.put_count, slot.delivered, slot.dropped) == (5, 1, 4)
    assert slot.get(timeout=0) is None
    assert not slot.pending


def test_get_times_out_with_none() -> None:
    slot = LatestFrame()
    t0 = time.monotonic()
    assert slot.get(timeout=0.05) is None
    assert time.monotonic() - t0 >= 0.04


def test_get_wakes_on_put_from_another_thread() -> None:
    slot = LatestFrame()
    th = threading.Timer(0.05, lambda: slot.put(_frame(7)))
    th.start()
    got = slot.get(timeout=5)
    th.join()
    assert got is not None and got.seq == 7


def test_close_wakes_waiters_and_drains_pending_frame() -> None:
    slot = LatestFrame()
    results: list[Frame | None] = []
    waiter = threading.Thread(target=lambda: results.append(slot.get(timeout=None)))
    waiter.start()
    time.sleep(0.05)
    slot.close()
    waiter.join(timeout=5)
    assert results == [None]
    slot2 = LatestFrame()
    slot2.put(_frame(1))
    slot2.close()
    last = slot2.get(timeout=None)
    assert last is not None and last.seq == 1
    assert slot2.get(timeout=None) is None
    slot2.put(_frame(2))
    assert slot2.dropped == 1 and slot2.get(timeout=None) is None


def test_get_after_skips_frames_captured_before_the_trigger() -> None:
    slot = LatestFrame()
    slot.put(_frame(1, t=10.0))
    assert slot.get_after(10.0, timeout=0.02) is None
    assert slot.dropped == 1
    slot.put(_frame(2, t=9.0))
    th = threading.Timer(0.05, lambda: slot.put(_frame(3, t=11.0)))
    th.start()
    got = slot.get_after(10.0, timeout=5)
    th.join()
    assert got is not None and got.seq == 3
    assert (slot.put_count, slot.delivered, slot.dropped) == (3, 1, 2)


def test_get_after_returns_pending_fresh_frame_at_once() -> None:
    slot = LatestFrame()
    slot.put(_frame(1, t=5.0))
    got = slot.get_after(4.0, timeout=0)
    assert got is not None and got.seq == 1
