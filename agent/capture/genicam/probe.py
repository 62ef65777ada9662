"""Commissioning: open each GenICam camera, report what it is and what it delivers.

`probe_genicam` opens the camera with the config's settings (so a setting out of range
shows here, before the line runs), reads frames for `seconds` (firing TriggerSoftware
continuously for `trigger: software`) and reports model, serial, firmware, the pixel
format and exposure in effect, the measured fps and the stream statistics.
`discover` lists the GenICam devices Aravis finds, with a config snippet each.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from agent.capture.base import Grab, SourceError
from agent.capture.genicam.aravis import aravis
from agent.capture.genicam.config import GenICamCameraConfig
from agent.capture.genicam.source import GenICamSource


@dataclass(frozen=True)
class CameraProbe:
    ok: bool
    detail: str
    where: str = ""  # how the camera was found (id, serial or address)


def probe_camera(name: str, cfg: GenICamCameraConfig, seconds: float = 2.0) -> CameraProbe:
    """The registry's probe of a GenICam camera."""
    res = probe_genicam(name, cfg, seconds)
    return CameraProbe(res.ok, res.detail, cfg.selector())


def probe_genicam(name: str, cfg: GenICamCameraConfig, seconds: float = 2.0) -> CameraProbe:
    source = GenICamSource(name, cfg)
    try:
        source.open()
        frames, wall = _count_frames(source, cfg, seconds)
        info = source.info()
        stats = source.stream_stats()
    except SourceError as exc:
        return CameraProbe(False, str(exc))
    finally:
        source.close()
    fps = frames / wall if wall > 0 else 0.0
    detail = (
        f"{info['vendor']} {info['model']} serial {info['serial']} firmware {info['firmware']}; "
        f"{info['pixel_format']} {info['region']}, exposure {info['exposure_us']} us, "
        f"trigger {info['trigger']}; {fps:.1f} fps over {wall:.1f} s; stream: completed "
        f"{stats['completed_buffers']}, failed {stats['failed_buffers']}, underrun "
        f"{stats['underrun_buffers']}, resent packets {stats['resent_packets']}")
    if frames == 0 and cfg.trigger != "hardware":
        return CameraProbe(False, f"no frame in {wall:.1f} s; {detail}")
    return CameraProbe(True, detail)


def _count_frames(source: GenICamSource, cfg: GenICamCameraConfig, seconds: float) -> tuple[int, float]:
    frames, t0 = 0, time.monotonic()
    while time.monotonic() - t0 < seconds:
        if cfg.trigger == "software":
            source.fire()
        if isinstance(source.read(time.monotonic), Grab):
            frames += 1
    return frames, time.monotonic() - t0


def discover() -> list[dict[str, str]]:
    """Every GenICam device Aravis finds (GigE Vision on every interface, USB3 Vision)."""
    ar = aravis()
    ar.update_device_list()
    return [{
        "device_id": ar.get_device_id(i) or "", "vendor": ar.get_device_vendor(i) or "",
        "model": ar.get_device_model(i) or "", "serial": ar.get_device_serial_nbr(i) or "",
        "address": ar.get_device_address(i) or "", "protocol": ar.get_device_protocol(i) or "",
    } for i in range(ar.get_n_devices())]


def snippet(dev: dict[str, str]) -> str:
    """The config to paste under `cameras:` for one discovered device."""
    key = "serial" if dev["serial"] else "device_id"
    name = "cam_" + "".join(c if c.isalnum() else "_" for c in (dev["serial"] or dev["device_id"]))
    return f"  {name}:\n    type: genicam\n    {key}: \"{dev[key]}\"\n"
