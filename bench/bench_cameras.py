"""Cameras per box (issue 20): the largest N the daemon keeps up with, at 30 fps each.

N file cameras (a Motion-JPEG recording of a moving conveyor scene, looped, paced at
30 fps: decoded as an IP camera's stream is), each its own station with the bundled
model (one model, shared), its rules (a reject per defective part), the box's PLC (the
soft PLC in its own process over Modbus TCP, heartbeat on) and a file sink. Each trial
runs in a fresh process (RSS is that process: the agent and a thin probe on its seams)
and measures a steady window after a warm-up:

- frames dropped per station: 1 - frames inspected / frames the camera should deliver
  (30 fps x window): frames never captured in time, replaced in the newest-frame slot,
  or too old for the latency budget all count;
- capture -> verdict p99 (the decision made on the event loop) over every station;
- capture -> PLC-acknowledged reject p99;
- process CPU % (100 % = one core) and RSS.

A trial passes when every station drops < 1 %, capture -> verdict p99 <= 50 ms and
capture -> PLC ack p99 <= 20 ms. A binary search finds the largest passing N (up to
`--max-n`). Printed last: N against CPU %, p99s and RSS, with the RSS target (150 MB +
10 MB per camera), and the one-camera stop latency next to the model's own p99.

    .venv/bin/python bench/bench_cameras.py [--size 320x240] [--window 8] [--max-n 48]
    .venv/bin/python bench/bench_cameras.py --smoke      (CI: N = 1 and 2, short windows)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.support.ports import free_port, wait_port  # noqa: E402

FPS = 30.0
DROP_MAX, VERDICT_P99_MS, STOP_P99_MS = 0.01, 50.0, 20.0
COIL0, HR0 = 100, 1000  # station i: coils 100 + 4i.., registers 1000 + 8i..
PROBE_COIL = 99


def pct(xs: list[float], q: int) -> float:
    if len(xs) < 2:
        return xs[0] if xs else float("nan")
    return statistics.quantiles(xs, n=100, method="inclusive")[q - 1]


def tag_map(n: int) -> dict[str, Any]:
    """plc/tags.yaml with N stations (line1.s0 ..), for the soft PLC."""
    base = yaml.safe_load((REPO / "plc" / "tags.yaml").read_text())
    stations = {}
    for i in range(n):
        c, h = COIL0 + 4 * i, HR0 + 8 * i
        ns = f"ns=2;s=Line1.S{i}"
        stations[f"line1.s{i}"] = {
            "stop_request": {"modbus": f"coil:{c}", "opcua": f"{ns}.StopRequest", "type": "bool", "dir": "out"},
            "reject": {"modbus": f"coil:{c + 1}", "opcua": f"{ns}.Reject", "type": "bool", "dir": "out"},
            "alarm": {"modbus": f"coil:{c + 2}", "opcua": f"{ns}.Alarm", "type": "bool", "dir": "out"},
            "defect_code": {"modbus": f"hr:{h}", "opcua": f"{ns}.DefectCode", "type": "u16", "dir": "out"},
            "defect_count": {"modbus": f"hr:{h + 1}", "opcua": f"{ns}.DefectCount", "type": "u16", "dir": "out"},
            "last_event_seq": {"modbus": f"hr:{h + 2}:u32", "opcua": f"{ns}.LastEventSeq", "type": "u32", "dir": "out"},
        }
    stations["bench.probe"] = {  # the baseline's coil: bare writes in the same trial
        "reject": {"modbus": f"coil:{PROBE_COIL}", "opcua": "ns=2;s=Bench.Probe", "type": "bool",
                   "dir": "out"}}
    base["stations"] = stations
    base.pop("methods", None)
    return base


def agent_config(tmp: Path, videos: list[Path], n: int, plc_port: int) -> str:
    rules = [{"class": c, "min_score": 0.6, "k": 1, "n": 1, "clear_after": 2,
              "action": "reject", "defect_code": code}
             for c, code in (("scratch", 101), ("spot", 201), ("crack", 301), ("dent", 401))]
    stations = {}
    for i in range(n):
        c, h = COIL0 + 4 * i, HR0 + 8 * i
        stations[f"s{i}"] = {
            "camera": f"cam{i}", "model": "m", "plc": "plc", "sinks": ["file"],
            "signals": {"reject": f"coil:{c + 1}", "defect_code": f"hr:{h}"}, "rules": rules}
    cfg = {
        "site": "bench", "agent_id": "bench", "state_dir": str(tmp / "state"),
        "health": {"listen": ""}, "log": {"level": "warning"},
        "cameras": {f"cam{i}": {"type": "opencv", "source": str(videos[i]), "fps": FPS,
                                "loop": True} for i in range(n)},
        "models": {"m": {"path": str(REPO / "models" / "defect-cnn")}},
        "plcs": {"plc": {"type": "modbus", "host": "127.0.0.1", "port": plc_port,
                         "heartbeat": {"counter": "hr:0", "status": "hr:1"}}},
        "sinks": {"file": {"type": "file", "dir": str(tmp / "out")}},
        "lines": {"l1": {"stations": stations}},
    }
    return yaml.safe_dump(cfg)


# ------------------------------------------------------------------ one trial (child)
class Probe:
    """Capture times per (camera, seq), capture -> verdict, capture -> PLC ack."""

    def __init__(self) -> None:
        self.t_capture: dict[tuple[str, int], float] = {}
        self.window: tuple[float, float] = (float("inf"), float("inf"))
        self.verdict_ms: list[float] = []
        self.stop_ms: list[float] = []
        self.ack_ms: list[float] = []  # of which: command created -> PLC ack
        self.inspected: dict[str, list[tuple[int, float]]] = {}  # (seq, t_capture)

    def attach(self, agent: Any) -> None:
        on_insp, on_outcome = agent._on_inspection, agent.on_outcome

        def inspected(rt: Any, insp: Any) -> Any:
            sent = on_insp(rt, insp)  # the decision first, as the daemon makes it
            t = insp.t_capture
            self.t_capture[(rt.key, insp.frame_seq)] = t
            if self.window[0] <= t < self.window[1]:
                self.verdict_ms.append((time.monotonic() - t) * 1000)
                self.inspected.setdefault(rt.key, []).append((insp.frame_seq, t))
            return sent

        def outcome(o: Any) -> None:
            frames = o.command.evidence.get("frames") or []
            c = o.command
            t = self.t_capture.get((f"{c.line}/{c.station}", max(frames))) if frames else None
            if o.status.value == "acked" and t is not None and o.latency_ms is not None \
                    and self.window[0] <= t < self.window[1]:
                self.stop_ms.append((o.command.created - t) * 1000 + o.latency_ms)
                self.ack_ms.append(o.latency_ms)
            on_outcome(o)

        agent._on_inspection = inspected
        agent.on_outcome = outcome


def rss_mb() -> tuple[float, float]:
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                out[line.split(":")[0]] = int(line.split()[1]) / 1024
    return out["VmRSS"], out["VmHWM"]


async def trial(n: int, videos: list[Path], warmup: float, window: float) -> dict[str, Any]:
    from agent.app import Agent, RunLimits
    from agent.configfile import parse_config

    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        tags = tmp / "tags.yaml"
        tags.write_text(yaml.safe_dump(tag_map(n)))
        plc_port = free_port()
        plc = subprocess.Popen([sys.executable, "-m", "plc", "--tags", str(tags), "--modbus-port",
                                str(plc_port), "--opcua-port", "0", "--quiet"], cwd=REPO)
        try:
            wait_port(plc_port, timeout=30.0)
            loaded = parse_config(agent_config(tmp, videos, n, plc_port), str(tmp / "a.yaml"), tmp)
            agent = Agent(loaded, RunLimits())
            probe = Probe()
            probe.attach(agent)
            await agent.start()
            await asyncio.sleep(warmup)
            t0 = time.monotonic()
            probe.window = (t0, t0 + window)
            c0 = time.process_time()
            bare: list[float] = []
            writer = asyncio.create_task(bare_writes(plc_port, bare))
            await asyncio.sleep(window)
            cpu = time.process_time() - c0
            writer.cancel()
            await asyncio.gather(writer, return_exceptions=True)
            rss, peak = rss_mb()
            await asyncio.sleep(0.3)  # the window's last verdicts and acks
            runner = next(iter(agent.runners.values()))
            in_run_p99 = runner.stats().p99_infer_ms
            await agent.shutdown()
            model_p99 = pct(bare_runs(runner, 500), 99)
        finally:
            plc.terminate()
            plc.wait(10)
    drops = {k: dropped(probe.inspected.get(k, [])) for k in (f"l1/s{i}" for i in range(n))}
    return {"n": n, "cpu_pct": cpu / window * 100, "rss_mb": rss, "peak_rss_mb": peak,
            "worst_drop": max(drops.values()), "verdict_p99": pct(probe.verdict_ms, 99),
            "stop_p99": pct(probe.stop_ms, 99), "stops": len(probe.stop_ms),
            "ack_p99": pct(probe.ack_ms, 99), "bare_p99": pct(bare, 99),
            "model_p99": model_p99, "model_p99_in_run": in_run_p99}


async def bare_writes(port: int, out: list[float]) -> None:
    """Baseline in the same trial: a bare pymodbus write_coil round trip to the same soft
    PLC every 50 ms (from this process, as the daemon's link is)."""
    from pymodbus.client import AsyncModbusTcpClient

    client = AsyncModbusTcpClient("127.0.0.1", port=port)
    await client.connect()
    try:
        while True:
            t = time.perf_counter()
            await client.write_coil(PROBE_COIL, True, device_id=1)
            out.append((time.perf_counter() - t) * 1000)
            await asyncio.sleep(0.05)
    finally:
        client.close()


def dropped(seen: list[tuple[int, float]]) -> float:
    """Share of the frames a 30 fps camera should have delivered that were not inspected:
    frames captured but not inspected (gaps in the camera's sequence numbers), and frames
    never captured in time (the capture rate below 30 fps)."""
    if len(seen) < 2:
        return 1.0
    (s0, t0), (s1, t1) = min(seen), max(seen)
    not_inspected = 1 - len(seen) / (s1 - s0 + 1)
    shortfall = max(0.0, 1 - (s1 - s0) / (t1 - t0) / FPS) if t1 > t0 else 1.0
    return 1 - (1 - not_inspected) * (1 - shortfall)


def bare_runs(runner: Any, n: int) -> list[float]:
    """The model's own session.run, alone, after the trial (the latency target's base)."""
    x = runner.pre.blank()
    out = []
    for _ in range(n):
        t = time.perf_counter()
        runner.session.run(None, {runner.input_name: x})
        out.append((time.perf_counter() - t) * 1000)
    return out


def run_trial(n: int, size: str, warmup: float, window: float) -> dict[str, Any]:
    videos_for(size, n)  # made here: decoding them in the trial would count in its RSS
    try:
        out = subprocess.run([sys.executable, __file__, "--trial", str(n), "--size", size,
                              "--warmup", str(warmup), "--window", str(window)],
                             capture_output=True, text=True, timeout=120 + 5 * n)
    except subprocess.TimeoutExpired:  # an overloaded box: this N fails, the search goes on
        nan = float("nan")
        return {"n": n, "cpu_pct": nan, "rss_mb": nan, "peak_rss_mb": nan, "worst_drop": 1.0,
                "verdict_p99": nan, "stop_p99": nan, "stops": 0, "ack_p99": nan,
                "bare_p99": nan, "model_p99": nan, "model_p99_in_run": nan}
    if out.returncode != 0:
        raise SystemExit(f"trial N={n} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def passes(r: dict[str, Any]) -> bool:
    stop_ok = r["stops"] == 0 or r["stop_p99"] <= STOP_P99_MS
    return r["worst_drop"] < DROP_MAX and r["verdict_p99"] <= VERDICT_P99_MS and stop_ok


def video_for(size: str) -> Path:
    """One looped recording per size, kept between trials (a temporary folder)."""
    sys.path.insert(0, str(REPO / "bench"))
    from bench_vs_loop import write_video

    w, h = (int(v) for v in size.split("x"))
    path = Path(tempfile.gettempdir()) / f"edge-agent-bench-cameras-{w}x{h}.avi"
    if not path.exists():
        write_video(path, 300, (w, h))  # 10 s at 30 fps, looped
    return path


def videos_for(size: str, n: int) -> list[Path]:
    """Camera i plays the recording from frame 37 i on: defects on different cameras do
    not come at the same instant (one recording for all would queue every camera's reject
    on the PLC at once, which no line does)."""
    import cv2

    base = video_for(size)
    out = []
    for i in range(n):
        path = base.with_name(f"{base.stem}-{i}.avi")
        if not path.exists():
            cap = cv2.VideoCapture(str(base))
            frames = []
            while (got := cap.read())[0]:
                frames.append(got[1])
            cap.release()
            k = (37 * i) % len(frames)
            h, w = frames[0].shape[:2]
            writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), FPS, (w, h))
            for f in frames[k:] + frames[:k]:
                writer.write(f)
            writer.release()
        out.append(path)
    return out


