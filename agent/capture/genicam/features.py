"""Apply a GenICamCameraConfig to an open camera, checked against its own feature tree.

Every setting is checked before it is written: a feature the camera does not have, a
value outside the range (or off the increment) the camera reports, or a pixel format it
does not offer is a SourceError naming the feature and what the camera allows.
"""

from __future__ import annotations

from typing import Any

from agent.capture.base import SourceError
from agent.capture.genicam.config import GenICamCameraConfig
from agent.capture.genicam.pixels import SUPPORTED


class FeatureError(SourceError):
    """A setting the camera cannot take; retrying does not help."""


def _fmt(x: float) -> str:
    return f"{x:g}"


def check_range(feature: str, value: float, lo: float, hi: float, unit: str = "",
                inc: int | None = None, base: int = 0) -> None:
    if not lo <= value <= hi:
        raise FeatureError(f"{feature} {_fmt(value)}{unit} is out of range: the camera allows "
                           f"{_fmt(lo)}..{_fmt(hi)}{unit}")
    if inc and inc > 1 and (int(value) - base) % inc:
        raise FeatureError(f"{feature} {_fmt(value)} is not a multiple of its increment {inc} "
                           f"(the camera allows {_fmt(lo)}..{_fmt(hi)} in steps of {inc})")


def _bounds(pair: Any) -> tuple[float, float]:
    """Aravis returns (min, max) as a named tuple or a plain pair."""
    return (pair.min, pair.max) if hasattr(pair, "min") else (pair[0], pair[1])


def apply_settings(cam: Any, cfg: GenICamCameraConfig) -> None:
    """Write every configured setting, each checked first (raises FeatureError)."""
    if cfg.pixel_format is not None:
        _pixel_format(cam, cfg.pixel_format)
    if cfg.sensor_roi is not None:
        _sensor_roi(cam, cfg.sensor_roi)
    if cfg.exposure_us is not None:
        _float_feature(cam, "ExposureTime", cfg.exposure_us, " us", cam.is_exposure_time_available,
                       cam.get_exposure_time_bounds, cam.set_exposure_time)
    if cfg.gain is not None:
        _float_feature(cam, "Gain", cfg.gain, "", cam.is_gain_available, cam.get_gain_bounds,
                       cam.set_gain)
    if cfg.frame_rate is not None:
        _float_feature(cam, "AcquisitionFrameRate", cfg.frame_rate, " fps",
                       cam.is_frame_rate_available, cam.get_frame_rate_bounds, cam.set_frame_rate)
    if cfg.packet_size is not None:
        _gige_integer(cam, "GevSCPSPacketSize", cfg.packet_size, " bytes", cam.gv_set_packet_size)
    if cfg.packet_delay is not None:
        _gige_integer(cam, "GevSCPD", cfg.packet_delay, " ticks", cam.gv_set_packet_delay)


def apply_trigger(cam: Any, cfg: GenICamCameraConfig) -> None:
    """free-run: triggers off; software: TriggerSoftware; hardware: cfg.trigger_source."""
    if cfg.trigger == "free-run":
        if cam.is_feature_available("TriggerMode"):
            cam.clear_triggers()
        return
    if not cam.is_feature_available("TriggerMode"):
        raise FeatureError(f"trigger: {cfg.trigger} needs the feature TriggerMode, which the "
                           "camera lacks")
    if cfg.trigger == "software":
        if not cam.is_software_trigger_supported():
            raise FeatureError("trigger: software needs the feature TriggerSoftware, which "
                               "the camera lacks")
        cam.set_trigger("Software")
        return
    sources = list(cam.dup_available_trigger_sources() or [])
    if cfg.trigger_source not in sources:
        raise FeatureError(f"TriggerSource {cfg.trigger_source} is not offered by the camera "
                           f"(it offers: {', '.join(sources) or 'none'})")
    cam.set_trigger(cfg.trigger_source)


def _pixel_format(cam: Any, fmt: str) -> None:
    offered = list(cam.dup_available_pixel_formats_as_strings() or [])
    if fmt not in offered:
        usable = [f for f in offered if f in SUPPORTED]
        raise FeatureError(f"PixelFormat {fmt} is not offered by the camera (it offers: "
                           f"{', '.join(offered) or 'none'}; usable by the agent: "
                           f"{', '.join(usable) or 'none'})")
    cam.set_pixel_format_from_string(fmt)


def _sensor_roi(cam: Any, roi: tuple[int, int, int, int]) -> None:
    x, y, w, h = roi
    sensor_w, sensor_h = cam.get_sensor_size()
    cam.set_region(0, 0, *_wh_max(cam))  # offsets first to 0 so any width fits
    check_range("Width", w, *_bounds(cam.get_width_bounds()), inc=cam.get_width_increment())
    check_range("Height", h, *_bounds(cam.get_height_bounds()), inc=cam.get_height_increment())
    if x + w > sensor_w or y + h > sensor_h:
        raise FeatureError(f"sensor_roi [{x}, {y}, {w}, {h}] ends outside the sensor "
                           f"({sensor_w}x{sensor_h}): OffsetX + Width <= {sensor_w} and "
                           f"OffsetY + Height <= {sensor_h}")
    cam.set_region(0, 0, w, h)
    if (x or y) and not cam.is_region_offset_available():
        raise FeatureError("sensor_roi offsets need OffsetX/OffsetY, which the camera lacks")
    if x or y:
        check_range("OffsetX", x, *_bounds(cam.get_x_offset_bounds()), inc=cam.get_x_offset_increment())
        check_range("OffsetY", y, *_bounds(cam.get_y_offset_bounds()), inc=cam.get_y_offset_increment())
    cam.set_region(x, y, w, h)


def _wh_max(cam: Any) -> tuple[int, int]:
    region = cam.get_region()
    return int(region[2]), int(region[3])


def _float_feature(cam: Any, name: str, value: float, unit: str, available: Any, bounds: Any,
                   setter: Any) -> None:
    if not available():
        raise FeatureError(f"{name}: the camera has no such feature (it cannot be set)")
    check_range(name, value, *_bounds(bounds()), unit)
    setter(value)


def _gige_integer(cam: Any, name: str, value: int, unit: str, setter: Any) -> None:
    if not cam.is_gv_device():
        raise FeatureError(f"{name} is a GigE Vision setting; this camera is not GigE Vision")
    if not cam.is_feature_available(name):
        raise FeatureError(f"{name}: the camera has no such feature (it cannot be set)")
    lo, hi = _bounds(cam.get_integer_bounds(name))
    check_range(name, value, lo, hi, unit, inc=cam.get_integer_increment(name))
    setter(value)
