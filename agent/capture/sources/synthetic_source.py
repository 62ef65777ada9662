"""Synthetic conveyor camera: parts with known defects, from a seed and a schedule."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from agent.capture.base import Grab, SourceError
from agent.capture.sources.camera_options import CameraOptions
from agent.config.plugin import Plugin


class SyntheticCameraConfig(CameraOptions):
    type: Literal["synthetic"] = Field(description="Synthetic conveyor generator (ground truth known).")
    seed: int = Field(0, description="Random seed: the same seed gives the same parts and defects.")
    width: int = Field(320, ge=64, le=4096, description="Frame width in pixels.")
    height: int = Field(240, ge=64, le=4096, description="Frame height in pixels.")
    frames_per_part: int = Field(8, ge=1, description="Frames each part is in view.")
    defect_rate: float = Field(0.3, ge=0, le=1, description="Share of parts with a defect (ignored with a schedule).")
    schedule: list[str | None] | None = Field(None, description="Cycled list of defects per part (null = good part), e.g. [null, null, scratch].")
    max_frames: int | None = Field(None, ge=1, description="End after this many frames; None = endless.")


PLUGIN = Plugin("synthetic", SyntheticCameraConfig, "agent.capture.sources.synthetic_source:build_synthetic_source")


class SyntheticSource:
    """Frames from the conveyor generator; each carries the part id and its true label.

    The scene is made at the first open() and kept across reconnects, so the part
    sequence continues; `max_frames` counts over the whole run.
    """

    live = False

    def __init__(self, camera_id: str, cfg: SyntheticCameraConfig) -> None:
        self.camera_id = camera_id
        self.cfg = cfg
        self.description = f"synthetic conveyor seed={cfg.seed} {cfg.width}x{cfg.height}"
        self._scene: Any = None
        self.frames = 0

    def open(self) -> None:
        if self._scene is not None:
            return
        from agent.capture.synthetic_scene import ConveyorScene  # heavy; only when used

        cfg = self.cfg
        try:
            self._scene = ConveyorScene(
                seed=cfg.seed,
                width=cfg.width,
                height=cfg.height,
                frames_per_part=cfg.frames_per_part,
                defect_rate=cfg.defect_rate,
                schedule=cfg.schedule,
            )
        except ValueError as exc:
            raise SourceError(f"{self.description}: {exc}") from None

    def read(self, clock: Callable[[], float]) -> Grab | None:
        if self._scene is None:
            raise SourceError(f"{self.description} is not open")
        if self.cfg.max_frames is not None and self.frames >= self.cfg.max_frames:
            return None
        frame = self._scene.next_frame()
        self.frames += 1
        return Grab(image=frame.image, t_grab=clock(), part_id=frame.part_id, truth=frame.label)

    def close(self) -> None:
        pass  # the scene is kept: a reconnect continues the same conveyor


def build_synthetic_source(name: str, cfg: SyntheticCameraConfig, base_dir: Path) -> SyntheticSource:
    return SyntheticSource(name, cfg)
