"""Helpers for the evidence end-to-end tests: config, authorised GETs, metrics, ground truth."""

from __future__ import annotations

import hashlib
import re
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from tests.e2e.harness import Daemon, write_config

TOKEN = "evidence-test-token"


def evidence_config(tmp: Path, evidence: dict[str, Any], **kw: Any) -> Path:
    """The harness config with an `evidence` block and a bearer token on the health server."""
    path = write_config(tmp, **kw)
    cfg = yaml.safe_load(path.read_text())
    cfg["evidence"] = evidence
    cfg["health"]["token"] = TOKEN
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def get(daemon: Daemon, path: str, token: str | None = TOKEN) -> tuple[int, bytes]:
    req = urllib.request.Request(f"http://127.0.0.1:{daemon.health_port}{path}")
    if token is not None:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=3) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()
    except OSError:
        return 0, b""


def wait_serving(daemon: Daemon, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert daemon.proc.poll() is None, daemon.log()[-3000:]
        if get(daemon, "/healthz")[0] in (200, 503):
            return
        time.sleep(0.1)
    raise AssertionError(f"daemon did not start: {daemon.log()[-3000:]}")


def metric(daemon: Daemon, name: str) -> float:
    """Sum of every sample of `name` in /metrics."""
    _, body = get(daemon, "/metrics")
    total = 0.0
    for m in re.finditer(rf"^{re.escape(name)}(?:{{[^}}]*}})? ([0-9.eE+-]+)$", body.decode(),
                         re.M):
        total += float(m.group(1))
    return total


def truth_by_seq(seed: int, frames: int, schedule: list[str | None]) -> dict[int, str]:
    """Frame sequence number (1-based, as the camera counts) -> the synthetic ground truth."""
    from agent.capture.synthetic_scene import ConveyorScene

    scene = ConveyorScene(seed=seed, width=320, height=240, frames_per_part=8, schedule=schedule)
    return {i + 1: scene.next_frame().label for i in range(frames)}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
