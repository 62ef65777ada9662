"""load_model + ModelRunner.infer on real onnxruntime sessions of small ONNX graphs whose
outputs are known, so findings are checked against exact labels, boxes and scores."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from onnx import TensorProto

from agent.config.models import ModelConfig
from agent.inference.session import load_model
from agent.types import Finding, Frame
from tests.integration.onnx_graphs import channel_mean_model, constant_model, write_model_dir

CFG = ModelConfig(path="m", warmup_runs=1)


def make_frame(pixels: np.ndarray, seq: int = 1, t_capture: float | None = None) -> Frame:
    return Frame(pixels, "cam1", seq, time.monotonic() if t_capture is None else t_capture,
                 datetime.now(UTC), part_id="p1", truth="ok")


def colour_frame(bgr: tuple[int, int, int], h: int = 48, w: int = 64) -> np.ndarray:
    img = np.zeros((h, w, 3), np.uint8)
    img[:, :] = bgr
    return img


def manifest(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": "test-model", "version": "2.1", "task": "classification",
        "input": {"name": "input", "layout": "NCHW", "size": [24, 32], "color": "RGB",
                  "resize": "resize", "scale": 1 / 255, "mean": [0, 0, 0], "std": [1, 1, 1]},
        "labels": ["red", "green", "blue"], "output": {"activation": "none"},
    }
    data.update(changes)
    return data


def test_classification_through_a_real_session(tmp_path: Path) -> None:
    write_model_dir(tmp_path / "m", channel_mean_model(), manifest())
    runner = load_model("colours", CFG, tmp_path)
    assert runner.name == "colours" and runner.info.name == "test-model"
    assert runner.info.version == "2.1" and len(runner.info.sha256) == 64
    assert runner.info.provider == "CPUExecutionProvider" and not runner.fallback
    frame = make_frame(colour_frame((0, 0, 255)), seq=7)  # pure red in BGR
    ins = runner.infer(frame)
    assert ins.error is None
    assert ins.findings == (Finding("red", 1.0), Finding("green", 0.0), Finding("blue", 0.0))
    assert (ins.camera_id, ins.frame_seq, ins.part_id, ins.truth) == ("cam1", 7, "p1", "ok")
    assert ins.frame_shape == (48, 64) and ins.frame is frame and ins.model == runner.info
    t = ins.timings
    assert t.frame_age_ms >= 0 and t.pre_ms > 0 and t.infer_ms > 0 and t.post_ms > 0
    stats = runner.stats()
    assert stats.runs == 1 and stats.errors == 0 and stats.warmups == 1
    assert stats.p50_infer_ms is not None and stats.p50_total_ms is not None


def test_bgr_nhwc_and_normalisation_follow_the_manifest(tmp_path: Path) -> None:
    spec = {"name": "input", "layout": "NHWC", "size": [24, 32], "color": "BGR",
            "scale": 1 / 255, "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]}
    model = channel_mean_model(("batch", 24, 32, 3), layout="NHWC")
    write_model_dir(tmp_path / "m", model, manifest(input=spec, labels=["b", "g", "r"]))
    ins = load_model("m", CFG, tmp_path).infer(make_frame(colour_frame((255, 0, 0))))
    # blue in BGR order is channel 0: (1 - 0.5) / 0.5 = 1; the others (0 - 0.5) / 0.5 = -1
    assert ins.findings == (Finding("b", 1.0), Finding("g", -1.0), Finding("r", -1.0))


def test_uint8_models_get_raw_pixels(tmp_path: Path) -> None:
    model = channel_mean_model((1, 3, 24, 32), elem=TensorProto.UINT8)
    write_model_dir(tmp_path / "m", model, manifest())
    ins = load_model("m", CFG, tmp_path).infer(make_frame(colour_frame((10, 20, 30))))
    assert ins.findings == (Finding("red", 30.0), Finding("green", 20.0), Finding("blue", 10.0))


def v8_rows() -> np.ndarray:
    rows = np.array([  # cx cy w h score_scratch score_dent
        [32, 32, 20, 10, 0.9, 0.0],
        [33, 32, 20, 10, 0.6, 0.0],  # suppressed by NMS
        [33, 32, 20, 10, 0.0, 0.8],  # other class: kept
        [10, 10, 4, 4, 0.1, 0.1],  # below conf
    ], dtype=np.float32)
    return rows.T[None]


def test_yolo_v8_boxes_come_back_in_frame_pixels(tmp_path: Path) -> None:
    model = constant_model({"output0": v8_rows()}, input_shape=(1, 3, 64, 64))
    write_model_dir(tmp_path / "m", model, {
        "name": "det", "version": "1", "task": "detection", "labels": ["scratch", "dent"],
        "input": {"size": [64, 64], "resize": "letterbox"},
        "output": {"yolo_layout": "v8", "conf_threshold": 0.25, "nms_iou": 0.5}})
    runner = load_model("det", CFG, tmp_path)
    ins = runner.infer(make_frame(colour_frame((9, 9, 9), h=64, w=128)))
    # letterbox 128x64 -> 64x64: scale 0.5, 16 px of padding at the top
    # input box (22, 27, 42, 37) -> frame x / 0.5, (y - 16) / 0.5
    assert ins.error is None
    assert ins.findings == (Finding("scratch", pytest.approx(0.9), (44.0, 22.0, 84.0, 42.0)),
                            Finding("dent", pytest.approx(0.8), (46.0, 22.0, 86.0, 42.0)))


def test_yolo_v5_with_objectness(tmp_path: Path) -> None:
    out = np.array([[[16, 16, 8, 8, 0.5, 0.2, 0.9], [16, 16, 8, 8, 0.1, 1.0, 1.0]]], np.float32)
    write_model_dir(tmp_path / "m", constant_model({"output": out}), {
        "name": "v5", "version": "1", "task": "detection", "labels": ["a", "b"],
        "input": {"resize": "resize"}, "output": {"yolo_layout": "v5"}})
    ins = load_model("v5", CFG, tmp_path).infer(make_frame(colour_frame((0, 0, 0), 64, 32)))
    # resize 32x64 (w x h) -> 32x32: x unchanged, y doubled
    assert ins.findings == (Finding("b", pytest.approx(0.45), (12.0, 24.0, 20.0, 40.0)),)


def test_anomaly_model_score_and_regions(tmp_path: Path) -> None:
    amap = np.zeros((1, 1, 8, 8), np.float32)
    amap[0, 0, 2:4, 4:8] = 0.8
    model = constant_model({"pred_score": np.array([0.7]), "anomaly_map": amap})
    write_model_dir(tmp_path / "m", model, {
        "name": "padim", "version": "1", "task": "anomaly",
        "output": {"anomaly_threshold": 0.5}})
    ins = load_model("a", CFG, tmp_path).infer(make_frame(colour_frame((50, 50, 50), 64, 64)))
    # map 8x8 -> input 32x32 (x4) -> frame 64x64 (x2)
    assert ins.findings == (Finding("anomaly", pytest.approx(0.7)),
                            Finding("anomaly", pytest.approx(0.8), (32.0, 16.0, 64.0, 32.0)))


def test_segmentation_model_regions(tmp_path: Path) -> None:
    logits = np.zeros((1, 2, 4, 4), np.float32)
    logits[0, 1, 1:3, 1:3] = 9.0
    write_model_dir(tmp_path / "m", constant_model({"mask": logits}), {
        "name": "seg", "version": "1", "task": "segmentation", "labels": ["bg", "crack"]})
    ins = load_model("s", CFG, tmp_path).infer(make_frame(colour_frame((1, 1, 1), 32, 32)))
    p = 1 / (1 + np.exp(-9.0))
    assert ins.findings == (Finding("crack", pytest.approx(p), (8.0, 8.0, 24.0, 24.0)),)


def test_bare_onnx_uses_ultralytics_metadata(tmp_path: Path) -> None:
    meta = {"names": "{0: 'scratch', 1: 'dent'}", "imgsz": "[64, 64]", "task": "detect"}
    model = constant_model({"output0": v8_rows()}, input_shape=(1, 3, 64, 64), metadata=meta)
    (tmp_path / "yolo11n.onnx").write_bytes(model.SerializeToString())
    runner = load_model("yolo", ModelConfig(path="yolo11n.onnx", warmup_runs=1), tmp_path)
    m = runner.manifest
    assert (m.task, m.labels, m.input.resize, m.output.yolo_layout) == (
        "detection", ("scratch", "dent"), "letterbox", "v8")
    assert runner.info.version == "unversioned" and runner.info.name == "yolo"
    ins = runner.infer(make_frame(colour_frame((9, 9, 9), h=64, w=128)))
    assert [f.label for f in ins.findings] == ["scratch", "dent"]
    assert ins.findings[0].box == (44.0, 22.0, 84.0, 42.0)


def test_bare_classifier_gets_numbered_labels_and_overrides(tmp_path: Path) -> None:
    (tmp_path / "c.onnx").write_bytes(channel_mean_model((1, 3, 24, 32)).SerializeToString())
    cfg = ModelConfig(path="c.onnx", warmup_runs=1)
    runner = load_model("c", cfg, tmp_path)
    assert runner.manifest.labels == ("class_0", "class_1", "class_2")
    assert runner.pre.size == (24, 32) and runner.manifest.input.layout == "NCHW"
    over = load_model("c", cfg, tmp_path, overrides={
        "labels": ["r", "g", "b"], "output": {"activation": "none"}, "input": {"color": "BGR"}})
    ins = over.infer(make_frame(colour_frame((255, 0, 0))))
    assert ins.findings[0] == Finding("r", pytest.approx(1.0))  # BGR fed as is: channel 0


def test_bare_nhwc_model_layout_is_guessed(tmp_path: Path) -> None:
    model = channel_mean_model((1, 24, 32, 3), layout="NHWC")
    (tmp_path / "c.onnx").write_bytes(model.SerializeToString())
    runner = load_model("c", ModelConfig(path="c.onnx", warmup_runs=1), tmp_path)
    assert runner.manifest.input.layout == "NHWC" and runner.pre.size == (24, 32)
    ins = runner.infer(make_frame(colour_frame((0, 255, 0))))
    assert ins.findings[0].label == "class_1"  # green, RGB order


def test_overrides_apply_on_top_of_a_manifest(tmp_path: Path) -> None:
    write_model_dir(tmp_path / "m", channel_mean_model(), manifest())
    runner = load_model("m", CFG, tmp_path, overrides={"output": {"activation": "softmax"}})
    assert runner.manifest.activation == "softmax" and runner.manifest.name == "test-model"
    ins = runner.infer(make_frame(colour_frame((0, 0, 255))))
    assert sum(f.score for f in ins.findings) == pytest.approx(1.0)
