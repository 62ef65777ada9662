"""Real ONNX model folders for the model lifecycle tests (hot swap, shadow, guards).

- `retagged_bundled`: the bundled defect-cnn with one metadata entry added: the same
  network, another sha256 (a "new version" that behaves like the old one).
- `always_model`: classifies every frame as one label (a deliberately different model).
- `textured_nan_model`: finite on a uniform picture (the load's probe and warm-up pass),
  NaN on any textured frame: every real inspection fails.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
import yaml
from onnx import TensorProto, helper, numpy_helper

from tests.conftest import REPO
from tests.integration.onnx_graphs import _finish, constant_model, image_input, write_model_dir

BUNDLED = REPO / "models" / "defect-cnn"
LABELS = ["ok", "scratch", "spot", "crack", "dent"]
SHAPE = (1, 3, 96, 128)


def _manifest(version: str, **extra: Any) -> dict[str, Any]:
    base = yaml.safe_load((BUNDLED / "model.yaml").read_text())
    base.pop("sha256", None)
    base.pop("provenance", None)
    return {**base, "version": version, **extra}


def retagged_bundled(folder: Path, tag: str = "2.0.0") -> Path:
    model = onnx.load(str(BUNDLED / "model.onnx"))
    entry = model.metadata_props.add()
    entry.key, entry.value = "retagged", tag
    return write_model_dir(folder, model, _manifest(tag))


def always_model(folder: Path, label: str, version: str = "always") -> Path:
    logits = np.full((1, len(LABELS)), -4.0, np.float32)
    logits[0, LABELS.index(label)] = 4.0
    model = constant_model({"logits": logits}, input_name="input", input_shape=SHAPE)
    return write_model_dir(folder, model, _manifest(version))


def textured_nan_model(folder: Path, version: str = "nan") -> Path:
    """logits = log(1e-4 - variance(input)) x5: finite for a flat input, NaN otherwise."""
    nodes = [
        helper.make_node("ReduceMean", ["input"], ["m"], keepdims=0),
        helper.make_node("Mul", ["input", "input"], ["sq"]),
        helper.make_node("ReduceMean", ["sq"], ["m2"], keepdims=0),
        helper.make_node("Mul", ["m", "m"], ["mm"]),
        helper.make_node("Sub", ["m2", "mm"], ["var"]),
        helper.make_node("Constant", [], ["eps"],
                         value=numpy_helper.from_array(np.float32(1e-4), "eps_v")),
        helper.make_node("Sub", ["eps", "var"], ["d"]),
        helper.make_node("Log", ["d"], ["l"]),
        helper.make_node("Constant", [], ["shape"],
                         value=numpy_helper.from_array(np.array([1, 1], np.int64), "sh")),
        helper.make_node("Reshape", ["l", "shape"], ["l2"]),
        helper.make_node("Concat", ["l2"] * len(LABELS), ["logits"], axis=1),
    ]
    out = helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, len(LABELS)])
    model = _finish(nodes, image_input("input", SHAPE), [out], None)
    return write_model_dir(folder, model, _manifest(version))
