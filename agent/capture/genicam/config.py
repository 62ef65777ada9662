"""`type: genicam` camera config: which camera, which settings, which trigger."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from agent.capture.genicam.aravis import aravis_missing
from agent.capture.sources.camera_options import CameraOptions
from agent.config.plugin import Plugin

PixelFormat = Literal[
    "Mono8", "Mono10", "Mono12", "Mono16", "BayerRG8", "BayerGR8", "BayerGB8", "BayerBG8",
    "RGB8", "BGR8",
]
TriggerMode = Literal["free-run", "software", "hardware"]


class GenICamCameraConfig(CameraOptions):
    type: Literal["genicam"] = Field(description="GigE Vision / USB3 Vision camera through Aravis (GenICam).")
    device_id: str | None = Field(None, description="Aravis device id, as `edge-agent cameras` lists it (e.g. Basler-21234567).")
    serial: str | None = Field(None, description="Camera serial number.")
    address: str | None = Field(None, description="IP address of a GigE Vision camera.")
    pixel_format: PixelFormat | None = Field(None, description="PixelFormat to set (Mono*/Bayer* are converted to BGR); None = leave the camera's.")
    exposure_us: float | None = Field(None, gt=0, description="ExposureTime in microseconds; None = leave the camera's.")
    gain: float | None = Field(None, ge=0, description="Gain (Gain or GainRaw, in the camera's unit); None = leave the camera's.")
    frame_rate: float | None = Field(None, gt=0, description="AcquisitionFrameRate set on the camera (with a trigger: the most frames per second it takes); None = leave the camera's.")
    sensor_roi: tuple[int, int, int, int] | None = Field(None, description="Region read out by the sensor [x, y, width, height] (OffsetX/OffsetY/Width/Height).")
    packet_size: int | None = Field(None, ge=220, le=16404, description="GigE: GevSCPSPacketSize in bytes (9000 with jumbo frames); None = Aravis negotiates.")
    packet_delay: int | None = Field(None, ge=0, description="GigE: inter-packet delay GevSCPD in device ticks.")
    stream_buffers: int = Field(8, ge=2, le=256, description="Buffers queued on the stream (more absorb host hiccups, each costs one frame of memory).")
    trigger: TriggerMode = Field("free-run", description="free-run: the camera streams; software: each PLC trigger fires TriggerSoftware and the station inspects that frame; hardware: the camera is triggered on a line, the frame is matched to the PLC trigger by time.")
    trigger_source: str = Field("Line0", description="hardware trigger: TriggerSource line (Line0, Line1, ...).")
    trigger_window_ms: float = Field(50.0, ge=0, le=10000, description="hardware trigger: a frame exposed up to this long before the PLC trigger was seen still belongs to it.")

    @model_validator(mode="after")
    def _check(self) -> GenICamCameraConfig:
        chosen = [k for k in ("device_id", "serial", "address") if getattr(self, k)]
        if len(chosen) != 1:
            raise ValueError("set exactly one of device_id, serial or address to choose the "
                             f"camera (got {chosen or 'none'}); `edge-agent cameras` lists them")
        if self.resolution is not None:
            raise ValueError("resolution is not used by GenICam cameras: set sensor_roi "
                             "[x, y, width, height]")
        if self.trigger != "free-run" and self.fps is not None:
            raise ValueError(f"fps drops frames to pace the stream; with trigger: {self.trigger} "
                             "every frame belongs to a part: leave fps out (frame_rate caps "
                             "the camera)")
        missing = aravis_missing()
        if missing:
            raise ValueError(missing)
        return self

    def selector(self) -> str:
        """What the camera is chosen by, for messages: `serial 1234`."""
        if self.device_id:
            return f"device {self.device_id}"
        if self.serial:
            return f"serial {self.serial}"
        return f"address {self.address}"


PLUGIN = Plugin("genicam", GenICamCameraConfig, "agent.capture.genicam.source:build_genicam_source")
