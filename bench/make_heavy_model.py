"""Write a heavier classification model folder (model.onnx + model.yaml) for benchmarks.

The bundled defect-cnn runs in ~0.3 ms, less than decoding one frame, so pipeline
ratios against bare `session.run` mostly measure decode and Python overhead. This model
(random weights, 224x224 input, ~0.3 GMAC) runs in milliseconds like a typical
production classifier, to show the pipeline overhead where inference dominates:

    .venv/bin/python bench/make_heavy_model.py /tmp/heavy
    .venv/bin/python bench/bench_inference.py --model /tmp/heavy --size 640x480

`--yolo`: a YOLO-sized network instead (640x640 input, a strided 3x3 conv backbone of
~4 GMAC, as YOLOv8n's 8.7 GFLOPs): what OpenVINO vs the CPU provider is benched on
(bench/bench_openvino.py).
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

import numpy as np
import onnx
import yaml
from onnx import TensorProto, helper, numpy_helper

LABELS = ["ok", "scratch", "spot", "crack", "dent"]


def _conv(name: str, x: str, cin: int, cout: int, rng: np.random.Generator,
          inits: list[onnx.TensorProto], stride: int = 1) -> list[onnx.NodeProto]:
    w = rng.normal(0, (2 / (cin * 9)) ** 0.5, (cout, cin, 3, 3)).astype(np.float32)
    inits.append(numpy_helper.from_array(w, f"{name}_w"))
    inits.append(numpy_helper.from_array(np.zeros(cout, np.float32), f"{name}_b"))
    return [helper.make_node("Conv", [x, f"{name}_w", f"{name}_b"], [f"{name}_c"],
                             kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[stride, stride]),
            helper.make_node("Relu", [f"{name}_c"], [name])]


def _with_head(name: str, nodes: list[onnx.NodeProto], inits: list[onnx.TensorProto],
               rng: np.random.Generator, x: str, cin: int, side: int) -> onnx.ModelProto:
    """Global pooling and a linear head on `x` (cin channels); the checked model."""
    nodes.append(helper.make_node("GlobalAveragePool", [x], ["g"]))
    nodes.append(helper.make_node("Flatten", ["g"], ["f"]))
    inits.append(numpy_helper.from_array(
        rng.normal(0, 0.1, (cin, len(LABELS))).astype(np.float32), "fc_w"))
    nodes.append(helper.make_node("MatMul", ["f", "fc_w"], ["logits"]))
    graph = helper.make_graph(
        nodes, name,
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, side, side])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", len(LABELS)])],
        inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def build() -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    inits: list[onnx.TensorProto] = []
    nodes = _conv("c1", "input", 3, 32, rng, inits, stride=2)      # 112x112
    nodes += _conv("c2", "c1", 32, 64, rng, inits)                  # 112x112
    nodes.append(helper.make_node("MaxPool", ["c2"], ["p2"], kernel_shape=[2, 2],
                                  strides=[2, 2]))                  # 56x56
    nodes += _conv("c3", "p2", 64, 128, rng, inits)
    return _with_head("heavy", nodes, inits, rng, "c3", 128, 224)


# YOLO-sized backbone: (out channels, stride) per 3x3 conv, from a 640x640 input
YOLO_LAYERS = [(16, 2), (32, 2), (32, 1), (32, 1), (32, 1), (64, 2), (64, 1), (64, 1),
               (128, 2), (128, 1), (128, 1), (256, 2), (256, 1), (256, 1), (256, 1), (256, 1),
               (256, 1), (512, 2), (512, 1), (512, 1)]


def build_yolo_sized() -> tuple[onnx.ModelProto, float]:
    """The backbone above, global pooling, a linear head; returns (model, GMAC)."""
    rng = np.random.default_rng(0)
    inits: list[onnx.TensorProto] = []
    nodes: list[onnx.NodeProto] = []
    x, cin, side, macs = "input", 3, 640, 0.0
    for i, (cout, stride) in enumerate(YOLO_LAYERS):
        nodes += _conv(f"y{i}", x, cin, cout, rng, inits, stride=stride)
        side //= stride
        macs += side * side * cout * cin * 9
        x, cin = f"y{i}", cout
    return _with_head("yolo_sized", nodes, inits, rng, x, cin, 640), macs / 1e9


def write(folder: Path, yolo: bool = False) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    model, size = (build_yolo_sized()[0], 640) if yolo else (build(), 224)
    data = model.SerializeToString()
    (folder / "model.onnx").write_bytes(data)
    manifest = {
        "name": "yolo-sized-bench" if yolo else "heavy-bench", "version": "0.0.1", "sha256": hashlib.sha256(data).hexdigest(),
        "task": "classification",
        "input": {"name": "input", "layout": "NCHW", "size": [size, size], "color": "RGB",
                  "resize": "resize", "scale": 1 / 255, "mean": [0.0, 0.0, 0.0],
                  "std": [1.0, 1.0, 1.0]},
        "labels": LABELS, "output": {"activation": "softmax"},
        "provenance": {"training_data": "none: random weights, for benchmarks only",
                       "made_by": "bench/make_heavy_model.py"},
    }
    (folder / "model.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
    return folder


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("folder", type=Path)
    ap.add_argument("--yolo", action="store_true", help="the YOLO-sized network (640x640)")
    args = ap.parse_args()
    print(write(args.folder, args.yolo))


if __name__ == "__main__":
    main()
