"""Errors of the inference package."""

from __future__ import annotations


class ModelLoadError(Exception):
    """A model cannot be started. The message names the model, its path and what is wrong
    (a mismatch between manifest and graph, a checksum, a missing library or pip package)."""


class FrameError(Exception):
    """One frame cannot be inspected (wrong shape or dtype, NaN output, runtime error).

    Never leaves ModelRunner.infer: it becomes `Inspection.error`.
    """
