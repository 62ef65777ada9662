"""GenICam pieces without a camera: Bayer/mono conversion, the device clock, range checks,
the config's selection rules and the error when Aravis is missing."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from pydantic import ValidationError

from agent.capture.base import SourceError
from agent.capture.genicam.clock import DeviceClock
from agent.capture.genicam.config import GenICamCameraConfig
from agent.capture.genicam.features import FeatureError, check_range
from agent.capture.genicam.pixels import to_bgr
from tests.conftest import REPO


def _mosaic(pattern: str, rgb: tuple[int, int, int], h: int = 8, w: int = 8) -> bytes:
    """A flat colour seen through the 2x2 colour filter `pattern` (e.g. "RGGB")."""
    value = {"R": rgb[0], "G": rgb[1], "B": rgb[2]}
    img = np.zeros((h, w), np.uint8)
    for i, c in enumerate(pattern):
        img[i // 2::2, i % 2::2] = value[c]
    return img.tobytes()


@pytest.mark.parametrize(("fmt", "pattern"), [
    ("BayerRG8", "RGGB"), ("BayerGR8", "GRBG"), ("BayerGB8", "GBRG"), ("BayerBG8", "BGGR")])
def test_bayer_formats_debayer_to_the_right_colour(fmt: str, pattern: str) -> None:
    bgr = to_bgr(_mosaic(pattern, (200, 30, 10)), fmt, 8, 8)
    b, g, r = (int(v) for v in bgr[3:5, 3:5].reshape(-1, 3).mean(axis=0))
    assert (r, g, b) == (200, 30, 10)


def test_wide_mono_is_scaled_to_8_bits_and_rgb_swapped() -> None:
    mono12 = np.full((2, 3), 4095, "<u2").tobytes()
    assert (to_bgr(mono12, "Mono12", 3, 2) == 255).all()
    mono16 = np.full((2, 3), 0x8000, "<u2").tobytes()
    assert (to_bgr(mono16, "Mono16", 3, 2) == 128).all()
    rgb = bytes([1, 2, 3] * 6)
    assert to_bgr(rgb, "RGB8", 3, 2)[0, 0].tolist() == [3, 2, 1]


def test_short_buffer_is_a_clear_error() -> None:
    with pytest.raises(SourceError, match="Mono8 4x4 needs 16 bytes, the buffer has 3"):
        to_bgr(b"abc", "Mono8", 4, 4)


def test_device_clock_maps_to_the_fastest_frame_and_keeps_order() -> None:
    clock = DeviceClock()
    # device ns since camera power-on; host receive times with varying transit delay
    assert clock.to_host(1_000_000_000, 500.010) == pytest.approx(500.010)
    assert clock.to_host(1_100_000_000, 500.102) == pytest.approx(500.102)  # faster: new offset
    assert clock.to_host(1_200_000_000, 500.250) == pytest.approx(500.202)  # slow frame: mapped
    assert clock.to_host(0, 7.5) == 7.5  # unstamped frame: the receive time


def test_range_check_names_feature_range_and_increment() -> None:
    with pytest.raises(FeatureError, match=r"^Gain 12 is out of range: the camera allows 0..10$"):
        check_range("Gain", 12, 0, 10)
    with pytest.raises(FeatureError, match="Width 321 is not a multiple of its increment 4"):
        check_range("Width", 321, 16, 2048, inc=4)
    check_range("Width", 320, 16, 2048, inc=4)


def test_exactly_one_selector_and_no_resolution() -> None:
    with pytest.raises(ValidationError, match="exactly one of device_id, serial or address"):
        GenICamCameraConfig.model_validate({"type": "genicam"})
    with pytest.raises(ValidationError, match="exactly one of device_id, serial or address"):
        GenICamCameraConfig.model_validate({"type": "genicam", "serial": "1", "address": "10.0.0.2"})
    with pytest.raises(ValidationError, match="with trigger: software every frame belongs to a part"):
        GenICamCameraConfig.model_validate({"type": "genicam", "serial": "1", "trigger": "software",
                                            "fps": 10})
    with pytest.raises(ValidationError, match="set sensor_roi"):
        GenICamCameraConfig.model_validate({"type": "genicam", "serial": "1", "resolution": [640, 480]})


def test_missing_aravis_is_a_config_error_with_the_install_hint() -> None:
    code = (
        "import sys; sys.modules['gi'] = None\n"  # PyGObject not importable
        "from pydantic import ValidationError\n"
        "from agent.capture.genicam.config import GenICamCameraConfig\n"
        "try:\n"
        "    GenICamCameraConfig.model_validate({'type': 'genicam', 'serial': '1'})\n"
        "except ValidationError as exc:\n"
        "    print(exc)\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                         timeout=60)
    assert "type: genicam needs Aravis 0.8 through PyGObject" in out.stdout, out.stderr
    assert "gir1.2-aravis-0.8" in out.stdout and "(scripts/setup.sh" in out.stdout


async def test_hardware_trigger_window_takes_a_frame_exposed_just_before() -> None:
    from datetime import UTC, datetime

    from agent.capture.camera_trigger import camera_arm
    from agent.capture.slot import LatestFrame
    from agent.types import Frame

    class Source:
        cfg = GenICamCameraConfig.model_validate(
            {"type": "genicam", "serial": "1", "trigger": "hardware", "trigger_window_ms": 40})

    arm = camera_arm(Source())
    assert arm is not None
    slot = LatestFrame()
    px = np.zeros((2, 2, 3), np.uint8)
    slot.put(Frame(px, "c", 1, 99.95, datetime.now(UTC)))  # exposed 50 ms before: too old
    assert slot.get_after(await arm(100.0), 0.01) is None
    slot.put(Frame(px, "c", 2, 99.97, datetime.now(UTC)))  # 30 ms before the PLC was seen
    frame = slot.get_after(await arm(100.0), 0.01)
    assert frame is not None and frame.seq == 2
    assert camera_arm(object()) is None  # any other source: free-run, no arm
