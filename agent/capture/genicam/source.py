"""GenICam frame source: one Aravis camera, its stream and its buffers.

Frames carry the camera's timestamp mapped to host monotonic time (clock.py). In
`trigger: software|hardware` the camera sends a frame only when triggered: a read
without a frame returns IDLE after checking the camera still answers, so a camera
waiting for parts is not taken for a stalled one. A camera that stops answering
(cable pulled, power-cycled) fails the read; the Camera thread then reconnects with
backoff, and the settings are checked and written again on every open.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from agent.capture.base import IDLE, Grab, Idle, SourceError
from agent.capture.genicam.aravis import AravisMissing, aravis
from agent.capture.genicam.clock import DeviceClock
from agent.capture.genicam.config import GenICamCameraConfig
from agent.capture.genicam.features import FeatureError, apply_settings, apply_trigger
from agent.capture.genicam.pixels import SUPPORTED, to_bgr
from agent.capture.genicam.stats import StreamTotals


class GenICamSource:
    live = True

    def __init__(self, camera_id: str, cfg: GenICamCameraConfig) -> None:
        self.camera_id = camera_id
        self.cfg = cfg
        self.description = f"genicam {cfg.selector()}"
        self._cam: Any = None
        self._stream: Any = None
        self._lost = threading.Event()
        self._clock = DeviceClock()
        self._totals = StreamTotals()
        self._lock = threading.Lock()  # open/close vs stream_stats/fire from other threads
        self.pixel_format = ""
        self._cleared: Any = None
        self._silent = False  # the last read found no frame: the camera may be gone
        self._stale: tuple[Any, Any] | None = None  # handle of a camera that went silent
        self.feature_error: str | None = None  # the last settings error (not retried blindly)

    # ----- FrameSource -----

    def open(self) -> None:
        try:
            ar = aravis()
        except AravisMissing as exc:
            raise SourceError(str(exc)) from None
        self._release_stale()
        cam = self._connect(ar)
        try:
            apply_settings(cam, self.cfg)
            apply_trigger(cam, self.cfg)
            self._check_pixel_format(cam)
            stream = self._start_stream(ar, cam)
        except FeatureError as exc:
            self.feature_error = f"{self.description}: {exc}"
            raise SourceError(self.feature_error) from None
        except Exception as exc:
            raise SourceError(f"{self.description}: setting up the camera failed: "
                              f"{_gerror(exc)}") from None
        self.feature_error = None
        self._cleared = ar.BufferStatus.CLEARED
        with self._lock:
            self._cam, self._stream = cam, stream

    def read(self, clock: Callable[[], float]) -> Grab | Idle | None:
        stream = self._stream
        if stream is None:
            raise SourceError(f"{self.description} is not open")
        triggered = self.cfg.trigger != "free-run"
        wait_ms = self.cfg.read_timeout_ms // 2 if triggered else self.cfg.read_timeout_ms
        deadline = time.monotonic() + wait_ms / 1000
        while True:
            left_us = max(0, int((deadline - time.monotonic()) * 1e6))
            buf = stream.timeout_pop_buffer(left_us)
            if buf is None:
                self._silent = True
                return self._no_buffer(triggered)
            if buf.get_status() != self._cleared:
                break
            stream.push_buffer(buf)  # handed back unfilled (stream start): not a frame
        t_recv = clock()
        self._silent = False
        try:
            return self._convert(buf, t_recv)
        finally:
            stream.push_buffer(buf)

    def close(self) -> None:
        with self._lock:
            cam, stream = self._cam, self._stream
            self._cam = self._stream = None
        if stream is not None:
            self._totals.close(stream)
        # A camera that stopped answering would hold stop_acquisition for ~10 s of GVCP
        # retries; its acquisition ends anyway when it loses its controller.
        if cam is not None and self._silent:
            # A camera that stopped answering would hold AcquisitionStop and the release
            # of its control channel for ~10 s of GVCP retries: close now (the state
            # changes at once), free the handle at the next open (_release_stale).
            self._stale = (cam, stream)
        elif cam is not None:
            try:
                cam.stop_acquisition()
            except Exception:  # noqa: BLE001 - the camera may be gone; closing must not fail
                pass
        self._clock.reset()

    # ----- camera triggers and statistics (called from other threads) -----

    def fire(self) -> float:
        """Software trigger: fire TriggerSoftware; frames stamped after the returned
        monotonic time are the ones it produced."""
        cam = self._cam
        if cam is None:
            raise SourceError(f"{self.description} is not open: cannot fire the software trigger")
        t_fire = time.monotonic()
        try:
            cam.software_trigger()
        except Exception as exc:
            raise SourceError(f"{self.description}: TriggerSoftware failed: {_gerror(exc)}") from None
        return t_fire

    def stream_stats(self) -> dict[str, int]:
        with self._lock:
            return self._totals.total(self._stream)

    def info(self) -> dict[str, str]:
        """Identity and the settings in effect (commissioning)."""
        cam = self._cam
        if cam is None:
            raise SourceError(f"{self.description} is not open")
        dev = cam.get_device()
        firmware = _feature_string(dev, "DeviceFirmwareVersion") or _feature_string(dev, "DeviceVersion")
        x, y, w, h = (int(v) for v in cam.get_region())
        return {
            "vendor": cam.get_vendor_name() or "", "model": cam.get_model_name() or "",
            "serial": cam.get_device_serial_number() or "", "firmware": firmware or "",
            "pixel_format": cam.get_pixel_format_as_string() or "",
            "exposure_us": f"{cam.get_exposure_time():g}" if cam.is_exposure_time_available() else "-",
            "region": f"{w}x{h}+{x}+{y}", "trigger": self.cfg.trigger,
        }

    # ----- steps -----

    def _release_stale(self) -> None:
        """Free the previous handle before opening again: while it lives it holds the
        camera's control channel (and heartbeats), and a new handle could not write a
        setting. Quick when the camera answers; up to the GVCP retries (GIL released)
        when it is still gone, once."""
        stale, self._stale = self._stale, None
        del stale  # the last reference: Aravis releases the control channel

    def _connect(self, ar: Any) -> Any:
        name = self._resolve(ar)
        try:
            cam = ar.Camera.new(name)
        except Exception as exc:
            raise SourceError(f"cannot open {self.description}: {_gerror(exc)}") from None
        self._lost.clear()
        self._silent = False
        dev = cam.get_device()
        try:
            dev.connect("control-lost", lambda *_: self._lost.set())
        except TypeError:
            pass
        return cam

    def _resolve(self, ar: Any) -> str:
        """The Aravis device id for the configured device id, serial or address."""
        if self.cfg.address:
            return self.cfg.address
        ar.update_device_list()
        found = [(ar.get_device_id(i), ar.get_device_serial_nbr(i))
                 for i in range(ar.get_n_devices())]
        for dev_id, serial in found:
            if dev_id == self.cfg.device_id or (self.cfg.serial and serial == self.cfg.serial):
                return str(dev_id)
        seen = ", ".join(f"{d} (serial {s})" for d, s in found) or "none"
        raise SourceError(f"no camera with {self.cfg.selector()} found; cameras found: {seen}")

    def _check_pixel_format(self, cam: Any) -> None:
        fmt = cam.get_pixel_format_as_string()
        if fmt not in SUPPORTED:
            raise FeatureError(f"PixelFormat {fmt} (in effect) cannot be converted by the "
                               f"agent; set pixel_format to one of: {', '.join(SUPPORTED)}")
        self.pixel_format = fmt

    def _start_stream(self, ar: Any, cam: Any) -> Any:
        stream = cam.create_stream(None, None)
        if stream is None:
            raise SourceError(f"{self.description}: cannot create a stream")
        payload = cam.get_payload()
        for _ in range(self.cfg.stream_buffers):
            stream.push_buffer(ar.Buffer.new_allocate(payload))
        cam.set_acquisition_mode(ar.AcquisitionMode.CONTINUOUS)
        cam.start_acquisition()
        return stream

    def _no_buffer(self, triggered: bool) -> Idle:
        if self._lost.is_set():
            raise SourceError(f"{self.description}: control lost (cable pulled or camera "
                              "power-cycled?)")
        if not triggered:
            raise SourceError(f"no frame from {self.description} within "
                              f"{self.cfg.read_timeout_ms} ms")
        try:  # waiting for a trigger: is the camera still there?
            self._cam.get_pixel_format()
        except Exception as exc:
            raise SourceError(f"{self.description} does not answer: {_gerror(exc)}") from None
        self._silent = False
        return IDLE

    def _convert(self, buf: Any, t_recv: float) -> Grab:
        ar = aravis()
        status = buf.get_status()
        if status != ar.BufferStatus.SUCCESS:
            raise SourceError(f"{self.description}: frame {buf.get_frame_id()} incomplete "
                              f"({status.value_nick})")
        data = buf.get_data()
        image = to_bgr(data, self.pixel_format, buf.get_image_width(), buf.get_image_height())
        return Grab(image=image, t_grab=self._clock.to_host(buf.get_timestamp(), t_recv))


def _feature_string(dev: Any, name: str) -> str | None:
    try:
        return str(dev.get_string_feature_value(name)) if dev.is_feature_available(name) else None
    except Exception:  # noqa: BLE001 - optional identity field
        return None


def _gerror(exc: BaseException) -> str:
    return getattr(exc, "message", None) or str(exc)


def build_genicam_source(name: str, cfg: GenICamCameraConfig, _base_dir: object = None) -> GenICamSource:
    return GenICamSource(name, cfg)
