"""Files the agent reads at run time, shipped in the wheel as package data.

    agent/data/config/   demo.yaml, example-line.yaml (+ example-secrets/), JSON Schemas
    agent/data/models/   the bundled model(s): model.onnx + model.yaml each
    plc/tags.yaml        the soft PLC's tag map (package data of `plc`)

In a checkout agent/data/config and agent/data/models are links to the top-level
config/ and models/ folders (one copy of each file); pyproject.toml's package-data
puts the same files into the wheel. Code finds them with importlib.resources through
`resource_path`, never with paths relative to the source tree, so an installed
release reads exactly what the checkout reads.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

DEMO_CONFIG = "config/demo.yaml"
BUNDLED_MODEL = "defect-cnn"


def resource_path(package: str, *parts: str) -> Path:
    """The file system path of a file (or folder) shipped in `package`.

    Onnxruntime and the config loader need real paths; a wheel installs unpacked,
    so the package's resources are files on disk.
    """
    root = resources.files(package)
    if not isinstance(root, Path):  # e.g. a zip import: not how a wheel installs
        raise RuntimeError(f"package {package} is not installed as files on disk ({root!r})")
    return root.joinpath(*parts)


def data_path(*parts: str) -> Path:
    """A file or folder under agent/data, e.g. data_path("config", "demo.yaml")."""
    return resource_path(__name__, *parts)


def demo_config() -> Path:
    return data_path(*DEMO_CONFIG.split("/"))


def bundled_model(name: str = BUNDLED_MODEL) -> Path:
    """The folder of a bundled model (model.onnx + model.yaml)."""
    return data_path("models", name)

