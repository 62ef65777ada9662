"""A real Mosquitto broker on a free port, started and stopped by the test."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from tests.support.ports import free_port, wait_port


def mosquitto_binary() -> str:
    for cand in (shutil.which("mosquitto"), "/usr/sbin/mosquitto"):
        if cand and Path(cand).exists():
            return cand
    raise RuntimeError("mosquitto is not installed: run scripts/test.sh, which installs it")


class Mosquitto:
    """Broker on 127.0.0.1:port. `extra_conf` lines are appended to the listener config
    (TLS, password_file, ...). stop()/start() keep the same port for outage tests."""

    def __init__(self, workdir: Path, extra_conf: str = "", port: int | None = None,
                 persistence: bool = False) -> None:
        self.workdir = workdir
        self.port = port or free_port()
        self.host = "127.0.0.1"
        self.extra_conf = extra_conf
        self.persistence = persistence
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = workdir / f"mosquitto-{self.port}.log"

    def _conf(self) -> Path:
        conf = self.workdir / f"mosquitto-{self.port}.conf"
        lines = [
            f"listener {self.port} 127.0.0.1",
            "allow_anonymous true" if "password_file" not in self.extra_conf else "allow_anonymous false",
            f"persistence {'true' if self.persistence else 'false'}",
            f"persistence_location {self.workdir}/",
            "log_dest stderr",
            "log_type error",
            "log_type warning",
            "max_queued_messages 100000",
            # started as root, mosquitto drops to the `mosquitto` user, which cannot write
            # persistence into the test's private temp folder
            "user root" if os.geteuid() == 0 and "user " not in self.extra_conf else "",
            self.extra_conf,
        ]
        conf.write_text("\n".join(lines) + "\n")
        return conf

    def start(self) -> Mosquitto:
        assert self.proc is None, "already running"
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen([mosquitto_binary(), "-c", str(self._conf())],
                                         stdout=log, stderr=log)
        try:
            wait_port(self.port, 10)
        except TimeoutError:
            self.stop()
            raise RuntimeError(f"mosquitto did not start: {self.log.read_text()[-2000:]}") from None
        return self

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self.proc = None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None
