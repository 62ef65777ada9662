"""OpenCV VideoCapture source: device index, /dev/videoN, rtsp://, http(s)://, file, GStreamer."""

from __future__ import annotations

import os
import re
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from agent.capture.base import Grab, SourceError
from agent.capture.redact import redact_url, scrub
from agent.capture.rtsp_check import rtsp_failure
from agent.capture.sources.camera_options import CameraOptions
from agent.config.plugin import Plugin

TargetKind = Literal["device", "stream", "file", "gstreamer"]
_ENV_LOCK = threading.Lock()  # OPENCV_FFMPEG_CAPTURE_OPTIONS is process-wide


class OpenCVCameraConfig(CameraOptions):
    type: Literal["opencv"] = Field(description="OpenCV VideoCapture source.")
    source: str | int = Field(description="Device index (0), /dev/videoN, rtsp:// or http(s):// URL, video file path, or GStreamer pipeline (with gstreamer: true).")
    rtsp_transport: Literal["tcp", "udp"] = Field("tcp", description="RTSP transport.")
    gstreamer: bool = Field(False, description="Treat `source` as a GStreamer pipeline string (needs OpenCV built with GStreamer).")
    loop: bool = Field(False, description="For video files: restart at the end instead of ending.")
    mjpeg_decoder: Literal["libjpeg-turbo", "backend"] = Field("libjpeg-turbo", description="Motion-JPEG files and network streams: decode each JPEG with OpenCV's libjpeg-turbo (cv2.imdecode; about 40% less CPU than FFmpeg's decoder and colour conversion), or leave decoding to the capture backend.")

    @model_validator(mode="after")
    def _gstreamer_available(self) -> OpenCVCameraConfig:
        if self.gstreamer and not opencv_has_gstreamer():
            raise ValueError(
                "gstreamer: true needs OpenCV built with GStreamer; the installed "
                "opencv-python-headless has none (install an OpenCV build with GStreamer)"
            )
        return self


PLUGIN = Plugin("opencv", OpenCVCameraConfig, "agent.capture.sources.opencv_source:build_opencv_source")


@cache
def opencv_has_gstreamer() -> bool:
    import cv2

    info = cv2.getBuildInformation()
    return re.search(r"GStreamer:\s+YES", info) is not None


@dataclass(frozen=True)
class CaptureTarget:
    """What to hand to cv2.VideoCapture, resolved from the config."""

    kind: TargetKind
    target: str | int
    description: str  # for messages: never a URL password


def resolve_target(source: str | int, gstreamer: bool, base_dir: Path) -> CaptureTarget:
    """Classify `source`; relative file paths resolve against `base_dir`."""
    if gstreamer:
        return CaptureTarget("gstreamer", str(source), f"gstreamer pipeline {str(source)[:60]!r}")
    if isinstance(source, int) or source.strip().isdigit():
        index = int(source)
        return CaptureTarget("device", index, f"device {index}")
    if source.startswith("/dev/"):
        return CaptureTarget("device", source, f"device {source}")
    if "://" in source:
        return CaptureTarget("stream", source, redact_url(source))
    path = Path(source).expanduser()
    path = path if path.is_absolute() else base_dir / path
    return CaptureTarget("file", str(path), f"file {path}")


