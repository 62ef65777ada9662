"""Polling a condition in a test that runs in a plain thread (the async tests use
tests.e2e.harness.wait_until)."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_for(cond: Callable[[], object], timeout: float, what: str = "the condition",
             poll_s: float = 0.05) -> None:
    """Poll `cond` until it is true; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(poll_s)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
