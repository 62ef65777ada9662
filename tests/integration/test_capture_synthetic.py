"""Synthetic conveyor camera: ground truth on every frame; slow consumers and drop accounting."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np

from agent.capture.base import SourceState
from agent.capture.slot import LatestFrame
from agent.capture.sources.synthetic_source import SyntheticCameraConfig
from agent.capture.synthetic_scene import ConveyorScene
from agent.runtime.build import build_camera
from agent.types import Frame


def _cfg(**kw: object) -> SyntheticCameraConfig:
    base: dict[str, object] = dict(type="synthetic", seed=5, width=160, height=120,
                                   frames_per_part=4, schedule=[None, "scratch", "spot"])
    base.update(kw)
    return SyntheticCameraConfig.model_validate(base)


def _consume(slot: LatestFrame, out: list[tuple[Frame, float]], work_s: float) -> None:
    while (f := slot.get(timeout=10)) is not None:
        out.append((f, time.monotonic() - f.t_capture))
        time.sleep(work_s)


def test_frames_carry_the_scene_ground_truth_and_pixels() -> None:
    cam = build_camera("syn", _cfg(fps=200, max_frames=30), Path("."))
    slot = cam.subscribe()
    got: list[tuple[Frame, float]] = []
    cam.start()
    _consume(slot, got, 0.0)
    cam.stop()
    scene = ConveyorScene(seed=5, width=160, height=120, frames_per_part=4,
                          schedule=[None, "scratch", "spot"])
    ref = [scene.next_frame() for _ in range(30)]
    assert len(got) + slot.dropped == 30 and len(got) >= 10
    for frame, _ in got:
        r = ref[frame.seq - 1]
        assert (frame.part_id, frame.truth) == (r.part_id, r.label)
        assert np.array_equal(frame.pixels, r.image)
    schedule = ["ok", "scratch", "spot"]  # cycled per part
    for f, _ in got:
        if f.part_id is not None:
            assert f.truth == schedule[(int(f.part_id.split("-")[1]) - 1) % 3]
    assert cam.state is SourceState.STOPPED


def test_slow_consumer_gets_newest_frames_and_every_drop_is_counted() -> None:
    cam = build_camera("syn", _cfg(fps=100, max_frames=60), Path("."))
    slow, fast = cam.subscribe(), cam.subscribe()
    slow_got: list[tuple[Frame, float]] = []
    fast_got: list[tuple[Frame, float]] = []
    threads = [
        threading.Thread(target=_consume, args=(slow, slow_got, 0.08)),
        threading.Thread(target=_consume, args=(fast, fast_got, 0.0)),
    ]
    cam.start()
    for t in threads:
        t.start()
    while threads[1].is_alive() and cam.stats().fps == 0.0:
        time.sleep(0.01)
    fps_while_streaming = cam.stats().fps
    for t in threads:
        t.join(30)
    cam.stop()
    for slot, got in ((slow, slow_got), (fast, fast_got)):
        assert slot.put_count == 60
        assert slot.delivered == len(got)
        assert slot.dropped == 60 - len(got)  # exact: every frame is delivered or dropped
        seqs = [f.seq for f, _ in got]
        assert seqs == sorted(set(seqs)) and seqs[-1] == 60  # newest wins, the last one too
    assert slow.dropped > 30  # 60 frames at 100 fps, one taken per 80 ms
    assert cam.stats().dropped == slow.dropped + fast.dropped
    assert cam.stats().captured == 60
    assert fps_while_streaming > 0
    # newest-frame semantics: a slow consumer's frames do not age with its backlog
    # (a queue would hand out frames ~0.5 s old by the end); generous bound for a noisy box
    assert max(age for _, age in slow_got) < 0.3
