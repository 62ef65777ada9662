"""The benchmarks of issue 20 in their smoke mode (CI runs no timed benchmark, only this):
each runs end to end on this machine and prints its baseline and its ratios."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def bench(name: str) -> str:
    out = subprocess.run([sys.executable, str(REPO / "bench" / name), "--smoke"],
                         capture_output=True, text=True, timeout=300, cwd=REPO)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


def test_the_daemon_beside_the_hand_written_loop() -> None:
    text = bench("bench_vs_loop.py")
    assert re.search(r"baseline, hand-written loop: +[\d.]+ frames/s +[\d.]+ ms", text)
    assert re.search(r"edge-agent run \(daemon\): +[\d.]+ frames/s +[\d.]+ ms", text)
    assert re.search(r"ratio frames/s [\d.]+ .*ratio CPU per frame [\d.]+", text.splitlines()[-1])


def test_cameras_per_box() -> None:
    text = bench("bench_cameras.py")
    assert re.search(r"N= +1 +CPU +\d+ %.*capture->PLC ack p99 +[\d.]+ ms .*bare write_coil", text)
    assert "one camera: capture->PLC ack p99" in text
    assert re.search(r"largest N at 320x240: \d+ cameras", text)