def show(r: dict[str, Any]) -> None:
    print(f"  N={r['n']:3d}  CPU {r['cpu_pct']:5.0f} %  worst drop {r['worst_drop'] * 100:5.2f} %"
          f"  capture->verdict p99 {r['verdict_p99']:6.1f} ms  capture->PLC ack p99 "
          f"{r['stop_p99']:6.1f} ms (command -> ack {r['ack_p99']:.1f}; bare write_coil p99 {r['bare_p99']:.1f}; {r['stops']} rejects)  RSS {r['rss_mb']:5.0f} MB "
          f"(target {150 + 10 * r['n']})  {'pass' if passes(r) else 'FAIL'}", flush=True)


def search(size: str, lo: int, hi: int, warmup: float, window: float,
           results: dict[int, dict[str, Any]]) -> list[dict[str, Any]]:
    """Largest passing N in [lo, hi]: double from lo while passing, then bisect. `results`:
    trials already run (by N), reused."""

    def ok(n: int) -> bool:
        if n not in results:
            results[n] = run_trial(n, size, warmup, window)
            show(results[n])
        return passes(results[n])

    good, bad = 0, hi + 1
    n = lo
    while n <= hi and ok(n):
        good, n = n, min(hi, n * 2) if n < hi else hi + 1
    bad = min(bad, n)
    while bad - good > 1:
        mid = (good + bad) // 2
        if ok(mid):
            good = mid
        else:
            bad = mid
    return [results[k] for k in sorted(results)] + ([{"best": good}])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--size", action="append", help="WxH (repeatable); default 320x240 and 640x480")
    ap.add_argument("--window", type=float, default=8.0, help="seconds measured per trial")
    ap.add_argument("--warmup", type=float, default=3.0)
    ap.add_argument("--start", type=int, default=4, help="first N of the search")
    ap.add_argument("--max-n", type=int, default=48)
    ap.add_argument("--smoke", action="store_true", help="CI: N = 1..2 at 320x240, 2 s windows")
    ap.add_argument("--trial", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    sizes = args.size or ["320x240", "640x480"]
    if args.trial is not None:
        r = asyncio.run(trial(args.trial, videos_for(sizes[0], args.trial), args.warmup, args.window))
        print(json.dumps(r))
        return
    if args.smoke:
        sizes, args.window, args.warmup, args.start, args.max_n = ["320x240"], 2.0, 1.0, 1, 2
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at the start; "
          f"targets: drops < {DROP_MAX:.0%}, capture->verdict p99 <= {VERDICT_P99_MS:.0f} ms, "
          f"capture->PLC ack p99 <= {STOP_P99_MS:.0f} ms; RSS <= 150 MB + 10 MB per camera")
    summary = []
    for size in sizes:
        video_for(size)
        print(f"{size}, cameras at {FPS:.0f} fps:")
        one = run_trial(1, size, args.warmup, args.window)
        show(one)
        print(f"  one camera: capture->PLC ack p99 {one['stop_p99']:.1f} ms vs model p99 "
              f"{one['model_p99']:.2f} ms + 5 = {one['model_p99'] + 5:.2f} ms (session.run alone; "
              f"in the run {one['model_p99_in_run']:.2f} ms): {'kept' if one['stop_p99'] <= one['model_p99'] + 5 else 'MISSED'}")
        rows = search(size, max(1, args.start), args.max_n, args.warmup, args.window, {1: one})
        best = rows[-1]["best"]
        at = next((r for r in rows[:-1] if r["n"] == best), None)
        if at is not None:
            print(f"  at N={best}: capture->PLC ack p99 {at['stop_p99']:.1f} ms vs model p99 "
                  f"{at['model_p99']:.2f} ms + 5 = {at['model_p99'] + 5:.2f} ms: "
                  f"{'kept' if at['stop_p99'] <= at['model_p99'] + 5 else 'MISSED'}")
        summary.append((size, best))
    print(f"load average {os.getloadavg()[0]:.2f} at the end")
    for size, best in summary:
        print(f"largest N at {size}: {best} cameras (target >= 20 at 320x240)")


if __name__ == "__main__":
    main()
