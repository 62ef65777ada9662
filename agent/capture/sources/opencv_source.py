"""OpenCV VideoCapture source: device index, /dev/videoN, rtsp://, http(s)://, file, GStreamer."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from agent.capture.sources.camera_options import CameraOptions


class OpenCVCameraConfig(CameraOptions):
    type: Literal["opencv"] = Field(description="OpenCV VideoCapture source.")
    source: str | int = Field(description="Device index (0), /dev/videoN, rtsp:// or http(s):// URL, video file path, or GStreamer pipeline (with gstreamer: true).")
    rtsp_transport: Literal["tcp", "udp"] = Field("tcp", description="RTSP transport.")
    gstreamer: bool = Field(False, description="Treat `source` as a GStreamer pipeline string (needs OpenCV built with GStreamer).")
    loop: bool = Field(False, description="For video files: restart at the end instead of ending.")
