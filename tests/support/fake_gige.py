"""A real GigE Vision device on 127.0.0.1: Aravis' arv-fake-gv-camera-0.8, started and
stopped by the test. It answers GVCP on UDP 3956 and streams GVSP, like a real camera.

Only one can listen on 127.0.0.1:3956 at a time; stop() / start() restart the same
camera (same serial) to play a power-cycle.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

FAKE = "arv-fake-gv-camera-0.8"
ADDRESS = "127.0.0.1"


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
        from agent.capture.genicam.aravis import aravis

        ar = aravis()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"{FAKE} exited with {self.proc.returncode}: "
                                   f"{self.log.read_text()[-500:]}")
            # discovery only: opening the camera here would take its control channel
            ar.update_device_list()
            if any(ar.get_device_serial_nbr(i) == self.serial for i in range(ar.get_n_devices())):
                return
            time.sleep(0.05)
        raise TimeoutError(f"{FAKE} did not answer on {ADDRESS} within {timeout} s")

    def __enter__(self) -> FakeGigECamera:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
