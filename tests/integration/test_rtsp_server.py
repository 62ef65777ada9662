"""RTSP against a real server: GStreamer's gst-rtsp-server serving H.264 on 127.0.0.1.
TCP and UDP transport, a server restart in the middle of a run, a wrong path, and
credentials in the URL that never show up in anything printed."""

from __future__ import annotations

import logging
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from agent.capture.base import SourceError, SourceState
from agent.capture.sources.opencv_source import OpenCVCameraConfig, build_opencv_source
from agent.runtime.build import build_camera
from tests.conftest import REPO
from tests.support.ports import free_port
from tests.support.rtsp_server import RtspServer
from tests.support.waiting import wait_for as wait

SECRET = "Sup3rSecret"


def rtsp_config(url: str, **kw: Any) -> OpenCVCameraConfig:
    return OpenCVCameraConfig.model_validate({"type": "opencv", "source": url,
                                              "open_timeout_ms": 3000, **kw})


def open_error(url: str, **kw: Any) -> str:
    src = build_opencv_source("cam", rtsp_config(url, **kw), Path("."))
    try:
        with pytest.raises(SourceError) as err:
            src.open()
    finally:
        src.close()
    return str(err.value)


@pytest.mark.parametrize("transport", ["tcp", "udp"])
def test_transport_is_the_one_configured(tmp_path: Path, transport: str) -> None:
    other = {"tcp": "udp", "udp": "tcp"}[transport]
    with RtspServer(tmp_path, free_port(), transport=transport) as server:
        src = build_opencv_source("cam", rtsp_config(server.url(), rtsp_transport=transport),
                                  Path("."))
        src.open()
        try:
            shapes = {src.read(time.monotonic).image.shape for _ in range(10)}  # type: ignore[union-attr]
        finally:
            src.close()
        assert shapes == {(240, 320, 3)}
        # the server only offers `transport`: asking for the other one must fail
        assert "cannot open" in open_error(server.url(), rtsp_transport=other)


def test_server_restart_mid_run_stalls_then_reconnects(tmp_path: Path) -> None:
    server = RtspServer(tmp_path, free_port(), transport="tcp").start()
    cam = build_camera("cam", rtsp_config(server.url(), read_timeout_ms=500, stall_after_ms=600,
                                          open_timeout_ms=1000, reconnect_initial_ms=100,
                                          reconnect_max_ms=300), Path("."))
    states: list[SourceState] = []
    cam.add_listener(lambda e: states.append(e.state))
    slot = cam.subscribe()
    cam.start()
    try:
        assert slot.get(10) is not None
        server.stop()
        wait(lambda: cam.state in (SourceState.STALLED, SourceState.RECONNECTING), 5,
             "stalled while the server is down")
        time.sleep(1.0)
        assert cam.state is not SourceState.STREAMING  # still down: never back to streaming
        captured = cam.stats().captured
        server.start()
        wait(lambda: cam.stats().captured > captured + 5, 20, "frames after the restart")
        assert cam.state is SourceState.STREAMING and cam.stats().reconnects >= 1
        assert SourceState.STALLED in states and states[-1] is SourceState.STREAMING
    finally:
        cam.stop()
        server.stop()


def test_wrong_path_is_a_clear_error(tmp_path: Path) -> None:
    with RtspServer(tmp_path, free_port()) as server:
        message = open_error(server.url(path="/no-such-stream"))
    assert message == (f"cannot open rtsp://127.0.0.1:{server.port}/no-such-stream: the server "
                       "answered 404 Not Found (no stream at this path)")
    refused = open_error(f"rtsp://127.0.0.1:{free_port()}/line")
    assert "connection refused by 127.0.0.1" in refused


def test_credentials_are_redacted_everywhere(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with RtspServer(tmp_path, free_port(), credentials=("op", SECRET)) as server:
        wrong = server.url(credentials=("op", "Wr0ngPass"))
        message = open_error(wrong)
        assert message.endswith("the server answered 401 Unauthorized (wrong or missing "
                                "credentials in the URL)")
        assert "op:***@" in message and "Wr0ngPass" not in message
        cam = build_camera("cam", rtsp_config(server.url()), Path("."))
        texts: list[str] = []
        cam.add_listener(lambda e: texts.append(e.message))
        slot = cam.subscribe()
        cam.start()
        try:
            assert slot.get(10) is not None  # the right credentials play
            assert cam.source.description == f"rtsp://op:***@127.0.0.1:{server.port}/line"
        finally:
            cam.stop()
        # native FFmpeg/OpenCV output of a child process opening both URLs
        child = subprocess.run([sys.executable, "-c", (
            "import sys; from pathlib import Path\n"
            "from agent.capture.sources.opencv_source import OpenCVCameraConfig, build_opencv_source\n"
            "for url in sys.argv[1:]:\n"
            "    src = build_opencv_source('c', OpenCVCameraConfig(type='opencv', source=url), Path('.'))\n"
            "    try:\n"
            "        src.open()\n"
            "    except Exception as exc:\n"
            "        print(exc)\n"
            "    src.close()\n"), server.url(), wrong], cwd=REPO, capture_output=True, text=True,
            timeout=60)
    printed = [message, *texts, child.stdout, child.stderr,
               *(r.getMessage() for r in caplog.records)]
    assert "401 Unauthorized" in child.stdout
    for text in printed:
        assert SECRET not in text and "Wr0ngPass" not in text
