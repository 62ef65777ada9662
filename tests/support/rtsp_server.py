"""A real RTSP server: GStreamer's gst-rtsp-server (through gi) in a child process,
serving a test pattern as H.264 (x264enc, RTP) on 127.0.0.1.

    RtspServer(port, path="/line", transport="tcp"|"udp"|"any", credentials=("u", "p"))

`transport` restricts the lower transport the server accepts, so a client asking for
the other one fails: the tests prove which transport the agent really used. With
`credentials`, the mount needs HTTP Basic auth. stop()/start() keep the port (a server
restart in the middle of a run).
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from tests.support.ports import wait_port

SERVER = r'''
import sys
import gi
gi.require_version("Gst", "1.0")
gi.require_version("GstRtsp", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtsp, GstRtspServer

port, path, transport, user, password = sys.argv[1:6]
Gst.init(None)
server = GstRtspServer.RTSPServer()
server.set_address("127.0.0.1")
server.set_service(port)
factory = GstRtspServer.RTSPMediaFactory()
factory.set_launch(
    "( videotestsrc is-live=true pattern=ball ! video/x-raw,width=320,height=240,framerate=25/1 "
    "! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=25 bitrate=500 "
    "! rtph264pay name=pay0 pt=96 config-interval=1 )")
factory.set_shared(True)
lower = {"tcp": GstRtsp.RTSPLowerTrans.TCP, "udp": GstRtsp.RTSPLowerTrans.UDP}
if transport in lower:
    factory.set_protocols(lower[transport])
if user:
    auth = GstRtspServer.RTSPAuth()
    token = GstRtspServer.RTSPToken()
    token.set_string("media.factory.role", user)
    auth.add_basic(GstRtspServer.RTSPAuth.make_basic(user, password), token)
    server.set_auth(auth)
    permissions = GstRtspServer.RTSPPermissions()
    permissions.add_permission_for_role(user, "media.factory.access", True)
    permissions.add_permission_for_role(user, "media.factory.construct", True)
    factory.set_permissions(permissions)
server.get_mount_points().add_factory(path, factory)
server.attach(None)
print("ready", flush=True)
GLib.MainLoop().run()
'''


class RtspServer:
    def __init__(self, workdir: Path, port: int, path: str = "/line", transport: str = "any",
                 credentials: tuple[str, str] | None = None) -> None:
        self.port = port
        self.path = path
        self.transport = transport
        self.credentials = credentials
        self.log = workdir / f"rtsp-{port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def url(self, path: str | None = None, credentials: tuple[str, str] | None = None) -> str:
        user, password = credentials or self.credentials or ("", "")
        auth = f"{user}:{password}@" if user else ""
        return f"rtsp://{auth}127.0.0.1:{self.port}{path or self.path}"

    def start(self) -> RtspServer:
        assert self.proc is None, "already running"
        user, password = self.credentials or ("", "")
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", SERVER, str(self.port), self.path, self.transport, user,
                 password], stdout=log, stderr=log)
        try:
            wait_port(self.port, 15)
        except TimeoutError:
            self.stop()
            raise RuntimeError(f"RTSP server did not start: {self.log.read_text()[-800:]}") from None
        return self

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None:
            proc.kill()
            proc.wait(5)
            time.sleep(0.05)

    def __enter__(self) -> RtspServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
