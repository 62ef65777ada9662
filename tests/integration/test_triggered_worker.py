"""Triggered stations inspect through their InferenceWorker: the part's frame (the first one
captured after the trigger) is inspected on the worker thread and counted in its stats
(inspected, errors, busy time, progress) like a continuous station's frames; no frame within
the trigger's frame timeout answers None; a stopped worker leaves no request waiting."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import pytest

from agent.capture.slot import LatestFrame
from agent.config.models import ModelConfig
from agent.config.station import StationConfig, TriggerTimeouts
from agent.inference.runner import ModelRunner
from agent.inference.session import load_model
from agent.inference.worker import InferenceWorker
from agent.pipeline.station import StationRuntime
from agent.types import Inspection
from tests.integration.onnx_graphs import channel_mean_model, write_model_dir
from tests.integration.test_inference_models import colour_frame, make_frame, manifest

RED, GREEN = (0, 0, 255), (0, 255, 0)


@pytest.fixture
def runner(tmp_path: Path) -> ModelRunner:
    write_model_dir(tmp_path / "m", channel_mean_model(), manifest())
    return load_model("colours", ModelConfig(path="m", warmup_runs=1), tmp_path)


class Answers:
    def __init__(self) -> None:
        self.items: list[Inspection | None] = []
        self.cond = threading.Condition()

    def __call__(self, insp: Inspection | None) -> None:
        with self.cond:
            self.items.append(insp)
            self.cond.notify_all()

    def wait(self, n: int, timeout: float = 10.0) -> bool:
        with self.cond:
            return self.cond.wait_for(lambda: len(self.items) >= n, timeout)


def never(_key: str, _insp: Inspection) -> None:
    raise AssertionError("a triggered worker hands its inspections to the request, not here")


def test_the_frame_after_the_trigger_is_inspected_and_counted(runner: ModelRunner) -> None:
    slot = LatestFrame()
    worker = InferenceWorker("L1/S1", runner, slot, 1000.0, never, triggered=True)
    worker.start()
    answers = Answers()
    try:
        slot.put(make_frame(colour_frame(RED), seq=1))  # before the trigger: never judged
        t_trigger = time.monotonic()
        worker.request(t_trigger, 2.0, answers)
        time.sleep(0.05)
        assert answers.items == [] and worker.stats().inspected == 0
        slot.put(make_frame(colour_frame(GREEN), seq=2))
        assert answers.wait(1)
        worker.request(time.monotonic(), 0.1, answers)  # no frame comes: None, not counted
        assert answers.wait(2)
    finally:
        worker.stop()
    first, second = answers.items
    assert first is not None and first.frame_seq == 2 and first.findings[0].label == "green"
    assert second is None
    s = worker.stats()
    assert (s.inspected, s.dropped_late, s.errors, s.callback_errors) == (1, 0, 0, 0)
    assert s.last_progress is not None and s.busy_fraction > 0
    assert runner.stats().runs == 1 and slot.dropped == 1


def test_a_stopped_worker_leaves_no_request_waiting(runner: ModelRunner) -> None:
    worker = InferenceWorker("L1/S1", runner, LatestFrame(), 1000.0, never, triggered=True)
    answers = Answers()
    worker.start()
    worker.request(time.monotonic(), 30.0, answers)  # waits for a frame that never comes
    worker.request(time.monotonic(), 30.0, answers)  # queued behind it
    worker.slot.close()  # capture stops first at shutdown
    worker.stop(5.0)
    worker.request(time.monotonic(), 30.0, answers)  # after the stop: answered at once
    assert answers.items == [None, None, None]


class _Camera:
    name = "cam"
    frozen_since = None

    def __init__(self) -> None:
        self.slot = LatestFrame()

    def subscribe(self) -> LatestFrame:
        return self.slot


async def test_a_triggered_station_inspects_through_its_worker(runner: ModelRunner) -> None:
    cam = _Camera()
    cfg = StationConfig(camera="cam", model="m", mode="triggered",
                        trigger=TriggerTimeouts(frame_ms=300))
    rt = StationRuntime("L1", "S1", cfg, cam, runner, lambda _rt, _i: None,  # type: ignore[arg-type]
                        asyncio.get_running_loop())
    rt.start()
    try:
        for seq in range(3):
            t_trigger = time.monotonic()
            loop = asyncio.get_running_loop()
            loop.call_later(0.02, cam.slot.put, make_frame(colour_frame(GREEN), seq=seq))
            insp = await rt.inspect_after(t_trigger)
            assert insp is not None and insp.frame_seq == seq and insp.t_capture > t_trigger
        t0 = time.monotonic()
        assert await rt.inspect_after(t0) is None  # no frame within frame_ms
        assert 0.25 < time.monotonic() - t0 < 2.0
    finally:
        cam.slot.close()
        await asyncio.to_thread(rt.stop, 5.0)
    s = rt.worker.stats()
    assert s.inspected == 3 and s.busy_fraction > 0 and s.last_progress is not None


def test_a_withdrawn_request_is_skipped_not_inspected(runner: ModelRunner) -> None:
    """A trigger that gave up on its part: the worker does not spend the next part's time on it."""
    slot = LatestFrame()
    worker = InferenceWorker("L1/S1", runner, slot, 1000.0, never, triggered=True)
    answers, dropped = Answers(), Answers()
    worker.start()
    try:
        blocker = worker.request(time.monotonic(), 0.3, answers)  # no frame: waits 0.3 s
        gone = worker.request(time.monotonic(), 5.0, dropped)  # queued behind it...
        gone.withdrawn = True  # ...and its trigger gives up
        t_next = time.monotonic()
        worker.request(t_next, 5.0, answers)
        assert answers.wait(1) and answers.items == [None]  # the blocker timed out
        slot.put(make_frame(colour_frame(GREEN), seq=1))
        assert answers.wait(2, timeout=2.0)
    finally:
        worker.stop()
    assert blocker.withdrawn is False and dropped.items == []
    assert answers.items[1] is not None and answers.items[1].frame_seq == 1
    assert worker.stats().inspected == 1  # only the part still waited for


def test_a_dead_worker_answers_at_once(runner: ModelRunner) -> None:
    worker = InferenceWorker("L1/S1", runner, LatestFrame(), 1000.0, never, triggered=True)
    answers = Answers()
    worker.start()
    worker.slot.close()
    worker.stop(5.0)
    worker._stopping = False  # as if the thread had crashed: it ended without a stop
    t0 = time.monotonic()
    worker.request(time.monotonic(), 30.0, answers)
    assert answers.items == [None] and time.monotonic() - t0 < 0.5
