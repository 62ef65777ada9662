"""Build a Camera (source + options) from its config."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from agent.capture.base import FrameSource
from agent.capture.camera import Camera
from agent.capture.genicam.config import GenICamCameraConfig
from agent.capture.genicam.source import build_genicam_source
from agent.capture.sources.folder_source import FolderCameraConfig, build_folder_source
from agent.capture.sources.opencv_source import OpenCVCameraConfig, build_opencv_source
from agent.capture.sources.synthetic_source import SyntheticCameraConfig, build_synthetic_source
from agent.config.models import CameraConfig


def build_source(name: str, cfg: CameraConfig, base_dir: Path) -> FrameSource:
    """The frame source for one camera config; relative paths resolve against base_dir."""
    if isinstance(cfg, OpenCVCameraConfig):
        return build_opencv_source(name, cfg, base_dir)
    if isinstance(cfg, FolderCameraConfig):
        return build_folder_source(name, cfg, base_dir)
    if isinstance(cfg, GenICamCameraConfig):
        return build_genicam_source(name, cfg)
    if isinstance(cfg, SyntheticCameraConfig):
        return build_synthetic_source(name, cfg, base_dir)
    raise TypeError(f"camera {name!r}: unknown source type {type(cfg).__name__}")


def build_camera(
    name: str,
    cfg: CameraConfig,
    base_dir: Path,
    clock: Callable[[], float] = time.monotonic,
) -> Camera:
    """A Camera (not started) for `cfg`; the config is also its CameraOptions."""
    return Camera(name, build_source(name, cfg, base_dir), cfg, clock)
