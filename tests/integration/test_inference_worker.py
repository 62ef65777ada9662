"""InferenceWorker: real LatestFrame slots and real onnxruntime sessions; late frames are
dropped and counted, a failing result handler or frame never stops the worker, pause,
resume, stop, end of source and re-warm after idle. Last: a real video file written with
OpenCV, through a real Camera, to inspections."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

from agent.capture.slot import LatestFrame
from agent.capture.sources.opencv_source import OpenCVCameraConfig
from agent.config.models import ModelConfig
from agent.inference.runner import ModelRunner
from agent.inference.session import load_model
from agent.inference.worker import InferenceWorker
from agent.runtime.build import build_camera
from agent.types import Inspection
from tests.integration.onnx_graphs import channel_mean_model, write_model_dir
from tests.integration.test_inference_models import colour_frame, make_frame, manifest

RED, GREEN, BLUE = (0, 0, 255), (0, 255, 0), (255, 0, 0)


class Results:
    def __init__(self, fail_on: int | None = None) -> None:
        self.items: list[tuple[str, Inspection]] = []
        self.fail_on = fail_on
        self._cond = threading.Condition()

    def __call__(self, key: str, ins: Inspection) -> None:
        with self._cond:
            self.items.append((key, ins))
            self._cond.notify_all()
        if self.fail_on is not None and ins.frame_seq == self.fail_on:
            raise RuntimeError("decision engine bug")

    def wait(self, n: int, timeout: float = 10.0) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: len(self.items) >= n, timeout)


def wait_for(pred: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


@pytest.fixture
def runner(tmp_path: Path) -> ModelRunner:
    write_model_dir(tmp_path / "m", channel_mean_model(), manifest())
    return load_model("colours", ModelConfig(path="m", warmup_runs=1), tmp_path)


@pytest.fixture(params=[True, False], ids=["prepare_ahead", "one_thread"])
def ahead(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


@pytest.fixture
def slot() -> LatestFrame:
    return LatestFrame()


def test_frames_become_inspections(runner: ModelRunner, slot: LatestFrame,
                                   ahead: bool) -> None:
    results = Results()
    worker = InferenceWorker("L1/S1", runner, slot, 1000.0, results, prepare_ahead=ahead)
    worker.start()
    try:
        for i, colour in enumerate((RED, GREEN, BLUE)):
            slot.put(make_frame(colour_frame(colour), seq=i))
            assert results.wait(i + 1)
    finally:
        worker.stop()
    assert [(k, ins.frame_seq, ins.findings[0].label) for k, ins in results.items] == [
        ("L1/S1", 0, "red"), ("L1/S1", 1, "green"), ("L1/S1", 2, "blue")]
    s = worker.stats()
    assert (s.inspected, s.dropped_late, s.errors, s.callback_errors) == (3, 0, 0, 0)
    assert s.last_progress is not None and 0 < s.busy_fraction <= 1
    assert not s.running and not s.paused


def test_frames_older_than_the_budget_are_dropped_and_counted(
    runner: ModelRunner, slot: LatestFrame, ahead: bool
) -> None:
    results = Results()
    worker = InferenceWorker("L1/S1", runner, slot, 50.0, results, prepare_ahead=ahead)
    worker.start()
    try:
        slot.put(make_frame(colour_frame(RED), seq=1, t_capture=time.monotonic() - 0.5))
        assert wait_for(lambda: worker.stats().dropped_late == 1)
        slot.put(make_frame(colour_frame(GREEN), seq=2))
        assert results.wait(1)
    finally:
        worker.stop()
    assert [ins.frame_seq for _, ins in results.items] == [2]
    assert worker.stats().inspected == 1 and runner.stats().runs == 1


def test_handler_and_frame_failures_do_not_stop_the_worker(
    runner: ModelRunner, slot: LatestFrame, ahead: bool
) -> None:
    results = Results(fail_on=1)
    worker = InferenceWorker("L1/S1", runner, slot, 1000.0, results, prepare_ahead=ahead)
    worker.start()
    try:
        slot.put(make_frame(colour_frame(RED), seq=1))  # handler raises on this one
        assert results.wait(1)
        slot.put(make_frame(np.zeros((4, 4), np.float64), seq=2))  # bad frame
        assert results.wait(2)
        slot.put(make_frame(colour_frame(BLUE), seq=3))
        assert results.wait(3)
    finally:
        worker.stop()
    errors = [ins.error for _, ins in results.items]
    assert errors[0] is None and "dtype is float64" in (errors[1] or "") and errors[2] is None
    s = worker.stats()
    assert (s.inspected, s.errors, s.callback_errors) == (3, 1, 1)


def test_pause_keeps_frames_waiting_and_resume_inspects_them(
    runner: ModelRunner, slot: LatestFrame, ahead: bool
) -> None:
    results = Results()
    worker = InferenceWorker("L1/S1", runner, slot, 5000.0, results, prepare_ahead=ahead)
    worker.start()
    try:
        worker.pause()
        time.sleep(0.15)  # let the worker reach its paused wait
        slot.put(make_frame(colour_frame(RED), seq=1))
        slot.put(make_frame(colour_frame(GREEN), seq=2))  # replaces 1: newest wins
        time.sleep(0.3)
        assert results.items == [] and slot.pending and worker.stats().paused
        worker.resume()
        assert results.wait(1)
    finally:
        worker.stop()
    assert [ins.frame_seq for _, ins in results.items] == [2]
    assert slot.dropped == 1 and worker.stats().inspected == 1


def test_worker_ends_when_its_source_closes(runner: ModelRunner, slot: LatestFrame,
                                           ahead: bool) -> None:
    results = Results()
    worker = InferenceWorker("L1/S1", runner, slot, 1000.0, results, prepare_ahead=ahead)
    slot.put(make_frame(colour_frame(BLUE), seq=5))
    slot.close()  # e.g. the end of a video file: the pending frame is still inspected
    worker.start()
    assert worker.join(10.0)
    assert [ins.frame_seq for _, ins in results.items] == [5]
    assert not worker.stats().running


def test_two_stations_share_one_model(runner: ModelRunner, ahead: bool) -> None:
    slots = [LatestFrame(), LatestFrame()]
    results = Results()
    workers = [InferenceWorker(f"L1/S{i}", runner, s, 1000.0, results, prepare_ahead=ahead)
               for i, s in enumerate(slots)]
    for w in workers:
        w.start()
    try:
        for n in range(5):
            slots[0].put(make_frame(colour_frame(RED), seq=n))
            slots[1].put(make_frame(colour_frame(BLUE), seq=n))
            assert wait_for(lambda: not slots[0].pending and not slots[1].pending)
            assert results.wait(slots[0].delivered + slots[1].delivered)
    finally:
        for w in workers:
            w.stop()
    by_key = {k: {ins.findings[0].label for kk, ins in results.items if kk == k}
              for k in ("L1/S0", "L1/S1")}
    assert by_key == {"L1/S0": {"red"}, "L1/S1": {"blue"}}
    assert runner.stats().runs == sum(w.stats().inspected for w in workers)


def test_idle_model_is_warmed_up_again(tmp_path: Path, slot: LatestFrame, ahead: bool) -> None:
    write_model_dir(tmp_path / "m", channel_mean_model(), manifest())
    cfg = ModelConfig(path="m", warmup_runs=1, rewarm_after_idle_s=0.05)
    runner = load_model("colours", cfg, tmp_path)
    worker = InferenceWorker("L1/S1", runner, slot, 1000.0, Results(), prepare_ahead=ahead)
    worker.start()
    try:
        assert wait_for(lambda: runner.stats().warmups >= 3)
    finally:
        worker.stop()
    assert worker.stats().last_loop > 0 and worker.stats().inspected == 0


def write_video(path: Path, colours: list[tuple[int, int, int]]) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 25.0, (64, 48))
    assert writer.isOpened()
    for c in colours:
        writer.write(colour_frame(c))
    writer.release()
    return path


def test_video_file_through_camera_and_worker(runner: ModelRunner, tmp_path: Path,
                                             ahead: bool) -> None:
    write_video(tmp_path / "line.avi", [RED] * 10 + [BLUE] * 10)
    cam = build_camera("cam1", OpenCVCameraConfig(type="opencv", source="line.avi", fps=100),
                       tmp_path)
    slot = cam.subscribe()
    results = Results()
    worker = InferenceWorker("L1/S1", runner, slot, 1000.0, results, prepare_ahead=ahead)
    worker.start()
    cam.start()
    try:
        assert worker.join(20.0)  # the file ends, the camera closes the slot, the worker ends
    finally:
        cam.stop()
        worker.stop()
    s = worker.stats()
    assert s.inspected + s.dropped_late == slot.delivered and s.errors == 0
    assert slot.delivered + slot.dropped == cam.stats().captured == 20
    labels = [ins.findings[0].label for _, ins in results.items]
    assert labels[-1] == "blue" and set(labels) <= {"red", "blue"}
    for _, ins in results.items:  # each verdict belongs to the frame it names
        assert ins.frame is not None
        b, _, r = ins.frame.pixels.reshape(-1, 3).mean(axis=0)
        assert ins.findings[0].label == ("red" if r > b else "blue")


class SlowSession:
    """The real session, made slow on demand: a model busy long enough to watch the
    hand-over (fault injection; the outputs are the real model's)."""

    def __init__(self, real: object, delay_s: float) -> None:
        self.real = real
        self.delay_s = delay_s
        self.running = threading.Event()
        self.returned: list[float] = []

    def run(self, names: object, feed: object) -> object:
        self.running.set()
        time.sleep(self.delay_s)
        out = self.real.run(names, feed)  # type: ignore[attr-defined]
        self.returned.append(time.monotonic())
        return out


def slow(runner: ModelRunner, delay_s: float) -> SlowSession:
    session = SlowSession(runner.session, delay_s)
    runner.session = session  # type: ignore[assignment]
    return session


def test_next_frame_is_prepared_while_the_model_runs(runner: ModelRunner,
                                                     slot: LatestFrame) -> None:
    prepared: list[tuple[int, float]] = []
    real_prepare = runner.prepare

    def prepare(frame: object) -> object:
        out = real_prepare(frame)  # type: ignore[arg-type]
        prepared.append((out.frame.seq, time.monotonic()))
        return out
    runner.prepare = prepare  # type: ignore[assignment, method-assign]
    session = slow(runner, 0.3)
    results = Results()
    worker = InferenceWorker("L1/S1", runner, slot, 5000.0, results)  # prepare_ahead default
    worker.start()
    try:
        slot.put(make_frame(colour_frame(RED), seq=1))
        assert session.running.wait(5)  # frame 1 is in session.run
        slot.put(make_frame(colour_frame(BLUE), seq=2))
        assert results.wait(2)
    finally:
        worker.stop()
    assert [ins.findings[0].label for _, ins in results.items] == ["red", "blue"]
    assert prepared[1][0] == 2 and prepared[1][1] < session.returned[0]  # before run 1 ended


def test_a_prepared_frame_that_waited_past_the_budget_is_dropped_at_inference_start(
        runner: ModelRunner, slot: LatestFrame) -> None:
    session = slow(runner, 0.3)
    results = Results()
    worker = InferenceWorker("L1/S1", runner, slot, 150.0, results, prepare_ahead=True)
    worker.start()
    try:
        slot.put(make_frame(colour_frame(RED), seq=1))
        assert session.running.wait(5)
        slot.put(make_frame(colour_frame(BLUE), seq=2))  # fresh now; ~300 ms old at its turn
        assert results.wait(1)
        assert wait_for(lambda: worker.stats().dropped_late == 1)
        time.sleep(0.4)
    finally:
        worker.stop()
    assert [ins.frame_seq for _, ins in results.items] == [1]
    assert worker.stats().inspected == 1 and len(session.returned) == 1
