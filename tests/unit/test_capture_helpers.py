"""Capture helpers: backoff, pacing, fps meter, freeze detection, transform, URL redaction."""

from __future__ import annotations

import random

import numpy as np
import pytest

from agent.backoff import Backoff
from agent.capture.base import SourceError
from agent.capture.freeze import FreezeDetector
from agent.capture.pacing import FpsMeter, Pacer
from agent.capture.redact import redact_url, scrub
from agent.capture.transform import FrameTransform


def test_backoff_doubles_up_to_the_cap_with_jitter_below_the_base() -> None:
    b = Backoff(0.5, 4.0, jitter=0.2, rng=random.Random(1))
    delays = [b.next_delay() for _ in range(7)]
    bases = [0.5, 1.0, 2.0, 4.0, 4.0, 4.0, 4.0]
    for d, base in zip(delays, bases, strict=True):
        assert base * 0.8 <= d <= base
    assert len(set(delays[3:])) > 1  # jittered, not in lock-step
    b.reset()
    assert 0.4 <= b.next_delay() <= 0.5


def test_backoff_without_jitter_is_exact() -> None:
    b = Backoff(0.1, 0.25, jitter=0.0)
    assert [b.next_delay() for _ in range(4)] == [0.1, 0.2, 0.25, 0.25]
    assert Backoff(1.0, 0.5, jitter=0.0).next_delay() == 0.5  # clamped to the cap
    with pytest.raises(ValueError):
        Backoff(0.1, 1.0, jitter=1.0)


def test_backoff_never_exceeds_its_cap_whatever_the_jitter() -> None:
    # the PLC links' backoff drew from +-20 % and overshot its documented cap by 20 %
    for jitter in (0.0, 0.2, 0.5, 0.9):
        b = Backoff(0.05, 0.4, jitter=jitter, rng=random.Random(3))
        assert max(b.next_delay() for _ in range(50)) <= 0.4


def test_pacer_schedules_on_a_grid_and_never_into_the_past() -> None:
    p = Pacer(10.0)
    assert p.delay(0.0) == 0.0
    assert p.admit(0.0)
    assert p.delay(0.03) == pytest.approx(0.07)
    assert p.admit(0.1)
    assert p.delay(0.1) == pytest.approx(0.1)
    assert p.admit(5.0)  # after a long pause: next slot relative to now
    assert p.delay(5.0) == pytest.approx(0.1)


def test_pacer_decimates_a_live_30fps_stream_to_10fps() -> None:
    p = Pacer(10.0)
    admitted = [i for i in range(30) if p.admit(i / 30)]
    assert admitted == list(range(0, 30, 3))
    assert all(Pacer(None).admit(i / 30) for i in range(30))


def test_fps_meter_over_window() -> None:
    m = FpsMeter(window_s=1.0)
    for i in range(21):
        m.tick(i * 0.05)
    assert m.rate(1.0) == pytest.approx(20.0)
    assert m.rate(10.0) == 0.0


def test_freeze_detector_measures_identical_run() -> None:
    f = FreezeDetector(max_changed=0)  # exact: one changed byte is a new picture
    a = np.zeros((40, 40, 3), np.uint8)
    b = a.copy()
    b[0, 0, 0] = 1
    assert f.update(a, 0.0) == 0.0
    assert f.update(a.copy(), 1.5) == pytest.approx(1.5)
    assert f.update(b, 2.0) == 0.0
    assert f.update(b, 2.5) == pytest.approx(0.5)


def test_transform_rotates_then_crops() -> None:
    img = np.arange(4 * 6 * 3, dtype=np.uint8).reshape(4, 6, 3)
    out = FrameTransform(rotate=90).apply(img)
    assert out.shape == (6, 4, 3)
    assert (out[0, -1] == img[0, 0]).all()  # top-left goes to top-right clockwise
    crop = FrameTransform(rotate=180, roi=(1, 1, 2, 2)).apply(img)
    assert crop.shape == (2, 2, 3) and crop.flags["C_CONTIGUOUS"]
    assert (crop == img[::-1, ::-1][1:3, 1:3]).all()


def test_transform_roi_outside_frame_names_sizes() -> None:
    with pytest.raises(SourceError, match=r"roi \[4, 0, 4, 4\] does not fit the 6x4 frame"):
        FrameTransform(roi=(4, 0, 4, 4)).apply(np.zeros((4, 6, 3), np.uint8))
    with pytest.raises(ValueError):
        FrameTransform(rotate=45)


def test_redact_url_hides_password_only() -> None:
    assert redact_url("rtsp://admin:s3cret@10.0.0.5:554/ch1?x=1") == "rtsp://admin:***@10.0.0.5:554/ch1?x=1"
    assert redact_url("http://10.0.0.5/video.mjpg") == "http://10.0.0.5/video.mjpg"
    assert redact_url("/dev/video0") == "/dev/video0"
    msg = "failed rtsp://admin:s3cret@10.0.0.5:554/ch1 (s3cret)"
    assert "s3cret" not in scrub(msg, "rtsp://admin:s3cret@10.0.0.5:554/ch1")


def test_gstreamer_pipeline_needs_an_opencv_with_gstreamer() -> None:
    from pydantic import ValidationError

    from agent.capture.sources.opencv_source import OpenCVCameraConfig, opencv_has_gstreamer

    raw = {"type": "opencv", "source": "videotestsrc ! appsink", "gstreamer": True}
    if opencv_has_gstreamer():
        assert OpenCVCameraConfig.model_validate(raw).gstreamer
    else:
        with pytest.raises(ValidationError, match="needs OpenCV built with GStreamer"):
            OpenCVCameraConfig.model_validate(raw)


def test_resolve_target_classifies_sources() -> None:
    from pathlib import Path

    from agent.capture.sources.opencv_source import resolve_target

    base = Path("/cfg")
    assert resolve_target(0, False, base).kind == "device"
    assert resolve_target("2", False, base).target == 2
    assert resolve_target("/dev/video1", False, base).kind == "device"
    rtsp = resolve_target("rtsp://u:pw@cam/1", False, base)
    assert (rtsp.kind, rtsp.description) == ("stream", "rtsp://u:***@cam/1")
    f = resolve_target("clips/a.mp4", False, base)
    assert (f.kind, f.target) == ("file", "/cfg/clips/a.mp4")
    assert resolve_target("/abs/a.mp4", False, base).target == "/abs/a.mp4"
