"""Monitoring cannot be denied: the health server in its own process, attacked from this one
with 150 slowloris connections (request heads sent byte by byte, reopened when closed) and
a flood of /metrics requests without the token, still answers every authorised /healthz,
and its event loop (where the stop path runs in the daemon) stays responsive."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from tests.conftest import REPO

TOKEN = "monitor-s3cret"
CHILD = r'''
import asyncio, sys, time
from agent.health.metrics import Metrics
from agent.health.server import HealthServer
from agent.health.status import HealthChecks

async def main():
    checks = HealthChecks()
    checks.register("camera:cam1", lambda: (True, "streaming"))
    srv = HealthServer("127.0.0.1:0", checks, Metrics(), lambda: {"ok": True}, sys.argv[1])
    await srv.start()
    print("PORT", srv.port, flush=True)
    worst = 0.0
    while True:  # stands in for the stop path: a task that must wake every 10 ms
        t0 = time.monotonic()
        await asyncio.sleep(0.01)
        late = time.monotonic() - t0 - 0.01
        if late > worst:
            worst = late
            print("LAG", round(worst * 1000, 1), flush=True)

asyncio.run(main())
'''


@contextmanager
def health_child() -> Iterator[tuple[int, subprocess.Popen[str]]]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-c", CHILD, TOKEN], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env, cwd=REPO)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("PORT"), line + proc.stdout.read()
        yield int(line.split()[1]), proc
    finally:
        proc.kill()
        proc.wait(10)


def ask(port: int, path: str, token: str | None, timeout: float) -> int | None:
    """One request; the status code, or None when refused, closed or too slow."""
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout) as s:
            s.settimeout(timeout)
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n{auth}\r\n".encode())
            data = b""
            while chunk := s.recv(65536):
                data += chunk
    except OSError:
        return None
    return int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/1.1 ") else None


class Attack:
    """150 slowloris sockets in one thread, /metrics floods (no token) in four more."""

    def __init__(self, port: int, until: float) -> None:
        self.port, self.until = port, until
        self.slow_opened = self.flood_sent = 0
        self.threads = [threading.Thread(target=self._slowloris, daemon=True)]
        self.threads += [threading.Thread(target=self._flood, daemon=True) for _ in range(4)]

    def _open_slow(self) -> socket.socket | None:
        try:
            s = socket.create_connection(("127.0.0.1", self.port), 1.0)
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-a: ")
        except OSError:
            return None
        self.slow_opened += 1
        return s

    def _slowloris(self) -> None:
        socks: list[socket.socket | None] = [self._open_slow() for _ in range(150)]
        while time.monotonic() < self.until:
            for i, s in enumerate(socks):
                try:
                    if s is None:
                        raise OSError
                    s.send(b"a")  # one more byte of a head that never ends
                except OSError:
                    if s is not None:
                        s.close()
                    socks[i] = self._open_slow()
            time.sleep(0.1)
        for s in socks:
            if s is not None:
                s.close()

    def _flood(self) -> None:
        while time.monotonic() < self.until:
            ask(self.port, "/metrics", None, 1.0)
            self.flood_sent += 1

    def __enter__(self) -> Attack:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.until = 0.0
        for t in self.threads:
            t.join(10)


def test_authorised_healthz_is_served_under_slowloris_and_a_metrics_flood() -> None:
    with health_child() as (port, proc):
        assert ask(port, "/healthz", TOKEN, 2.0) == 200
        with Attack(port, time.monotonic() + 30) as attack:
            time.sleep(1.0)  # every slowloris socket open, the flood running
            codes = []
            for _ in range(22):
                t0 = time.monotonic()
                code = ask(port, "/healthz", TOKEN, 1.0)
                codes.append(code if time.monotonic() - t0 <= 1.0 else None)
                time.sleep(0.1)
            unauthorised = ask(port, "/healthz", None, 1.0)
        proc.kill()
        assert proc.stdout is not None
        lags = [float(ln.split()[1]) for ln in proc.stdout.read().splitlines()
                if ln.startswith("LAG")]
    ok = codes.count(200)
    print(f"authorised /healthz: {ok}/{len(codes)} within 1 s; slowloris connections opened "
          f"{attack.slow_opened}, /metrics flood requests {attack.flood_sent}; worst loop lag "
          f"{max(lags, default=0.0)} ms")
    assert attack.slow_opened >= 150 and attack.flood_sent > 100  # the attack did run
    assert ok >= 0.9 * len(codes), codes
    assert unauthorised == 401  # the token is still required, at once
    assert max(lags, default=0.0) < 250.0, lags  # the loop the stop path shares kept up
