"""Small ONNX graphs built with onnx.helper, for real onnxruntime sessions in tests.

- `constant_model`: outputs fixed tensors (exactly known YOLO / anomaly / segmentation
  outputs) that still depend on the input (0 * mean(input) is added), so the session
  really runs on the frame.
- `channel_mean_model`: logits = per-channel mean of the input tensor, so a test can
  steer the classification through the frame's colour (checks colour order, scale and
  layout end to end).
- `sqrt_model`: logits = sqrt(mean(input) - 0.5): finite for bright frames, NaN for dark.
- `write_model_dir`: model.onnx + model.yaml (with the right sha256) in a folder.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import yaml
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
IR_VERSION = 8
Dim = int | str


def _finish(nodes: list[onnx.NodeProto], inp: onnx.ValueInfoProto,
            outputs: list[onnx.ValueInfoProto], metadata: Mapping[str, str] | None) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "test", [inp], outputs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    for key, value in (metadata or {}).items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(model)
    return model


def image_input(name: str = "images", shape: Sequence[Dim] = (1, 3, 32, 32),
                elem: int = TensorProto.FLOAT) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, elem, list(shape))


def constant_model(outputs: Mapping[str, np.ndarray], input_name: str = "images",
                   input_shape: Sequence[Dim] = (1, 3, 32, 32),
                   metadata: Mapping[str, str] | None = None,
                   elem: int = TensorProto.FLOAT) -> onnx.ModelProto:
    """Each output = its constant + 0 * mean(input)."""
    nodes = [
        helper.make_node("Cast", [input_name], ["x_f"], to=TensorProto.FLOAT),
        helper.make_node("ReduceMean", ["x_f"], ["x_mean"], keepdims=0),
        helper.make_node("Constant", [], ["zero"], value=numpy_helper.from_array(np.float32(0), "zero")),
        helper.make_node("Mul", ["x_mean", "zero"], ["x_zero"]),
    ]
    infos = []
    for name, value in outputs.items():
        arr = np.asarray(value)
        nodes.append(helper.make_node("Constant", [], [f"{name}_c"],
                                      value=numpy_helper.from_array(arr.astype(np.float32), f"{name}_v")))
        nodes.append(helper.make_node("Add", [f"{name}_c", "x_zero"], [name]))
        infos.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, list(arr.shape)))
    return _finish(nodes, image_input(input_name, input_shape, elem), infos, metadata)


def channel_mean_model(input_shape: Sequence[Dim] = ("batch", 3, 24, 32), layout: str = "NCHW",
                       input_name: str = "input", output_name: str = "logits",
                       elem: int = TensorProto.FLOAT) -> onnx.ModelProto:
    """logits (batch, 3) = mean of each input channel."""
    axes = [2, 3] if layout == "NCHW" else [1, 2]
    nodes = [helper.make_node("Cast", [input_name], ["x_f"], to=TensorProto.FLOAT),
             helper.make_node("ReduceMean", ["x_f"], [output_name], axes=axes, keepdims=0)]
    out = helper.make_tensor_value_info(output_name, TensorProto.FLOAT, [input_shape[0], 3])
    return _finish(nodes, image_input(input_name, input_shape, elem), [out], None)


def sqrt_model(input_shape: Sequence[Dim] = (1, 3, 16, 16)) -> onnx.ModelProto:
    """logits (1, 2) = sqrt(mean(input) - 0.5) twice: NaN when the frame is dark."""
    nodes = [
        helper.make_node("ReduceMean", ["input"], ["m"], axes=[1, 2, 3], keepdims=0),
        helper.make_node("Constant", [], ["half"], value=numpy_helper.from_array(np.float32(0.5), "h")),
        helper.make_node("Sub", ["m", "half"], ["d"]),
        helper.make_node("Sqrt", ["d"], ["s"]),
        helper.make_node("Constant", [], ["shape"], value=numpy_helper.from_array(np.array([1, 1], np.int64), "sh")),
        helper.make_node("Reshape", ["s", "shape"], ["s2"]),
        helper.make_node("Concat", ["s2", "s2"], ["logits"], axis=1),
    ]
    out = helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 2])
    return _finish(nodes, image_input("input", input_shape), [out], None)


def write_model_dir(folder: Path, model: onnx.ModelProto | bytes, manifest: dict[str, Any] | None,
                    sha256: str | None = None) -> Path:
    """model.onnx (+ model.yaml with the file's sha256 unless `sha256` is given)."""
    folder.mkdir(parents=True, exist_ok=True)
    data = model if isinstance(model, bytes) else model.SerializeToString()
    (folder / "model.onnx").write_bytes(data)
    if manifest is not None:
        doc = {"sha256": sha256 or hashlib.sha256(data).hexdigest(), **manifest}
        (folder / "model.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return folder
