"""A real GigE Vision device on 127.0.0.1: Aravis' arv-fake-gv-camera-0.8, started and
stopped by the test. It answers GVCP on UDP 3956 and streams GVSP, like a real camera.

Only one can listen on 127.0.0.1:3956 at a time; stop() / start() restart the same
camera (same serial) to play a power-cycle.
"""

from __future__ import annotations

import shutil
import socket
import struct
import subprocess
import time
from pathlib import Path

FAKE = "arv-fake-gv-camera-0.8"
ADDRESS = "127.0.0.1"
GVCP_PORT = 3956


def fake_camera_binary() -> str:
    path = shutil.which(FAKE)
    if path is None:
        raise RuntimeError(f"{FAKE} is not installed: run scripts/setup.sh (Debian aravis-tools)")
    return path


class FakeGigECamera:
    def __init__(self, workdir: Path, serial: str = "EA0001", lost_per_thousand: int = 0) -> None:
        self.serial = serial
        self.address = ADDRESS
        self.lost = lost_per_thousand
        self.log = workdir / f"fake-gige-{serial}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> FakeGigECamera:
        assert self.proc is None, "already running"
        cmd = [fake_camera_binary(), "-i", ADDRESS, "-s", self.serial]
        if self.lost:
            cmd += ["-r", str(self.lost)]
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=log)
        self._wait_answering()
        return self

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None:
            proc.kill()
            proc.wait(5)

    def _wait_answering(self, timeout: float = 10.0) -> None:
        """Poll with a GVCP DISCOVERY to UDP 3956 until this camera (its serial) answers."""
        deadline = time.monotonic() + timeout
        request = struct.pack(">BBHHH", 0x42, 0x01, 0x0002, 0, 1)  # key, ack, DISCOVERY, len, id
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(0.05)
            while time.monotonic() < deadline:
                if self.proc is not None and self.proc.poll() is not None:
                    raise RuntimeError(f"{FAKE} exited with {self.proc.returncode}: "
                                       f"{self.log.read_text()[-500:]}")
                try:
                    sock.sendto(request, (ADDRESS, GVCP_PORT))
                    reply = sock.recv(1024)
                except OSError:  # not listening yet (refused) or no answer in time
                    time.sleep(0.02)
                    continue
                if self.serial.encode() in reply:
                    return
                raise RuntimeError(f"another GigE Vision device answers on {ADDRESS}: "
                                   f"{reply[8:]!r}"[:300])
        raise TimeoutError(f"{FAKE} did not answer on {ADDRESS} within {timeout} s")

    def __enter__(self) -> FakeGigECamera:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
