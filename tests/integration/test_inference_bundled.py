"""The bundled defect-cnn through load_model / ModelRunner / InferenceWorker: it loads with
its manifest checked, and classifies held-out synthetic conveyor frames (a seed never
used for training, lighting, blur and noise on) with the accuracy its manifest reports."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from agent.capture.sources.synthetic_source import SyntheticCameraConfig
from agent.capture.synthetic_scene import LABELS, ConveyorScene
from agent.config.models import ModelConfig
from agent.inference.runner import ModelRunner
from agent.inference.session import load_model
from agent.inference.worker import InferenceWorker
from agent.runtime.build import build_camera
from agent.types import Frame, Inspection

REPO = Path(__file__).resolve().parents[2]
TEST_SEED = 777  # not a training seed (1, 100-107) nor the manifest's held-out seed
TARGET = 0.97


@pytest.fixture(scope="module")
def runner() -> ModelRunner:
    return load_model("defect", ModelConfig(path="models/defect-cnn"), REPO)


def test_loads_with_its_manifest(runner: ModelRunner) -> None:
    assert runner.info.name == "defect-cnn" and runner.manifest.task == "classification"
    assert runner.manifest.labels == LABELS
    assert runner.info.sha256 == runner.manifest.sha256
    assert runner.pre.size == (96, 128) and not runner.fallback


def test_classifies_held_out_frames_with_the_reported_accuracy(runner: ModelRunner) -> None:
    scene = ConveyorScene(TEST_SEED, frames_per_part=2, gap_frames=1, defect_rate=0.6,
                          lighting_jitter=0.3, blur_max=1.5, noise_std=8.0)
    hits, seen = 0, set()
    frames = 150
    for i in range(frames):
        sf = scene.next_frame()
        ins = runner.infer(Frame(sf.image, "cam1", i, time.monotonic(), datetime.now(UTC),
                                 sf.part_id, sf.label))
        assert ins.error is None and {f.label for f in ins.findings} == set(LABELS)
        assert sum(f.score for f in ins.findings) == pytest.approx(1.0, abs=1e-5)
        hits += ins.findings[0].label == sf.label
        seen.add(sf.label)
    assert seen == set(LABELS)
    reported = runner.manifest.provenance.metrics["accuracy"]  # type: ignore[union-attr]
    assert hits / frames >= min(TARGET, reported), f"accuracy {hits / frames:.3f}"


def test_synthetic_camera_to_inspections(runner: ModelRunner) -> None:
    cfg = SyntheticCameraConfig(type="synthetic", seed=TEST_SEED, fps=60, max_frames=90,
                                frames_per_part=3, defect_rate=0.5)
    cam = build_camera("cam1", cfg, REPO)
    slot = cam.subscribe()
    got: list[Inspection] = []
    worker = InferenceWorker("L1/S1", runner, slot, 2000.0, lambda _k, ins: got.append(ins))
    worker.start()
    cam.start()
    try:
        assert worker.join(30.0)
    finally:
        cam.stop()
        worker.stop()
    assert len(got) >= 30 and all(ins.error is None for ins in got)
    correct = sum(ins.findings[0].label == ins.truth for ins in got)
    assert correct / len(got) >= TARGET
    assert {ins.truth for ins in got} - {"ok"}  # defects were shown
