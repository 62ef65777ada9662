"""GenICam capture and camera-trigger figures on Aravis' fake GigE Vision camera.

    .venv/bin/python bench/bench_genicam.py [--seconds 3] [--runs 3] [--parts 100]

1. Throughput at the fake camera's highest rate (512x512 Mono8, AcquisitionFrameRate
   1000): frames/s and process CPU per frame of the agent's Camera thread (one consumer
   draining its slot) vs a bare Aravis loop popping and pushing buffers (and the same
   loop converting to BGR, and the agent's source read in a loop without the thread).
   Runs alternate; medians and the ratio (target >= 0.95).
2. Software trigger -> frame in the station: `fire()` then `get_after()` on the slot,
   p50/p99; and camera timestamp -> frame in the station (the agent's own share).
3. PLC trigger -> result written, the whole daemon (`edge-agent run`, triggered
   station, trigger: software, bundled model) against the soft PLC's handshake:
   from the soft PLC raising `trigger` to the agent setting `done` (written right after
   `result`), p50/p99.

The fake camera needs the Debian package aravis-tools (scripts/setup.sh).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from agent.capture.genicam.aravis import aravis  # noqa: E402
from agent.capture.genicam.config import GenICamCameraConfig  # noqa: E402
from agent.capture.genicam.pixels import to_bgr  # noqa: E402
from agent.runtime.build import build_camera  # noqa: E402
from tests.support.fake_gige import FakeGigECamera  # noqa: E402

FAST = {"type": "genicam", "address": "127.0.0.1", "pixel_format": "Mono8", "frame_rate": 1000,
        "stream_buffers": 16}


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def bare_loop(seconds: float, convert: bool = False) -> tuple[float, float]:
    """(frames/s, CPU ms per frame) of a plain Aravis buffer loop with the same settings;
    `convert`: also turn each frame into the BGR image the agent hands to inference."""
    ar = aravis()
    cam = ar.Camera.new("127.0.0.1")
    cam.set_pixel_format_from_string("Mono8")
    cam.set_frame_rate(1000)
    stream = cam.create_stream(None, None)
    for _ in range(16):
        stream.push_buffer(ar.Buffer.new_allocate(cam.get_payload()))
    cam.start_acquisition()
    n, t0, c0 = 0, time.monotonic(), time.process_time()
    while time.monotonic() - t0 < seconds:
        buf = stream.timeout_pop_buffer(500_000)
        if buf is None:
            continue
        if buf.get_status() == ar.BufferStatus.SUCCESS:
            data = buf.get_data()
            if convert:
                to_bgr(data, "Mono8", buf.get_image_width(), buf.get_image_height())
            n += 1
        stream.push_buffer(buf)
    wall, cpu = time.monotonic() - t0, time.process_time() - c0
    cam.stop_acquisition()
    del stream, cam
    return n / wall, cpu / max(n, 1) * 1000


def source_loop(seconds: float) -> tuple[float, float]:
    """The agent's GenICam source read in a loop, without the capture thread and consumer."""
    from agent.capture.base import Grab
    from agent.capture.genicam.source import GenICamSource

    src = GenICamSource("bench", GenICamCameraConfig.model_validate(FAST))
    src.open()
    n, t0, c0 = 0, time.monotonic(), time.process_time()
    while time.monotonic() - t0 < seconds:
        if isinstance(src.read(time.monotonic), Grab):
            n += 1
    wall, cpu = time.monotonic() - t0, time.process_time() - c0
    src.close()
    return n / wall, cpu / max(n, 1) * 1000


def agent_loop(seconds: float) -> tuple[float, float]:
    cam = build_camera("bench", GenICamCameraConfig.model_validate(FAST), Path("."))
    slot = cam.subscribe()
    cam.start()
    while slot.get(2.0) is None:
        pass
    n, t0, c0 = 0, time.monotonic(), time.process_time()
    while time.monotonic() - t0 < seconds:
        if slot.get(0.5) is not None:
            n += 1
    wall, cpu = time.monotonic() - t0, time.process_time() - c0
    captured = cam.stats().captured
    cam.stop()
    return n / wall, cpu / max(n, 1) * 1000 if captured else 0.0


