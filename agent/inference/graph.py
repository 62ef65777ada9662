"""What the ONNX graph says about itself, and whether the manifest agrees with it.

`bind_input` checks the manifest's input section against the graph's input (name,
size, layout, batch) and reads the dtype from the graph. `manifest_from_graph` builds a
manifest for a model that has none, from the graph, the metadata Ultralytics writes
into its exports (names, imgsz, task) and caller overrides (CLI flags).
"""

from __future__ import annotations

import ast
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnxruntime as ort

from agent.inference.manifest import Manifest, parse_manifest

ORT_DTYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16,
              "tensor(uint8)": np.uint8}


class GraphMismatch(Exception):
    """The manifest disagrees with the graph; the message says how."""


@dataclass(frozen=True)
class BoundInput:
    name: str
    size: tuple[int, int]  # (height, width)
    dtype: np.dtype


def _static(d: object) -> int | None:
    return d if isinstance(d, int) and d > 0 else None


def _only_input(session: ort.InferenceSession) -> Any:
    inputs = session.get_inputs()
    if len(inputs) != 1:
        names = [i.name for i in inputs]
        raise GraphMismatch(f"the graph has {len(inputs)} inputs {names}; edge-agent feeds "
                            f"one image tensor")
    return inputs[0]


def bind_input(manifest: Manifest, session: ort.InferenceSession) -> BoundInput:
    spec = manifest.input
    inp = _only_input(session)
    if spec.name is not None and spec.name != inp.name:
        raise GraphMismatch(f"manifest input.name is {spec.name!r} but the graph's input "
                            f"is {inp.name!r}")
    if inp.type not in ORT_DTYPES:
        raise GraphMismatch(f"graph input {inp.name!r} is {inp.type}; supported: "
                            f"{', '.join(ORT_DTYPES)}")
    shape = list(inp.shape)
    if len(shape) != 4:
        raise GraphMismatch(f"graph input {inp.name!r} has shape {shape}; expected 4-D "
                            f"({spec.layout})")
    n, h, w, c = (shape[0], shape[2], shape[3], shape[1]) if spec.layout == "NCHW" else shape
    if _static(c) is not None and c != spec.channels:
        raise GraphMismatch(f"graph input {inp.name!r} {shape} has {c} channels in "
                            f"{spec.layout} layout; manifest color {spec.color} needs "
                            f"{spec.channels} (is input.layout right?)")
    if _static(n) is not None and n != 1:
        raise GraphMismatch(f"graph input {inp.name!r} {shape} has a fixed batch of {n}; "
                            f"edge-agent feeds one frame at a time (export with batch 1 "
                            f"or a dynamic batch)")
    return BoundInput(inp.name, _size(spec.size, h, w, inp.name, shape), np.dtype(ORT_DTYPES[inp.type]))


def _size(wanted: tuple[int, int] | None, h: object, w: object, name: str,
          shape: list[Any]) -> tuple[int, int]:
    gh, gw = _static(h), _static(w)
    if wanted is None:
        if gh is None or gw is None:
            raise GraphMismatch(f"graph input {name!r} {shape} has a dynamic size; set "
                                f"input.size [height, width] in the manifest")
        return gh, gw
    if (gh is not None and gh != wanted[0]) or (gw is not None and gw != wanted[1]):
        raise GraphMismatch(f"manifest input.size is {list(wanted)} (height, width) but the "
                            f"graph input {name!r} is {shape} (height {h}, width {w})")
    return wanted


def ultralytics_meta(session: ort.InferenceSession) -> dict[str, Any]:
    """Labels, size and task from an Ultralytics export's metadata, where present."""
    meta = session.get_modelmeta().custom_metadata_map
    out: dict[str, Any] = {}
    try:
        if "names" in meta:
            names = ast.literal_eval(meta["names"])
            out["labels"] = [names[k] for k in sorted(names)] if isinstance(names, dict) else list(names)
        if "imgsz" in meta:
            out["size"] = [int(v) for v in ast.literal_eval(meta["imgsz"])]
    except (ValueError, SyntaxError, TypeError):
        return {}
    task = meta.get("task")
    if task == "detect":
        out["task"] = "detection"
        out["yolo_layout"] = "end2end" if meta.get("end2end") == "True" else "v8"
    elif task == "classify":
        out["task"] = "classification"
    return out


def _output_width(session: ort.InferenceSession, axis: int) -> int | None:
    shape = session.get_outputs()[0].shape
    return _static(shape[axis]) if len(shape) > abs(axis) else None


def _default_labels(session: ort.InferenceSession, task: str, layout: str | None) -> list[str]:
    if task == "anomaly":
        return []
    if layout == "end2end":
        raise GraphMismatch("an end2end detector's output does not tell the number of "
                            "classes; give the labels")
    width = {"v5": (-1, 5), "v8": (1, 4), "v11": (1, 4)}.get(layout or "", (-1, 0))
    n = _output_width(session, 1 if task == "segmentation" else width[0])
    if n is None or n - width[1] < 1:
        raise GraphMismatch("cannot tell the number of classes from the graph's output "
                            f"{session.get_outputs()[0].shape}; give the labels")
    return [f"class_{k}" for k in range(n - width[1])]


def _guess_layout(session: ort.InferenceSession) -> dict[str, Any]:
    """NHWC when the last axis looks like channels and the second does not; GRAY for 1."""
    shape = list(_only_input(session).shape)
    if len(shape) != 4:
        return {}
    nhwc = shape[3] in (1, 3) and shape[1] not in (1, 3)
    channels = shape[3] if nhwc else shape[1]
    out: dict[str, Any] = {"layout": "NHWC" if nhwc else "NCHW"}
    if channels == 1:
        out.update(color="GRAY", mean=[0.0], std=[1.0])
    return out


def manifest_from_graph(session: ort.InferenceSession, name: str,
                        overrides: Mapping[str, Any] | None = None) -> Manifest:
    """A manifest for a bare .onnx file: graph facts, Ultralytics metadata, then overrides."""
    meta = ultralytics_meta(session)
    over = dict(overrides or {})
    data: dict[str, Any] = {"name": name, "version": "unversioned",
                            "task": over.get("task", meta.get("task", "classification"))}
    inp: dict[str, Any] = {"name": _only_input(session).name, **_guess_layout(session)}
    if meta.get("task") == "detection":
        inp["resize"] = "letterbox"
    if "size" in meta:
        inp["size"] = meta["size"]
    inp.update(over.get("input", {}))
    out: dict[str, Any] = {}
    if meta.get("yolo_layout") and data["task"] == "detection":
        out["yolo_layout"] = meta["yolo_layout"]
    if meta.get("task") == "classification":
        out["activation"] = "none"  # Ultralytics classifiers end in softmax
    out.update(over.get("output", {}))
    labels = over.get("labels") or meta.get("labels")
    if not labels:
        labels = _default_labels(session, data["task"], out.get("yolo_layout"))
    data.update(input=inp, output=out, labels=list(labels))
    return parse_manifest(data, f"model {name!r} (no manifest: built from the graph)")


def output_names(session: ort.InferenceSession) -> Sequence[str]:
    return [o.name for o in session.get_outputs()]
