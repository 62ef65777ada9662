"""`systemctl reload` on the running daemon (issue 22): SIGHUP gives RELOADING=1 with
MONOTONIC_USEC, then READY=1 when the reload is over; STATUS= says a reload was refused
(its first error) until a reload is applied."""

from __future__ import annotations

import signal
import socket
import time
from pathlib import Path

from tests.e2e.harness import Daemon, write_config
from tests.support.ports import free_port


class Manager:
    """The service manager's end of NOTIFY_SOCKET: one entry per datagram."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.1)
        self.datagrams: list[dict[str, str]] = []

    def pump_until(self, pred, timeout: float, what: str) -> dict[str, str]:  # type: ignore[no-untyped-def]
        end = time.monotonic() + timeout
        seen = len(self.datagrams)
        while time.monotonic() < end:
            try:
                data = self.sock.recv(65536).decode()
            except TimeoutError:
                continue
            self.datagrams.append(dict(line.split("=", 1) for line in data.splitlines()))
            for d in self.datagrams[seen:]:
                if pred(d):
                    return d
        raise AssertionError(f"no {what} within {timeout} s: {self.datagrams[-8:]}")

    def since(self, d: dict[str, str]) -> list[dict[str, str]]:
        return self.datagrams[self.datagrams.index(d):]


def test_sighup_reloading_ready_and_refused_status(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, mqtt_port=free_port(), modbus_port=free_port(), fps=10)
    good = cfg.read_text()
    manager = Manager(tmp_path / "notify.sock")
    daemon = Daemon(cfg, env={"NOTIFY_SOCKET": str(tmp_path / "notify.sock")})
    try:
        manager.pump_until(lambda d: d.get("READY") == "1", 60, "READY=1 at start")

        # a refused reload: RELOADING=1 (stamped now), STATUS= names the error, READY=1
        cfg.write_text(good + "bogus_key: 1\n")
        before_us = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        daemon.proc.send_signal(signal.SIGHUP)
        reloading = manager.pump_until(lambda d: d.get("RELOADING") == "1", 10, "RELOADING=1")
        after_us = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        assert before_us <= int(reloading["MONOTONIC_USEC"]) <= after_us, reloading
        ready = manager.pump_until(lambda d: d.get("READY") == "1", 10, "READY=1 after reload")
        statuses = [d["STATUS"] for d in manager.since(reloading) if "STATUS" in d]
        assert statuses and statuses[-1].startswith("reload refused: "), statuses
        assert "unknown key 'bogus_key'" in statuses[-1] and "\n" not in statuses[-1], statuses
        assert manager.since(reloading).index(ready) > 0
        # it stays until a reload is applied, also when the counters refresh STATUS=
        refresh = manager.pump_until(lambda d: "STATUS" in d, 10, "a STATUS= refresh")
        assert refresh["STATUS"].startswith("reload refused: "), refresh

        # an applied reload: RELOADING=1 ... READY=1, and STATUS= no longer says refused
        cfg.write_text(good)
        daemon.proc.send_signal(signal.SIGHUP)
        reloading = manager.pump_until(lambda d: d.get("RELOADING") == "1", 10, "RELOADING=1")
        manager.pump_until(lambda d: d.get("READY") == "1", 10, "READY=1 after reload")
        status = manager.pump_until(lambda d: "STATUS" in d, 10, "STATUS= after reload")
        assert "refused" not in status["STATUS"], status
        assert [a["ok"] for a in daemon.audit() if a["event"] == "config_reload"] == [False, True]
        rc, _ = daemon.terminate()
        assert rc == 0
    finally:
        daemon.ensure_dead()
        manager.sock.close()
