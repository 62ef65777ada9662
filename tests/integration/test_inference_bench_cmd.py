"""`edge-agent bench --model`: per-stage p50/p99 and bare session.run per provider; an
unavailable provider is skipped with the reason, none usable -> exit 2."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from agent.cli import main
from tests.integration.onnx_graphs import channel_mean_model, constant_model, write_model_dir
from tests.integration.test_inference_models import manifest

REPO = Path(__file__).resolve().parents[2]


def test_bench_prints_every_stage_for_the_bundled_model(capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["bench", "--model", str(REPO / "models" / "defect-cnn"), "--frames", "40",
               "--frame-size", "160x120"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "model defect-cnn 1.0.0 (classification" in out and "40 frames of 160x120" in out
    assert "CPUExecutionProvider (active: CPUExecutionProvider)" in out
    for stage in ("pre", "session.run (pipeline)", "post", "added (total - run)",
                  "bare session.run"):
        row = re.search(rf"^  {re.escape(stage)}\s+([\d.]+)\s+([\d.]+)$", out, re.M)
        assert row is not None, f"no row for {stage!r} in:\n{out}"
        assert 0 < float(row.group(1)) <= float(row.group(2))
    assert re.search(r"ratio \d\.\d\d", out)


def test_unavailable_provider_is_skipped_with_the_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_model_dir(tmp_path / "m", channel_mean_model(), manifest())
    rc = main(["bench", "--model", str(tmp_path / "m"), "--frames", "10",
               "--providers", "CUDAExecutionProvider"])
    captured = capsys.readouterr()
    assert rc == 2 and captured.out == ""
    assert "CUDAExecutionProvider: skipped" in captured.err and "edge-agent[gpu]" in captured.err


def test_bare_onnx_with_flags(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = np.zeros((1, 6, 8), np.float32)
    (tmp_path / "det.onnx").write_bytes(
        constant_model({"out": rows}, input_shape=(1, 3, 32, 32)).SerializeToString())
    rc = main(["bench", "--model", str(tmp_path / "det.onnx"), "--frames", "10",
               "--task", "detection", "--labels", "a,b", "--yolo-layout", "v8",
               "--resize", "letterbox"])
    out = capsys.readouterr().out
    assert rc == 0 and "(detection, input images 32x32 float32 NCHW, letterbox)" in out
