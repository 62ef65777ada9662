"""Synthetic conveyor camera: parts with known defects, from a seed and a schedule."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from agent.capture.sources.camera_options import CameraOptions


class SyntheticCameraConfig(CameraOptions):
    type: Literal["synthetic"] = Field(description="Synthetic conveyor generator (ground truth known).")
    seed: int = Field(0, description="Random seed: the same seed gives the same parts and defects.")
    width: int = Field(320, ge=32, le=4096, description="Frame width in pixels.")
    height: int = Field(240, ge=32, le=4096, description="Frame height in pixels.")
    frames_per_part: int = Field(8, ge=1, description="Frames each part is in view.")
    defect_rate: float = Field(0.3, ge=0, le=1, description="Share of parts with a defect (ignored with a schedule).")
    schedule: list[str | None] | None = Field(None, description="Cycled list of defects per part (null = good part), e.g. [null, null, scratch].")
    max_frames: int | None = Field(None, ge=1, description="End after this many frames; None = endless.")
