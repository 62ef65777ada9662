"""Model outputs -> labelled findings, as pure numpy functions.

Activations, the classification decoder and the `Decoder` protocol every task's
decoder follows (agent.inference.decoders picks one): `check` compares the output
shapes with the manifest (at load), `__call__` turns the outputs of one frame into
findings. A shape a decoder cannot decode raises FrameError.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Protocol

import numpy as np

from agent.inference.errors import FrameError
from agent.inference.manifest import Activation
from agent.inference.preprocess import Geometry
from agent.types import Finding


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def sigmoid(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # overflow-free logistic


def activate(x: np.ndarray, activation: Activation, axis: int = -1) -> np.ndarray:
    if activation == "softmax":
        return softmax(x, axis)
    if activation == "sigmoid":
        return sigmoid(x)
    return np.asarray(x, dtype=np.float64)


def check_finite(outputs: Sequence[np.ndarray], names: Sequence[str]) -> None:
    for out, name in zip(outputs, names, strict=False):
        if out.dtype.kind == "f" and not np.isfinite(out).all():
            bad = int(out.size - np.count_nonzero(np.isfinite(out)))
            raise FrameError(f"output {name!r} holds {bad} NaN/inf value(s)")


class Decoder(Protocol):
    def check(self, outputs: Sequence[np.ndarray]) -> None:
        """Raise FrameError when the outputs do not fit the manifest (e.g. label count)."""

    def __call__(self, outputs: Sequence[np.ndarray], geom: Geometry) -> tuple[Finding, ...]: ...


def class_scores(logits: np.ndarray, n_labels: int) -> np.ndarray:
    """Raw classification output of a batch of one -> its n_labels scores."""
    flat = np.asarray(logits)
    if flat.ndim >= 2:
        if flat.shape[0] != 1:
            raise FrameError(f"classification output has batch {flat.shape[0]}, expected 1")
        flat = flat[0]
    flat = flat.reshape(-1)
    if flat.size != n_labels:
        raise FrameError(f"classification output has {flat.size} values but the manifest "
                         f"has {n_labels} labels (output shape {list(np.shape(logits))})")
    return flat


SMALL_OUTPUT = 64  # up to this many labels, plain floats beat numpy's per-call overhead


def _activate_floats(v: list[float], activation: Activation) -> list[float]:
    """`activate` for a few values as Python floats (same float64 arithmetic)."""
    if activation == "softmax":
        m = max(v)
        e = [math.exp(x - m) for x in v]
        total = sum(e)
        return [x / total for x in e]
    if activation == "sigmoid":
        return [0.5 * (1.0 + math.tanh(0.5 * x)) for x in v]
    return v


def classify(logits: np.ndarray, labels: Sequence[str], activation: Activation) -> tuple[Finding, ...]:
    """Every label with its score, highest first (ties keep label order)."""
    raw = class_scores(logits, len(labels))
    if raw.size <= SMALL_OUTPUT:  # the inference thread holds the GIL for this: keep it short
        p = _activate_floats(raw.astype(np.float64).tolist(), activation)  # floats, whatever the dtype
        ranked = sorted(range(len(p)), key=p.__getitem__, reverse=True)  # stable for ties
        return tuple(Finding(labels[i], p[i]) for i in ranked)
    scores = activate(raw, activation)
    order = np.argsort(-scores, kind="stable")
    return tuple(Finding(labels[i], float(scores[i])) for i in order)


class ClassificationDecoder:
    def __init__(self, labels: Sequence[str], activation: Activation) -> None:
        self.labels = tuple(labels)
        self.activation = activation

    def check(self, outputs: Sequence[np.ndarray]) -> None:
        class_scores(outputs[0], len(self.labels))

    def __call__(self, outputs: Sequence[np.ndarray], geom: Geometry) -> tuple[Finding, ...]:
        return classify(outputs[0], self.labels, self.activation)
