"""The model manifest (model.yaml): what the graph expects and how to decode its outputs.

A model folder holds `model.onnx` and `model.yaml`. The manifest names the model and
its version, the sha256 of the onnx file (checked at load), the task, the input
(tensor name, layout, size, colour order, scale/mean/std, resize or letterbox; the
dtype is read from the graph), the labels, the output decoding and where the model
came from. See models/defect-cnn/model.yaml for a complete example.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from agent.config.base import Strict
from agent.inference.errors import ModelLoadError

Task = Literal["classification", "detection", "anomaly", "segmentation"]
Activation = Literal["softmax", "sigmoid", "none"]
YoloLayout = Literal["v5", "v8", "v11", "end2end"]

MANIFEST_FILE = "model.yaml"
ONNX_FILE = "model.onnx"


class InputSpec(Strict):
    name: str | None = Field(None, description="Input tensor name; None = the graph's only input.")
    layout: Literal["NCHW", "NHWC"] = Field("NCHW", description="Tensor layout.")
    size: tuple[int, int] | None = Field(None, description="(height, width) fed to the model; None = from the graph.")
    color: Literal["RGB", "BGR", "GRAY"] = Field("RGB", description="Channel order the model was trained on.")
    resize: Literal["resize", "letterbox"] = Field("resize", description="Stretch to size, or keep the aspect ratio and pad (YOLO).")
    scale: float = Field(1 / 255, gt=0, description="Pixel values are multiplied by this first.")
    mean: tuple[float, ...] = Field((0.0, 0.0, 0.0), description="Subtracted after scaling, per channel (model channel order).")
    std: tuple[float, ...] = Field((1.0, 1.0, 1.0), description="Divided after subtracting the mean, per channel.")
    pad_value: int = Field(114, ge=0, le=255, description="Letterbox padding grey level.")

    @property
    def channels(self) -> int:
        return 1 if self.color == "GRAY" else 3

    @model_validator(mode="after")
    def _check(self) -> InputSpec:
        if self.size is not None and min(self.size) < 1:
            raise ValueError(f"size must be positive (height, width), got {list(self.size)}")
        for key in ("mean", "std"):
            values = getattr(self, key)
            if len(values) not in (1, self.channels):
                raise ValueError(f"{key} has {len(values)} values; color {self.color} "
                                 f"needs {self.channels}")
        if any(s == 0 for s in self.std):
            raise ValueError("std must not contain 0")
        return self


class OutputSpec(Strict):
    activation: Activation | None = Field(None, description="Applied to raw scores; None = the task's default (softmax for classification and segmentation, none otherwise).")
    yolo_layout: YoloLayout | None = Field(None, description="Detection output: v5 (N, 5+nc) with objectness; v8/v11 (4+nc, N); end2end (N, 6) x1 y1 x2 y2 score class.")
    conf_threshold: float = Field(0.25, ge=0, le=1, description="Detection: boxes below this score are dropped.")
    nms_iou: float = Field(0.45, gt=0, le=1, description="Detection: class-aware NMS IoU threshold.")
    max_detections: int = Field(300, ge=1, description="Detection: keep at most this many boxes.")
    anomaly_threshold: float = Field(0.5, description="Anomaly: image score and map level above which a region is reported.")
    map_threshold: float | None = Field(None, description="Anomaly: pixel threshold of the map; None = anomaly_threshold.")
    min_region_px: int = Field(1, ge=1, description="Anomaly/segmentation: regions smaller than this (output-map pixels) are ignored.")
    score_output: str | None = Field(None, description="Anomaly: name of the image-score output (default: pred_score, or the one-value output).")
    map_output: str | None = Field(None, description="Anomaly: name of the anomaly-map output (default: anomaly_map, or the 4-D output).")


class Provenance(BaseModel):
    """Free-form record of how the model was made (documentation, never behaviour)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    training_data: str | None = None
    heldout: str | None = None
    metrics: dict[str, Any] = Field(default_factory=dict)
    made_by: str | None = None


class Manifest(Strict):
    name: str = Field(min_length=1, description="Model name.")
    version: str = Field(min_length=1, description="Model version.")
    sha256: str | None = Field(None, pattern=r"^[0-9a-fA-F]{64}$", description="sha256 of model.onnx; checked at load.")
    task: Task = Field("classification", description="What the outputs mean.")
    input: InputSpec = Field(default_factory=InputSpec, description="Input tensor and pre-processing.")
    labels: tuple[str, ...] = Field((), description="Class labels in output order.")
    output: OutputSpec = Field(default_factory=OutputSpec, description="Output decoding.")
    provenance: Provenance | None = Field(None, description="Training data, held-out set, metrics.")

    @model_validator(mode="after")
    def _check(self) -> Manifest:
        if self.task in ("classification", "detection", "segmentation") and not self.labels:
            raise ValueError(f"task {self.task} needs labels")
        if len(set(self.labels)) != len(self.labels):
            raise ValueError(f"labels must be unique, got {list(self.labels)}")
        if self.task == "detection" and self.output.yolo_layout is None:
            raise ValueError("task detection needs output.yolo_layout (v5, v8, v11 or end2end)")
        return self

    @property
    def activation(self) -> Activation:
        if self.output.activation is not None:
            return self.output.activation
        return "softmax" if self.task in ("classification", "segmentation") else "none"


def parse_manifest(data: Any, where: str) -> Manifest:
    """Validate manifest data; `where` names the file in the error."""
    if not isinstance(data, dict):
        raise ModelLoadError(f"{where}: the manifest must be a YAML mapping")
    try:
        return Manifest.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(_format_error(e) for e in exc.errors())
        raise ModelLoadError(f"{where}: invalid manifest: {problems}") from None


def _format_error(err: Any) -> str:
    key = ".".join(str(p) for p in err["loc"]) or "(top level)"
    if err["type"] == "extra_forbidden":
        return f"{key}: unknown key"
    if err["type"] == "missing":
        return f"{key}: required key is missing"
    return f"{key}: {err['msg']}"


def read_manifest(path: Path) -> Manifest:
    """Read and validate a model.yaml file."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ModelLoadError(f"{path}: cannot read the manifest: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ModelLoadError(f"{path}: the manifest is not valid YAML: {exc}") from None
    return parse_manifest(data, str(path))


def locate(path: Path) -> tuple[Path, Path | None]:
    """(onnx file, manifest file or None) for a model folder or a bare .onnx file."""
    if path.is_dir():
        manifest = path / MANIFEST_FILE
        return path / ONNX_FILE, manifest if manifest.is_file() else None
    sibling = path.with_suffix(".yaml")  # model.onnx -> model.yaml, foo.onnx -> foo.yaml
    return path, sibling if path.suffix == ".onnx" and sibling.is_file() else None
