"""Image-folder source: sorted files, optional loop, fixed fps."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from agent.capture.sources.camera_options import CameraOptions


class FolderCameraConfig(CameraOptions):
    type: Literal["folder"] = Field(description="Folder of images, read in sorted order.")
    path: str = Field(description="Folder path (relative paths are relative to the config file).")
    pattern: str = Field("*", description="Glob of files to read, e.g. '*.png'.")
    loop: bool = Field(False, description="Start again at the first image after the last.")
