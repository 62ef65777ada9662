"""Bad input: broken model files and manifests refuse to load with a message naming the
model, its path and the mismatch; a frame that cannot be inspected becomes an
Inspection with an error, is counted and logged once, and never raises."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from agent.config.models import ModelConfig
from agent.inference.errors import ModelLoadError
from agent.inference.runner import ModelRunner
from agent.inference.session import load_model
from tests.integration.onnx_graphs import (
    channel_mean_model,
    constant_model,
    sqrt_model,
    write_model_dir,
)
from tests.integration.test_inference_models import colour_frame, make_frame, manifest

CFG = ModelConfig(path="m", warmup_runs=1)


def refused(tmp_path: Path, *words: str, cfg: ModelConfig = CFG) -> str:
    with pytest.raises(ModelLoadError) as err:
        load_model("inspect1", cfg, tmp_path)
    msg = str(err.value)
    assert msg.startswith(f"model 'inspect1' ({tmp_path / cfg.path}"), msg
    for w in words:
        assert w in msg, msg
    return msg


def test_missing_model_file(tmp_path: Path) -> None:
    (tmp_path / "m").mkdir()
    refused(tmp_path, "model.onnx does not exist")


def test_corrupt_and_truncated_files(tmp_path: Path) -> None:
    write_model_dir(tmp_path / "m", b"this is not a protobuf at all", manifest())
    refused(tmp_path, "cannot load model.onnx", "corrupt, truncated")
    data = channel_mean_model().SerializeToString()
    write_model_dir(tmp_path / "m", data[: len(data) // 2], manifest())
    refused(tmp_path, "cannot load model.onnx", "onnxruntime")


def test_sha256_mismatch(tmp_path: Path) -> None:
    write_model_dir(tmp_path / "m", channel_mean_model(), manifest(), sha256="0" * 64)
    refused(tmp_path, "sha256 mismatch", "manifest says 0000")


def test_broken_manifest(tmp_path: Path) -> None:
    write_model_dir(tmp_path / "m", channel_mean_model(), manifest(labelz=["a"]))
    refused(tmp_path, "model.yaml", "labelz: unknown key")


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"input": {"name": "images", "size": [24, 32]}},
         ["input.name is 'images'", "graph's input is 'input'"]),
        ({"input": {"size": [128, 128]}},
         ["input.size is [128, 128]", "'input' is ['batch', 3, 24, 32]"]),
        ({"input": {"layout": "NHWC", "size": [24, 32]}},
         ["32 channels in NHWC", "is input.layout right?"]),
        ({"labels": ["ok", "scratch", "spot", "crack"]},
         ["graph's output", "3 values but the manifest has 4 labels"]),
    ],
)
def test_manifest_that_disagrees_with_the_graph(tmp_path: Path, changes: dict[str, Any],
                                                words: list[str]) -> None:
    write_model_dir(tmp_path / "m", channel_mean_model(), manifest(**changes))
    refused(tmp_path, "disagrees with the graph", *words)


def test_fixed_batch_and_detection_width(tmp_path: Path) -> None:
    write_model_dir(tmp_path / "m", channel_mean_model((4, 3, 24, 32)), manifest())
    refused(tmp_path, "fixed batch of 4")
    det = constant_model({"out": np.zeros((1, 6, 10))})
    write_model_dir(tmp_path / "m", det, {"name": "d", "version": "1", "task": "detection",
                                          "labels": ["a", "b", "c"],
                                          "output": {"yolo_layout": "v8"}})
    refused(tmp_path, "[1, 6, 10] does not hold 7 values")


def test_nan_on_a_blank_frame_refuses_to_load(tmp_path: Path) -> None:
    nan = constant_model({"logits": np.array([[np.nan, 1.0]])})
    write_model_dir(tmp_path / "m", nan, manifest(labels=["a", "b"], input={"size": [32, 32]}))
    refused(tmp_path, "'logits' holds 1 NaN/inf")


def test_model_without_manifest_and_without_class_count(tmp_path: Path) -> None:
    model = constant_model({"out": np.zeros((1, 300, 6))},
                           metadata={"task": "detect", "end2end": "True"})
    (tmp_path / "m.onnx").write_bytes(model.SerializeToString())
    refused(tmp_path, "no model.yaml", "give the labels",
            cfg=ModelConfig(path="m.onnx", warmup_runs=1, providers=["CPUExecutionProvider"]))


@pytest.fixture
def runner(tmp_path: Path) -> ModelRunner:
    write_model_dir(tmp_path / "m", sqrt_model(), manifest(
        labels=["a", "b"], input={"name": "input", "size": [16, 16]}))
    return load_model("inspect1", CFG, tmp_path)


def test_bad_frames_become_counted_errors_logged_once(
    runner: ModelRunner, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="agent.inference.runner")
    bad = [np.zeros((8, 8, 4), np.uint8), np.zeros((8, 8, 3), np.float32),
           colour_frame((0, 0, 0))]  # black -> sqrt(0 - 0.5) = NaN
    results = [runner.infer(make_frame(px, seq=i)) for i, px in enumerate(bad)]
    assert [r.findings for r in results] == [(), (), ()]
    assert "frame shape is (8, 8, 4)" in (results[0].error or "")
    assert "dtype is float32" in (results[1].error or "")
    assert "'logits' holds 2 NaN/inf" in (results[2].error or "")
    assert all((r.error or "").startswith("model inspect1: ") for r in results)
    ok = runner.infer(make_frame(colour_frame((255, 255, 255)), seq=9))
    assert ok.error is None and ok.findings[0].score == pytest.approx(0.5**0.5)
    stats = runner.stats()
    assert (stats.runs, stats.errors) == (4, 3) and "NaN" in (stats.last_error or "")
    loud = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(loud) == 1 and "cam1#0" in loud[0].getMessage()
    assert any("after 3 failure(s)" in r.getMessage() for r in caplog.records)


class FailingSession:
    """Injects an onnxruntime failure a real session cannot produce on demand."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.fail = True

    def run(self, *args: Any, **kwargs: Any) -> Any:
        if self.fail:
            raise RuntimeError("[ONNXRuntimeError] : 6 : RUNTIME_EXCEPTION : CUDA out of memory")
        return self.real.run(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


def test_runtime_errors_are_per_frame(runner: ModelRunner) -> None:
    session = FailingSession(runner.session)
    runner.session = session  # type: ignore[assignment]
    failed = runner.infer(make_frame(colour_frame((255, 255, 255))))
    assert failed.findings == () and "RUNTIME_EXCEPTION" in (failed.error or "")
    assert failed.timings.pre_ms > 0  # the stage that ran is still timed
    session.fail = False
    assert runner.infer(make_frame(colour_frame((255, 255, 255)))).error is None
    assert runner.stats().errors == 1