class OpenCVSource:
    """A cv2.VideoCapture read with grab() (timestamp) then retrieve() (decode)."""

    def __init__(self, camera_id: str, target: CaptureTarget, cfg: OpenCVCameraConfig) -> None:
        self.camera_id = camera_id
        self.target = target
        self.cfg = cfg
        self.description = target.description
        self.live = target.kind != "file"
        self._cap: Any = None
        self._frames_since_open = 0
        self.decodes_jpeg = False  # the backend hands over JPEG packets, decoded here
        self._jpeg_size: tuple[int, int] | None = None  # (height, width) the stream declares

    def open(self) -> None:
        with self._guard("open"):
            self._open()

    def read(self, clock: Callable[[], float]) -> Grab | None:
        with self._guard("read"):
            return self._read(clock)

    def close(self) -> None:
        cap, self._cap = self._cap, None
        if cap is not None:
            cap.release()

    # ----- steps -----

    @contextmanager
    def _guard(self, what: str) -> Iterator[None]:
        """Driver exceptions become SourceError, with any URL password scrubbed."""
        try:
            yield
        except SourceError:
            raise
        except Exception as exc:
            text = scrub(f"{type(exc).__name__}: {exc}", str(self.cfg.source))
            raise SourceError(f"{what} {self.description}: {text}") from None

    def _open(self) -> None:
        import cv2

        self._check_exists()
        cap = self._open_capture(cv2)
        if not cap.isOpened():
            cap.release()
            raise SourceError(f"cannot open {self.description}: {self._why_not_opened()}")
        self._request_format(cv2, cap)
        self.decodes_jpeg = self._take_jpeg_packets(cv2, cap)
        self._cap = cap
        self._frames_since_open = 0

    def _read(self, clock: Callable[[], float]) -> Grab | None:
        if self._cap is None:
            raise SourceError(f"{self.description} is not open")
        if not self._cap.grab() and not self._rewind():
            self._check_end_of_source()
            return None
        t_grab = clock()
        ok, image = self._cap.retrieve()
        if not ok or image is None:
            raise SourceError(f"cannot decode a frame from {self.description}")
        self._frames_since_open += 1
        if self.decodes_jpeg:
            image = self._decode_jpeg(image)
        return Grab(image=image, t_grab=t_grab)

    def _check_exists(self) -> None:
        kind, target = self.target.kind, self.target.target
        if kind == "file" and not Path(str(target)).is_file():
            raise SourceError(f"{self.description} does not exist or is not a file")
        if kind == "device" and sys.platform.startswith("linux"):
            path = f"/dev/video{target}" if isinstance(target, int) else str(target)
            if not os.path.exists(path):
                raise SourceError(f"{self.description}: {path} does not exist (camera unplugged?)")

    def _open_capture(self, cv2: Any) -> Any:
        params = [
            cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, self.cfg.open_timeout_ms,
            cv2.CAP_PROP_READ_TIMEOUT_MSEC, self.cfg.read_timeout_ms,
        ]
        kind, target = self.target.kind, self.target.target
        if kind == "gstreamer":
            return cv2.VideoCapture(target, cv2.CAP_GSTREAMER)
        if kind == "device":
            api = cv2.CAP_V4L2 if sys.platform.startswith("linux") else cv2.CAP_ANY
            return cv2.VideoCapture(target, api, params)
        if kind == "stream" and str(target).lower().startswith("rtsp"):
            return self._open_rtsp(cv2, str(target), params)
        return cv2.VideoCapture(target, cv2.CAP_FFMPEG, params)

    def _open_rtsp(self, cv2: Any, url: str, params: list[int]) -> Any:
        key = "OPENCV_FFMPEG_CAPTURE_OPTIONS"
        with _ENV_LOCK:
            saved = os.environ.get(key)
            os.environ[key] = f"rtsp_transport;{self.cfg.rtsp_transport}"
            try:
                return cv2.VideoCapture(url, cv2.CAP_FFMPEG, params)
            finally:
                if saved is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = saved

    def _request_format(self, cv2: Any, cap: Any) -> None:
        if self.target.kind != "device":
            return
        if self.cfg.resolution is not None:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.cfg.resolution[0])
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.cfg.resolution[1])
        if self.cfg.fps is not None:
            cap.set(cv2.CAP_PROP_FPS, self.cfg.fps)
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)

    def _take_jpeg_packets(self, cv2: Any, cap: Any) -> bool:
        """Motion-JPEG through FFmpeg: ask for the undecoded packets (decoded in _decode_jpeg)."""
        if self.cfg.mjpeg_decoder != "libjpeg-turbo" or self.target.kind not in ("file", "stream"):
            return False
        if cap.getBackendName() != "FFMPEG":
            return False
        fourcc = int(cap.get(cv2.CAP_PROP_FOURCC)).to_bytes(4, "little")
        if fourcc != b"MJPG" or not cap.set(cv2.CAP_PROP_FORMAT, -1):
            return False
        size = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)), int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))
        self._jpeg_size = size if min(size) > 0 else None
        return True

    def _decode_jpeg(self, packet: Any) -> Any:
        import cv2

        image = cv2.imdecode(packet, cv2.IMREAD_COLOR)
        if image is None:
            raise SourceError(
                f"frame {self._frames_since_open} of {self.description} is not a JPEG "
                f"libjpeg-turbo can decode ({packet.size} bytes); mjpeg_decoder: backend "
                "leaves decoding to FFmpeg")
        if self._jpeg_size is not None and image.shape[:2] != self._jpeg_size:
            (h, w), (sh, sw) = image.shape[:2], self._jpeg_size
            raise SourceError(
                f"frame {self._frames_since_open} of {self.description} decodes to {w}x{h} "
                f"but the stream is {sw}x{sh} (interlaced Motion-JPEG, two fields per frame?); "
                "mjpeg_decoder: backend leaves decoding to FFmpeg")
        return image

    def _why_not_opened(self) -> str:
        kind = self.target.kind
        if kind == "file":
            return "not a video file, or a codec this OpenCV build lacks"
        if kind == "stream":
            why = rtsp_failure(str(self.target.target), self.cfg.open_timeout_ms / 1000)
            return why or (f"unreachable, refused or not a video stream "
                           f"(open timeout {self.cfg.open_timeout_ms} ms)")
        if kind == "device":
            return "the device exists but cannot be opened (busy, or not a capture device)"
        return "the pipeline did not start"

    def _rewind(self) -> bool:
        """For a looping file at its end: back to the first frame. True if a frame is grabbed."""
        if self.target.kind != "file" or not self.cfg.loop or not self._frames_since_open:
            return False
        import cv2

        self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
        return bool(self._cap.grab())

    def _check_end_of_source(self) -> None:
        """At the end of a file that is fine; for anything else it is a read error."""
        if self.target.kind != "file":
            raise SourceError(
                f"no frame from {self.description} (stream ended or no frame within "
                f"{self.cfg.read_timeout_ms} ms)"
            )
        if not self._frames_since_open:
            raise SourceError(f"no frame could be decoded from {self.description}: not a video?")


def build_opencv_source(name: str, cfg: OpenCVCameraConfig, base_dir: Path) -> OpenCVSource:
    return OpenCVSource(name, resolve_target(cfg.source, cfg.gstreamer, base_dir), cfg)
