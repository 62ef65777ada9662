"""The bundled defect-cnn model: manifest matches the file and it classifies held-out frames.

Loads models/defect-cnn/model.onnx with onnxruntime directly and preprocesses exactly as
model.yaml says, on ConveyorScene frames made with a seed never used for training and with
lighting, blur and noise turned on.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import onnxruntime as ort
import pytest
import yaml

from agent.capture.synthetic_scene import LABELS, ConveyorScene

MODEL_DIR = Path(__file__).resolve().parents[2] / "models" / "defect-cnn"
TRAINING_SEEDS = {1, *range(100, 108)}  # see models/defect-cnn/train.py
TEST_SEED = 4242
TARGET_ACCURACY = 0.97
FRAMES = 240


@pytest.fixture(scope="module")
def manifest() -> dict[str, Any]:
    data = yaml.safe_load((MODEL_DIR / "model.yaml").read_text())
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def session() -> ort.InferenceSession:
    return ort.InferenceSession(str(MODEL_DIR / "model.onnx"), providers=["CPUExecutionProvider"])


def preprocess(bgr: np.ndarray, spec: dict[str, Any]) -> np.ndarray:
    """One frame -> 3-D float32 tensor, following the manifest's `input` section literally."""
    height, width = spec["size"]
    assert spec["resize"] == "resize"
    img = cv2.resize(bgr, (width, height))
    if spec["color"] == "RGB":
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    x = img.astype(np.float32) * np.float32(spec["scale"])
    x = (x - np.array(spec["mean"], np.float32)) / np.array(spec["std"], np.float32)
    return x.transpose(2, 0, 1) if spec["layout"] == "NCHW" else x


def softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_manifest_describes_the_file(manifest: dict[str, Any]) -> None:
    onnx_bytes = (MODEL_DIR / "model.onnx").read_bytes()
    assert manifest["sha256"] == hashlib.sha256(onnx_bytes).hexdigest()
    assert len(onnx_bytes) <= 5 * 1024 * 1024
    assert manifest["name"] == "defect-cnn" and manifest["version"] == "1.0.0"
    assert manifest["task"] == "classification"
    assert tuple(manifest["labels"]) == LABELS
    assert manifest["output"]["activation"] in {"softmax", "sigmoid", "none"}
    spec = manifest["input"]
    assert spec["layout"] in {"NCHW", "NHWC"} and spec["color"] in {"RGB", "BGR"}
    assert len(spec["mean"]) == len(spec["std"]) == 3 and len(spec["size"]) == 2
    assert manifest["provenance"]["metrics"]["accuracy"] >= TARGET_ACCURACY


def test_graph_matches_the_manifest(
    manifest: dict[str, Any], session: ort.InferenceSession
) -> None:
    (inp,) = session.get_inputs()
    assert inp.name == manifest["input"]["name"] == "input"
    assert inp.type == "tensor(float)"
    assert isinstance(inp.shape[0], str)  # dynamic batch
    assert list(inp.shape[2:]) == manifest["input"]["size"]
    batch = np.zeros((3, *inp.shape[1:]), dtype=np.float32)
    (out,) = session.run(None, {"input": batch})
    assert out.shape == (3, len(LABELS))


@pytest.mark.parametrize("width,height", [(320, 240), (160, 120)])
def test_classifies_held_out_conveyor_frames(
    manifest: dict[str, Any], session: ort.InferenceSession, width: int, height: int
) -> None:
    assert TEST_SEED not in TRAINING_SEEDS
    scene = ConveyorScene(
        TEST_SEED,
        width=width,
        height=height,
        defect_rate=0.5,
        lighting_jitter=0.3,
        blur_max=1.5,
        noise_std=8.0,
    )
    seen = [scene.next_frame() for _ in range(FRAMES)]
    truth = np.array([LABELS.index(f.label) for f in seen])
    assert set(truth.tolist()) == set(range(len(LABELS)))  # every class is in the test set
    x = np.stack([preprocess(f.image, manifest["input"]) for f in seen])
    (logits,) = session.run(None, {"input": x})
    probs = softmax(logits) if manifest["output"]["activation"] == "softmax" else logits
    pred = probs.argmax(axis=1)
    accuracy = float((pred == truth).mean())
    assert accuracy >= TARGET_ACCURACY, f"accuracy {accuracy:.3f}"
    # no class is sacrificed for the average, and a defect is almost never called ok
    for k, label in enumerate(LABELS):
        recall = float((pred[truth == k] == k).mean())
        assert recall >= 0.85, f"{label} recall {recall:.3f}"
    missed = float((pred[truth > 0] == 0).mean())
    assert missed <= 0.03, f"{missed:.3f} of defective frames called ok"
    # batch 1 gives the same answer as the batch
    (single,) = session.run(None, {"input": x[:1]})
    np.testing.assert_allclose(single[0], logits[0], rtol=1e-4, atol=1e-4)


def test_batch1_latency_is_within_budget(
    manifest: dict[str, Any], session: ort.InferenceSession
) -> None:
    frame = ConveyorScene(TEST_SEED).next_frame().image
    x = preprocess(frame, manifest["input"])[None]
    for _ in range(10):
        session.run(None, {"input": x})
    times = []
    for _ in range(100):
        t0 = time.perf_counter()
        session.run(None, {"input": x})
        times.append(time.perf_counter() - t0)
    assert float(np.median(times)) * 1000 <= 5.0
