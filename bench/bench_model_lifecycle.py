"""Model lifecycle benchmark (issue 24): hot swap, shadow mode and offline evaluation
against the same running station, in one run.

The daemon's objects in one process on a recorded 320x240 Motion-JPEG video paced like a
camera, the bundled model, a real Mosquitto and the soft PLC over Modbus TCP in its own
process (as in bench_pipeline.py). Prints:

  - swap: the first half of the run without swaps, the second half promoting a model
    (loaded beside, checked, warmed up, switched) again and again, alternating the bundled
    model and a re-tagged copy (another sha256): the largest gap in inspected frame
    numbers and frames not inspected in each half, and capture -> PLC ack p50/p99 of the
    reject pulses in each half;
  - shadow: the same station with and without a shadow model: the shadow's own CPU per
    frame (its thread's CPU time), the process CPU per frame, frames compared / skipped,
    and production capture -> PLC ack and capture -> event loop p99, on vs off;
  - evaluate: `edge-agent evaluate` (SCHED_IDLE, nice 10, one thread) over 12,000 images,
    started before the station (no process spawned during the phase): production p99
    with it running vs not.

    .venv/bin/python bench/bench_model_lifecycle.py [--frames 900] [--fps 50]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import logging
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2
import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from agent.app import Agent, RunLimits  # noqa: E402
from agent.capture.synthetic_scene import ConveyorScene  # noqa: E402
from agent.configfile import parse_config  # noqa: E402
from bench.bench_pipeline import config, pct, write_video  # noqa: E402
from tests.support.lifecycle_models import retagged_bundled  # noqa: E402
from tests.support.mosquitto import Mosquitto  # noqa: E402
from tests.support.ports import free_port, wait_port  # noqa: E402


class Probe:
    """Per inspection (frame seq, time handed to the loop); per acked command (time,
    capture -> ack ms); capture -> loop ms."""

    def __init__(self, agent: Agent) -> None:
        self.seen: list[tuple[int, float]] = []
        self.acks: list[tuple[float, float]] = []
        self.to_loop: list[tuple[float, float]] = []
        self.t_capture: dict[int, float] = {}
        on_insp, on_outcome = agent._on_inspection, agent.on_outcome

        def inspected(rt: Any, insp: Any) -> None:
            now = time.monotonic()
            self.t_capture[insp.frame_seq] = insp.t_capture
            self.seen.append((insp.frame_seq, now))
            self.to_loop.append((now, (now - insp.t_capture) * 1000))
            on_insp(rt, insp)

        def outcome(o: Any) -> None:
            frames = o.command.evidence.get("frames") or []
            if o.status.value == "acked" and frames and max(frames) in self.t_capture:
                t_cap = self.t_capture[max(frames)]
                self.acks.append((time.monotonic(), (o.command.created - t_cap) * 1000
                                  + o.latency_ms))
            on_outcome(o)

        agent._on_inspection = inspected  # type: ignore[method-assign]
        agent.on_outcome = outcome  # type: ignore[method-assign]


def lifecycle_config(tmp: Path, video: Path, fps: float, mqtt: int, plc: int,
                     v2: Path, shadow: bool) -> str:
    cfg = yaml.safe_load(config(tmp, video, fps, mqtt, plc))
    cfg["models"]["v2"] = {"path": str(v2)}
    st = cfg["lines"]["l1"]["stations"]["s1"]
    st["model_guard"] = {"window_s": 0}
    if shadow:
        st["shadow"] = "v2"
    return yaml.safe_dump(cfg)


async def run(tmp: Path, text: str, frames: int, during: Any = None) -> tuple[Probe, Agent, float]:
    agent = Agent(parse_config(text, str(tmp / "bench.yaml"), tmp), RunLimits(max_frames=frames))
    probe = Probe(agent)
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    await agent.start()
    side = asyncio.create_task(during(agent)) if during else None
    try:
        await asyncio.wait_for(agent.wait(), timeout=frames / 10 + 60)
    except TimeoutError:
        pass
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    if side is not None:
        side.cancel()
        await asyncio.gather(side, return_exceptions=True)
    await asyncio.sleep(0.3)
    await agent.shutdown()
    cpu_s = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    return probe, agent, cpu_s


def gaps(seen: list[tuple[int, float]], start: float, end: float) -> tuple[int, int, int]:
    """(largest step in frame numbers, frames skipped, frames inspected) in [start, end)."""
    seqs = [s for s, t in seen if start <= t < end]
    steps = [b - a for a, b in itertools.pairwise(seqs)]
    return (max(steps) if steps else 0, sum(s - 1 for s in steps if s > 1), len(seqs))


def split(xs: list[tuple[float, float]], start: float, end: float) -> list[float]:
    return [v for t, v in xs if start <= t < end]


def fmt(xs: list[float]) -> str:
    return f"n={len(xs):3d} p50 {pct(xs, 50):6.2f} ms  p99 {pct(xs, 99):6.2f} ms"


async def swap_bench(tmp: Path, video: Path, args: argparse.Namespace, ports: tuple[int, int],
                     v2: Path) -> None:
    text = lifecycle_config(tmp, video, args.fps, *ports, v2, shadow=False)
    marks: dict[str, float] = {}
    switched: list[float] = []

    async def promoting(agent: Agent) -> None:
        half = args.frames / args.fps / 2
        await asyncio.sleep(half)
        marks["swaps"] = time.monotonic()
        rt = next(iter(agent.stations.values()))
        for name in itertools.cycle(("v2", "m")):
            t = time.monotonic()
            if await agent.lifecycle.promote(rt, name, "bench"):
                switched.append(time.monotonic() - t)
            await asyncio.sleep(0.2)

    probe, agent, _ = await run(tmp, text, args.frames, promoting)
    t0 = probe.seen[0][1] if probe.seen else 0.0
    mid, end = marks.get("swaps", 0.0), probe.seen[-1][1] + 1 if probe.seen else 0.0
    print(f"swap: {args.frames} frames paced at {args.fps:g} fps; second half: {len(switched)} "
          f"promotes (load + checks + warm-up + switch: median "
          f"{1000 * sorted(switched)[len(switched) // 2] if switched else float('nan'):.0f} ms)")
    for label, a, b in (("before (no swap)", t0, mid), ("during the swaps", mid, end)):
        g, skipped, n = gaps(probe.seen, a, b)
        print(f"  {label:18s} inspected {n:4d}, largest step in frame numbers {g}, "
              f"frames not inspected {skipped}; capture -> PLC ack {fmt(split(probe.acks, a, b))}")


async def shadow_bench(tmp: Path, video: Path, args: argparse.Namespace,
                       ports: tuple[int, int], v2: Path) -> None:
    out = {}
    for on in (False, True):
        text = lifecycle_config(tmp / ("on" if on else "off"), video, args.fps, *ports, v2, on)
        probe, agent, cpu_s = await run(tmp / ("on" if on else "off"), text, args.frames)
        sh = agent.lifecycle.status()[0]["shadow"] if on else None
        out[on] = (probe, cpu_s, sh)
    print(f"shadow ({args.frames} frames at {args.fps:g} fps, shadow = the re-tagged bundled model):")
    for on in (False, True):
        probe, cpu_s, sh = out[on]
        n = len(probe.seen)
        print(f"  shadow {'on ' if on else 'off'}: process CPU {1000 * cpu_s / max(n, 1):.2f} ms/frame;"
              f" capture -> PLC ack {fmt([v for _, v in probe.acks])}; capture -> loop p99 "
              f"{pct([v for _, v in probe.to_loop], 99):.2f} ms")
        if sh:
            print(f"    shadow compared {sh['compared']}, skipped {sh['skipped_total']} "
                  f"{sh['skipped']}, agreement {sh['agreement']}, its CPU "
                  f"{sh['cpu_ms_per_frame']:.2f} ms/frame (thread time), p99 {sh['p99_ms']:.2f} ms")


def image_folder(folder: Path, n: int = 1000) -> None:
    scene = ConveyorScene(seed=5, width=320, height=240)
    for i in range(n):
        f = scene.next_frame()
        (folder / f.label).mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(folder / f.label / f"{i:04d}.png"), f.image)


def replicate(folder: Path, copies: int) -> Path:
    """The folder's images `copies` times over (links): one evaluate run outlasts the phase."""
    out = folder.parent / f"{folder.name}-x{copies}"
    for img in sorted(folder.rglob("*.png")):
        for c in range(copies):
            dst = out / img.parent.name / f"{c:02d}-{img.name}"
            dst.parent.mkdir(parents=True, exist_ok=True)
            dst.symlink_to(img)
    return out