def throughput(seconds: float, runs: int) -> None:
    bare: list[tuple[float, float]] = []
    bgr: list[tuple[float, float]] = []
    agent: list[tuple[float, float]] = []
    source: list[tuple[float, float]] = []
    for _ in range(runs):
        bare.append(bare_loop(seconds))
        bgr.append(bare_loop(seconds, convert=True))
        source.append(source_loop(seconds))
        agent.append(agent_loop(seconds))
    b_fps = statistics.median(f for f, _ in bare)
    a_fps = statistics.median(f for f, _ in agent)
    print(f"throughput (512x512 Mono8, fake camera at AcquisitionFrameRate 1000, {runs} runs of {seconds:g} s)")
    print(f"  bare Aravis loop : {b_fps:7.1f} frames/s  {statistics.median(c for _, c in bare):.3f} ms CPU/frame")
    c_fps = statistics.median(f for f, _ in bgr)
    print(f"  bare loop + BGR  : {c_fps:7.1f} frames/s  {statistics.median(c for _, c in bgr):.3f} ms CPU/frame")
    print(f"  agent source.read: {statistics.median(f for f, _ in source):7.1f} frames/s  {statistics.median(c for _, c in source):.3f} ms CPU/frame (no capture thread)")
    print(f"  agent Camera     : {a_fps:7.1f} frames/s  {statistics.median(c for _, c in agent):.3f} ms CPU/frame")
    print(f"  ratio agent/bare : {a_fps / b_fps:.3f}, agent/(bare + BGR) {a_fps / c_fps:.3f} (target >= 0.95)")


def software_trigger(n: int) -> None:
    cfg = GenICamCameraConfig.model_validate({**FAST, "trigger": "software"})
    cam = build_camera("bench", cfg, Path("."))
    slot = cam.subscribe()
    cam.start()
    while cam.state.value != "streaming":
        time.sleep(0.01)
    fire_to_station: list[float] = []
    stamp_to_station: list[float] = []
    for _ in range(n):
        t = cam.source.fire()  # type: ignore[attr-defined]
        frame = slot.get_after(t, 1.0)
        now = time.monotonic()
        if frame is None:
            print("  a trigger produced no frame within 1 s")
            continue
        fire_to_station.append((now - t) * 1000)
        stamp_to_station.append((now - frame.t_capture) * 1000)
    cam.stop()
    print(f"software trigger -> frame in the station ({n} triggers)")
    print(f"  fire -> frame       p50 {pct(fire_to_station, 0.5):6.2f} ms  p99 {pct(fire_to_station, 0.99):6.2f} ms")
    print(f"  camera stamp -> station p50 {pct(stamp_to_station, 0.5):6.2f} ms  p99 {pct(stamp_to_station, 0.99):6.2f} ms")


async def plc_to_result(parts: int, tmp: Path) -> None:
    from plc.conveyor import ConveyorSettings
    from plc.softplc import SoftPlc
    from plc.tags import load_tags
    from tests.e2e.genicam_line import genicam_line_config
    from tests.e2e.harness import Daemon
    from tests.support.mosquitto import Mosquitto
    from tests.support.ports import free_port

    broker = Mosquitto(tmp).start()
    plc = SoftPlc(load_tags(), modbus_port=free_port(), opcua_port=None,
                  settings=ConveyorSettings(part_period_s=0.12, triggered=True, done_timeout_s=3))
    raised: dict[Any, float] = {}
    latencies: list[float] = []

    def on_change(key: str, value: Any, _source: str) -> None:
        now = time.monotonic()
        if key == "line1.station1.trigger" and value:
            raised["t"] = now
        elif key == "line1.station1.done" and value and "t" in raised:
            latencies.append((now - raised.pop("t")) * 1000)

    plc.state.listen(on_change)
    cfg = genicam_line_config(tmp, mqtt_port=broker.port, modbus_port=plc.modbus_port or 0,
                              serial="EA0001", trigger="software", frame_ms=1000)
    text = cfg.read_text().replace("frame_rate: 20", "frame_rate: 1000")
    cfg.write_text(text)
    daemon = Daemon(cfg)
    try:
        daemon.wait_started()
        deadline = time.monotonic() + 30
        while "camera cam1: connecting -> streaming" not in daemon.log():
            if time.monotonic() > deadline:
                raise SystemExit("the daemon did not open the fake camera")
            await asyncio.sleep(0.05)
        await plc.start()
        sim = plc.conveyor.stations["line1.station1"]
        while len(sim.results) < parts:
            await asyncio.sleep(0.1)
        unknown = sum(r.result == 3 for r in sim.results[:parts])
    finally:
        daemon.ensure_dead()
        await plc.stop()
        broker.stop()
    print(f"PLC trigger -> result written, whole daemon, trigger: software ({parts} parts, "
          f"modbus poll_ms 5, {unknown} UNKNOWN)")
    print(f"  p50 {pct(latencies, 0.5):6.2f} ms  p99 {pct(latencies, 0.99):6.2f} ms  "
          f"max {max(latencies):6.2f} ms")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--triggers", type=int, default=200)
    ap.add_argument("--parts", type=int, default=100)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp, FakeGigECamera(Path(tmp), serial="EA0001"):
        throughput(args.seconds, args.runs)
        software_trigger(args.triggers)
        asyncio.run(plc_to_result(args.parts, Path(tmp)))


if __name__ == "__main__":
    main()
