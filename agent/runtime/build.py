"""Factories: config sections -> objects, through the plugin registries (`agent.plugins`)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agent.capture.base import FrameSource
from agent.capture.camera import Camera
from agent.capture.sources.camera_options import CameraOptions
from agent.plugins import CAMERAS, PLCS, SINKS
from agent.protocols.base import Sink, SinkContext
from agent.protocols.link import PlcLink


def build_source(name: str, cfg: CameraOptions, base_dir: Path) -> FrameSource:
    """The frame source for one camera config; relative paths resolve against base_dir."""
    return CAMERAS.build(name, cfg, base_dir)


def build_camera(
    name: str,
    cfg: CameraOptions,
    base_dir: Path,
    clock: Callable[[], float] = time.monotonic,
) -> Camera:
    """A Camera (not started) for `cfg`; the config is also its CameraOptions."""
    return Camera(name, build_source(name, cfg, base_dir), cfg, clock)


def build_sink(name: str, cfg: Any, ctx: SinkContext) -> Sink:
    return SINKS.build(name, cfg, ctx)


def build_plc(name: str, cfg: Any, ctx: SinkContext) -> PlcLink:
    return PLCS.build(name, cfg, ctx)
