"""A real HTTP MJPEG stream served from the test: read it, kill the server, bring it back."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import cv2
import numpy as np
import pytest

from agent.capture.base import SourceState
from agent.capture.sources.opencv_source import OpenCVCameraConfig, OpenCVSource
from agent.runtime.build import build_camera
from tests.support.camera_events import Events

S = SourceState
BOUNDARY = "frameboundary"


class MjpegServer:
    """multipart/x-mixed-replace JPEG stream on 127.0.0.1:port, ~40 fps; stop() cuts
    every open connection (a camera dropping off the network), start() again reuses the port."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.frames_sent = 0
        self._stop = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> MjpegServer:
        self._stop.clear()
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
        self._server.daemon_threads = False  # server_close() joins the handlers
        self._thread = threading.Thread(target=self._server.serve_forever, name="mjpeg-server")
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._server is not None and self._thread is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(5)
        self._server = None

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
                self.end_headers()
                while not owner._stop.is_set():
                    if not self._send_one(owner.frames_sent):
                        return
                    owner.frames_sent += 1
                    time.sleep(0.025)

            def _send_one(self, i: int) -> bool:
                img = np.full((96, 128, 3), (i * 7) % 256, np.uint8)
                cv2.putText(img, str(i), (5, 60), cv2.FONT_HERSHEY_SIMPLEX, 1.2, (0, 0, 255), 2)
                body = cv2.imencode(".jpg", img)[1].tobytes()
                head = (f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\n"
                        f"Content-Length: {len(body)}\r\n\r\n").encode()
                try:
                    self.wfile.write(head + body + b"\r\n")
                    self.wfile.flush()
                except OSError:
                    return False
                return True

            def log_message(self, *args: object) -> None:
                pass

        return Handler


@pytest.fixture
def mjpeg(port: int) -> Iterator[MjpegServer]:
    server = MjpegServer(port).start()
    try:
        yield server
    finally:
        server.stop()


def _cfg(url: str, **kw: object) -> OpenCVCameraConfig:
    base: dict[str, object] = dict(
        type="opencv", source=url, stall_after_ms=400, read_timeout_ms=300, open_timeout_ms=1000,
        reconnect_initial_ms=100, reconnect_max_ms=400,
    )
    base.update(kw)
    return OpenCVCameraConfig.model_validate(base)


def test_stream_stalls_reconnects_and_recovers_when_server_returns(mjpeg: MjpegServer) -> None:
    url = f"http://viewer:hunter2@127.0.0.1:{mjpeg.port}/video.mjpg"
    cam = build_camera("line-cam", _cfg(url), Path("."))
    slot = cam.subscribe()
    ev = Events()
    cam.add_listener(ev)
    cam.start()
    try:
        first = slot.get(timeout=15)
        assert first is not None and first.pixels.shape == (96, 128, 3)
        assert cam.state is S.STREAMING
        assert isinstance(cam.source, OpenCVSource)
        assert cam.source.decodes_jpeg is True  # JPEG parts decoded by libjpeg-turbo
        mjpeg.stop()
        assert ev.wait(lambda items: any(e.state is S.RECONNECTING for e in items))
        # refused while down: at least two failed reconnects
        assert ev.wait(lambda items: sum("cannot open" in e.message for e in items) >= 2)
        mjpeg.start()
        assert ev.wait(lambda items: [e.state for e in items if e.previous is not e.state]
                       .count(S.STREAMING) >= 2)
        after = slot.get(timeout=15)
        assert after is not None and after.seq > first.seq
    finally:
        cam.stop()
    states = [to for _, to in ev.transitions()]
    i = states.index(S.STALLED)
    assert states[i : i + 3] == [S.STALLED, S.RECONNECTING, S.STREAMING]
    st = cam.stats()
    assert st.reconnects >= 1 and st.read_errors >= 1 and st.open_errors >= 1
    for e in ev.items:
        assert "hunter2" not in e.message
        assert "camera 'line-cam'" in e.message and "viewer:***@127.0.0.1" in e.message


def test_unreachable_url_is_an_error_event_and_other_cameras_keep_streaming(
    mjpeg: MjpegServer, tmp_path: Path
) -> None:
    from tests.support.ports import free_port

    dead = build_camera("dead", _cfg(f"http://admin:pw123@127.0.0.1:{free_port()}/x"), tmp_path)
    live = build_camera("live", _cfg(f"http://127.0.0.1:{mjpeg.port}/video.mjpg"), tmp_path)
    dead_ev, live_ev = Events(), Events()
    dead.add_listener(dead_ev)
    live.add_listener(live_ev)
    slot = live.subscribe()
    dead.start()
    live.start()
    try:
        assert dead_ev.wait(lambda items: sum(e.error for e in items) >= 2)
        frames = [slot.get(timeout=15) for _ in range(3)]
    finally:
        dead.stop()
        live.stop()
    assert all(f is not None for f in frames)
    msg = dead_ev.items[0].message
    assert msg.startswith("camera 'dead' (http://admin:***@127.0.0.1:")
    assert "cannot open" in msg and "pw123" not in msg
    assert dead.stats().captured == 0 and dead.stats().reconnects >= 1
    assert not any(e.error for e in live_ev.items)


def test_unreachable_rtsp_camera_with_udp_transport(tmp_path: Path) -> None:
    import os

    from tests.support.ports import free_port

    url = f"rtsp://op:Secr3t@127.0.0.1:{free_port()}/stream1"
    cam = build_camera("rtsp-cam", _cfg(url, rtsp_transport="udp", max_reconnects=1), tmp_path)
    ev = Events()
    cam.add_listener(ev)
    cam.start()
    try:
        assert ev.wait(lambda items: any(e.state is S.FAILED for e in items))
    finally:
        cam.stop()
    assert "OPENCV_FFMPEG_CAPTURE_OPTIONS" not in os.environ  # set only around the open
    opens = [e.message for e in ev.items if "cannot open" in e.message]
    assert len(opens) == 2  # the first try and one reconnect, then failed
    assert opens[0].startswith("camera 'rtsp-cam' (rtsp://op:***@127.0.0.1:")
    assert all("Secr3t" not in e.message for e in ev.items)
    assert cam.state is S.FAILED and cam.stats().reconnects == 1