async def evaluate_bench(tmp: Path, video: Path, args: argparse.Namespace,
                         ports: tuple[int, int], v2: Path) -> None:
    image_folder(tmp / "imgs")
    folder = replicate(tmp / "imgs", 12)
    results = {}
    for busy in (False, True):
        text = lifecycle_config(tmp / f"e{busy}", video, args.fps, *ports, v2, False)
        proc = None
        if busy:  # started once, before the station: no process spawn during the phase
            proc = subprocess.Popen([sys.executable, "-m", "agent", "evaluate", "--model",
                                     str(v2), "--folder", str(folder)],
                                    stdout=subprocess.DEVNULL, cwd=REPO)
            await asyncio.sleep(3.0)  # past its imports and model load
        try:
            probe, _, _ = await run(tmp / f"e{busy}", text, args.frames)
        finally:
            if proc is not None:
                still = proc.poll() is None
                proc.kill()
                proc.wait()
                if not still:
                    print("  (evaluate ended before the phase did: figures understate it)")
        results[busy] = probe
    print("evaluate (SCHED_IDLE + nice 10, 1 thread) over 12,000 images beside the station:")
    for busy in (False, True):
        p = results[busy]
        print(f"  evaluate {'running' if busy else 'off    '}: capture -> PLC ack "
              f"{fmt([v for _, v in p.acks])}; capture -> loop p99 "
              f"{pct([v for _, v in p.to_loop], 99):.2f} ms; inspected {len(p.seen)}")


async def main_async(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        video = tmp / "line.avi"
        write_video(video, args.frames)
        v2 = retagged_bundled(tmp / "v2")
        broker = Mosquitto(tmp).start()
        plc_port = free_port()
        plc = subprocess.Popen([sys.executable, "-m", "plc", "--modbus-port", str(plc_port),
                                "--opcua-port", "0", "--quiet"], cwd=REPO)
        wait_port(plc_port)
        try:
            ports = (broker.port, plc_port)
            if "swap" in args.only:
                await swap_bench(tmp / "swap", video, args, ports, v2)
            if "shadow" in args.only:
                await shadow_bench(tmp / "shadow", video, args, ports, v2)
            if "evaluate" in args.only:
                await evaluate_bench(tmp / "eval", video, args, ports, v2)
        finally:
            plc.terminate()
            plc.wait(10)
            broker.stop()


def main() -> None:
    logging.getLogger("agent").setLevel(logging.ERROR)  # one WARNING line per switch
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--frames", type=int, default=900)
    ap.add_argument("--fps", type=float, default=50.0)
    ap.add_argument("--only", nargs="+", default=["swap", "shadow", "evaluate"],
                    choices=["swap", "shadow", "evaluate"])
    asyncio.run(main_async(ap.parse_args()))


if __name__ == "__main__":
    main()
