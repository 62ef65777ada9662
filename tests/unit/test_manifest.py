"""The model manifest (model.yaml): the documented format parses, mistakes are named."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agent.inference.errors import ModelLoadError
from agent.inference.manifest import locate, parse_manifest, read_manifest

REPO = Path(__file__).resolve().parents[2]
SHA = "ab" * 32

EXAMPLE = f"""
name: defect-cnn
version: "1.0.0"
sha256: {SHA}
task: classification
input: {{name: input, layout: NCHW, size: [128, 96], color: RGB, resize: resize,
        scale: 0.00392156862745098, mean: [0, 0, 0], std: [1, 1, 1]}}
labels: [ok, scratch, spot, crack, dent]
output: {{activation: softmax}}
provenance: {{training_data: synthetic, heldout: seed 4242, metrics: {{accuracy: 0.99}},
             made_by: train.py, confusion: confusion.txt}}
"""


def base(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"name": "m", "version": "1", "sha256": SHA, "task": "classification",
                            "labels": ["ok", "ng"]}
    data.update(changes)
    return data


def test_the_documented_format_parses(tmp_path: Path) -> None:
    path = tmp_path / "model.yaml"
    path.write_text(EXAMPLE)
    m = read_manifest(path)
    assert (m.name, m.version, m.sha256, m.task) == ("defect-cnn", "1.0.0", SHA, "classification")
    assert m.input.size == (128, 96) and m.input.layout == "NCHW" and m.input.color == "RGB"
    assert m.input.scale == pytest.approx(1 / 255) and m.input.channels == 3
    assert m.labels == ("ok", "scratch", "spot", "crack", "dent")
    assert m.activation == "softmax"
    assert m.provenance is not None and m.provenance.metrics["accuracy"] == 0.99
    assert m.provenance.model_extra == {"confusion": "confusion.txt"}  # free-form is kept


def test_defaults_per_task() -> None:
    det = parse_manifest(base(task="detection", output={"yolo_layout": "v8"}), "x")
    assert det.activation == "none" and det.output.conf_threshold == 0.25
    assert det.output.nms_iou == 0.45
    anomaly = parse_manifest(base(task="anomaly", labels=[]), "x")
    assert anomaly.activation == "none" and anomaly.output.anomaly_threshold == 0.5
    seg = parse_manifest(base(task="segmentation", labels=["bg", "crack"]), "x")
    assert seg.activation == "softmax"
    assert parse_manifest(base(output={"activation": "sigmoid"}), "x").activation == "sigmoid"


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (base(outptu={}), ["outptu: unknown key"]),
        (base(input={"sise": [1, 2]}), ["input.sise: unknown key"]),
        (base(sha256="xyz"), ["sha256"]),
        ({"version": "1"}, ["name: required key is missing"]),
        (base(task="detection"), ["yolo_layout"]),
        (base(task="detection", output={"yolo_layout": "v9"}), ["yolo_layout"]),
        (base(labels=[]), ["classification needs labels"]),
        (base(labels=["a", "a"]), ["unique"]),
        (base(input={"mean": [0, 0]}), ["mean has 2 values", "needs 3"]),
        (base(input={"std": [1, 0, 1]}), ["std must not contain 0"]),
        (base(input={"layout": "CHW"}), ["input.layout"]),
        (base(input={"size": [0, 4]}), ["size must be positive"]),
        ([1, 2], ["must be a YAML mapping"]),
    ],
)
def test_mistakes_are_named(data: Any, words: list[str]) -> None:
    with pytest.raises(ModelLoadError) as err:
        parse_manifest(data, "models/m/model.yaml")
    msg = str(err.value)
    assert msg.startswith("models/m/model.yaml: ")
    for w in words:
        assert w in msg


def test_unreadable_or_broken_yaml_is_named(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="cannot read the manifest"):
        read_manifest(tmp_path / "missing.yaml")
    bad = tmp_path / "model.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(ModelLoadError, match="not valid YAML"):
        read_manifest(bad)


def test_grey_models_take_one_mean_and_std() -> None:
    m = parse_manifest(base(input={"color": "GRAY", "mean": [0.5], "std": [0.25]}), "x")
    assert m.input.channels == 1


def test_locate_finds_the_onnx_file_and_its_manifest(tmp_path: Path) -> None:
    folder = tmp_path / "m"
    folder.mkdir()
    assert locate(folder) == (folder / "model.onnx", None)
    (folder / "model.yaml").write_text("x")
    assert locate(folder) == (folder / "model.onnx", folder / "model.yaml")
    bare = tmp_path / "yolo.onnx"
    assert locate(bare) == (bare, None)
    (tmp_path / "yolo.yaml").write_text("x")
    assert locate(bare) == (bare, tmp_path / "yolo.yaml")


def test_the_bundled_manifest_parses() -> None:
    m = read_manifest(REPO / "models" / "defect-cnn" / "model.yaml")
    assert m.name == "defect-cnn" and m.task == "classification"
    assert m.labels[0] == "ok" and {"scratch", "spot", "crack"} <= set(m.labels)
