"""The daemon beside the loop a user would write instead (issue 20), interleaved rounds.

On one 320x240 Motion-JPEG file of a textured, moving conveyor scene:

- baseline: a hand-written one-thread loop in its own process: `cv2.VideoCapture.read`
  -> resize/normalise -> `session.run` (onnxruntime CPU, 1 intra-op thread, the bundled
  model) -> softmax;
- the daemon as a real process: `edge-agent run --max-frames N` on an `opencv` file
  camera, one station with its rules, drift and metrics at their defaults, a file sink.
  Frames/s from its own `/metrics` (inspections counter), process CPU from
  /proc/<pid>/stat (utime + stime), both over the same steady window (after the first
  10% of the frames, before the last 10%): start-up (imports, model load) is not counted
  for either.

Every unpaced file frame is inspected (a recording is read at the consumer's pace). The
loop's CPU is `time.process_time()` over its own steady window. Prints each round, the
medians, and the two ratios last (targets: frames/s >= 1.3x the loop's, CPU per frame <=
1.25x the loop's). `--per-thread` adds the daemon's CPU per frame by thread.

    .venv/bin/python bench/bench_vs_loop.py [--frames 6000] [--rounds 3] [--smoke]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import cv2
import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from agent.capture.synthetic_scene import ConveyorScene  # noqa: E402
from tests.support.ports import free_port, wait_port  # noqa: E402

SCHEDULE = [None, "scratch", None, "spot", None, "crack", None, "dent"]
CLK = os.sysconf("SC_CLK_TCK")
TARGET_FPS, TARGET_CPU = 1.3, 1.25


def write_video(path: Path, frames: int, size: tuple[int, int] = (320, 240)) -> None:
    """A textured, moving conveyor scene with a defect every other part, Motion-JPEG."""
    scene = ConveyorScene(seed=21, width=size[0], height=size[1], schedule=SCHEDULE)
    out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30, size)
    for _ in range(frames):
        out.write(scene.next_frame().image)
    out.release()


# ------------------------------------------------------------------ the hand-written loop
LOOP = r'''
import json, sys, time
import cv2, numpy as np, onnxruntime as ort
video, model, frames = sys.argv[1], sys.argv[2], int(sys.argv[3])
so = ort.SessionOptions()
so.intra_op_num_threads = 1
so.inter_op_num_threads = 1
sess = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
name = sess.get_inputs()[0].name
cap = cv2.VideoCapture(video)
n, t0, c0, hist = 0, None, None, [0] * 5
lo, hi = frames // 10, frames - frames // 10
while True:
    ok, img = cap.read()
    if not ok:
        break
    x = cv2.resize(img, (128, 96))[:, :, ::-1].astype(np.float32) / 255.0
    x = np.ascontiguousarray(x.transpose(2, 0, 1))[None]
    logits = sess.run(None, {name: x})[0][0]
    e = np.exp(logits - logits.max())
    hist[int((e / e.sum()).argmax())] += 1
    n += 1
    if n == lo:
        t0, c0 = time.perf_counter(), time.process_time()
    elif n == hi:
        t1, c1 = time.perf_counter(), time.process_time()
print(json.dumps({"frames": n, "window": hi - lo, "wall": t1 - t0, "cpu": c1 - c0,
                  "classes": hist}))
'''


def run_loop(video: Path, frames: int) -> dict[str, float]:
    model = str(REPO / "models" / "defect-cnn" / "model.onnx")
    out = subprocess.run([sys.executable, "-c", LOOP, str(video), model, str(frames)],
                         capture_output=True, text=True, check=True, timeout=600)
    r = json.loads(out.stdout)
    return {"fps": r["window"] / r["wall"], "cpu_ms": r["cpu"] / r["window"] * 1000,
            "frames": r["frames"]}


# ------------------------------------------------------------------ the daemon
def daemon_config(tmp: Path, video: Path, port: int, extra: dict[str, Any] | None) -> Path:
    rules = [{"class": c, "min_score": 0.6, "k": 1, "n": 1, "clear_after": 2,
              "action": "alert", "defect_code": code}
             for c, code in (("scratch", 101), ("spot", 201), ("crack", 301), ("dent", 401))]
    station: dict[str, Any] = {"camera": "cam", "model": "m", "sinks": ["file"],
                               "rules": rules}
    station.update(extra or {})
    cfg = {
        "site": "bench", "agent_id": "bench", "state_dir": str(tmp / "state"),
        "health": {"listen": f"127.0.0.1:{port}"},
        "log": {"level": "warning"},
        "cameras": {"cam": {"type": "opencv", "source": str(video)}},
        "models": {"m": {"path": str(REPO / "models" / "defect-cnn")}},
        "sinks": {"file": {"type": "file", "dir": str(tmp / "out")}},
        "lines": {"l1": {"stations": {"s1": station}}},
    }
    tmp.mkdir(parents=True, exist_ok=True)
    path = tmp / "agent.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def proc_cpu(pid: int, tid: int | None = None) -> float:
    """utime + stime of a process (or one of its threads), seconds."""
    path = f"/proc/{pid}/task/{tid}/stat" if tid else f"/proc/{pid}/stat"
    with open(path) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK


def threads(pid: int) -> dict[int, tuple[str, float]]:
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                name = f.read().strip()
            out[int(tid)] = (name, proc_cpu(pid, int(tid)))
        except OSError:
            continue
    return out


INSPECTIONS = re.compile(rb"^edge_agent_inspections_total\{[^}]*\} ([0-9.e+]+)$", re.M)


def scrape(port: int) -> float | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
            body = r.read()
    except OSError:
        return None
    return sum(float(v) for v in INSPECTIONS.findall(body))


# names each Python thread in the kernel (comm, 15 characters) so /proc tells them apart
NAMED = r'''
import ctypes, sys, threading
libc = ctypes.CDLL(None)
libc.prctl(15, b"event-loop", 0, 0, 0)
boot = threading.Thread._bootstrap_inner
def named(self):
    libc.prctl(15, self.name.encode()[:15], 0, 0, 0)
    boot(self)
threading.Thread._bootstrap_inner = named
from agent.cli import main
sys.argv[0] = "edge-agent"
sys.exit(main())
'''


def run_daemon(tmp: Path, video: Path, frames: int, extra: dict[str, Any] | None = None,
               per_thread: bool = False) -> dict[str, Any]:
    port = free_port()
    cfg = daemon_config(tmp, video, port, extra)
    exe = [sys.executable, "-c", NAMED] if per_thread else \
        [str(Path(sys.executable).with_name("edge-agent"))]
    proc = subprocess.Popen([*exe, "run", "-c", str(cfg), "--max-frames", str(frames)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_port(port, timeout=60.0)
        lo, hi = frames // 10, frames - frames // 10
        start = end = None
        while proc.poll() is None:
            n = scrape(port)
            if n is None:
                break
            now = time.perf_counter()
            if start is None and n >= lo:
                start = (n, now, proc_cpu(proc.pid), threads(proc.pid) if per_thread else {})
            elif start is not None and n >= hi:
                end = (n, now, proc_cpu(proc.pid), threads(proc.pid) if per_thread else {})
                break
            time.sleep(0.02)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if start is None or end is None:
        raise SystemExit(f"daemon ended before its steady window (rc {proc.returncode}): "
                         f"{err.decode()[-2000:]}")
    done = end[0] - start[0]
    out: dict[str, Any] = {"fps": done / (end[1] - start[1]),
                           "cpu_ms": (end[2] - start[2]) / done * 1000}
    if per_thread:
        by_name: dict[str, float] = {}
        for tid, (name, cpu) in end[3].items():
            before = start[3].get(tid, (name, 0.0))[1]
            by_name[name] = by_name.get(name, 0.0) + (cpu - before) / done * 1000
        out["threads"] = by_name
    return out


def show_threads(r: dict[str, Any]) -> None:
    for name, ms in sorted(r.get("threads", {}).items(), key=lambda kv: -kv[1]):
        if ms >= 0.005:
            print(f"    {name:<16} {ms:.3f} ms/frame")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--frames", type=int, default=6000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--per-thread", action="store_true", help="daemon CPU per frame by thread")
    ap.add_argument("--one-thread", action="store_true",
                    help="also the daemon with prepare_ahead: false (one inference thread)")
    ap.add_argument("--smoke", action="store_true", help="CI: 600 frames, 1 round")
    args = ap.parse_args()
    if args.smoke:
        args.frames, args.rounds = 600, 1
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        video = tmp / "line.avi"
        write_video(video, args.frames)
        loops, daemons, singles = [], [], []
        for i in range(args.rounds):
            loop = run_loop(video, args.frames)
            dmn = run_daemon(tmp / f"d{i}", video, args.frames, per_thread=args.per_thread)
            loops.append(loop)
            daemons.append(dmn)
            print(f"round {i + 1}: loop {loop['fps']:7.1f} f/s {loop['cpu_ms']:.2f} ms CPU/frame"
                  f" | daemon {dmn['fps']:7.1f} f/s {dmn['cpu_ms']:.2f} ms CPU/frame", flush=True)
            show_threads(dmn)
            if args.one_thread:
                one = run_daemon(tmp / f"o{i}", video, args.frames, {"prepare_ahead": False},
                                 per_thread=args.per_thread)
                singles.append(one)
                print(f"         daemon, prepare_ahead false {one['fps']:7.1f} f/s "
                      f"{one['cpu_ms']:.2f} ms CPU/frame", flush=True)
                show_threads(one)
    lf = statistics.median(r["fps"] for r in loops)
    lc = statistics.median(r["cpu_ms"] for r in loops)
    df = statistics.median(r["fps"] for r in daemons)
    dc = statistics.median(r["cpu_ms"] for r in daemons)
    fps_ratios = [d["fps"] / lp["fps"] for d, lp in zip(daemons, loops, strict=True)]
    cpu_ratios = [d["cpu_ms"] / lp["cpu_ms"] for d, lp in zip(daemons, loops, strict=True)]
    print(f"{args.frames} frames of 320x240 MJPG, bundled defect-cnn, CPU EP 1 intra-op thread;"
          f" medians of {args.rounds} interleaved rounds; load average "
          f"{os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    print(f"baseline, hand-written loop: {lf:7.1f} frames/s  {lc:.2f} ms process CPU per frame")
    print(f"edge-agent run (daemon):     {df:7.1f} frames/s  {dc:.2f} ms process CPU per frame")
    if singles:
        sf = statistics.median(r["fps"] for r in singles)
        sc = statistics.median(r["cpu_ms"] for r in singles)
        print(f"  same, prepare_ahead false: {sf:7.1f} frames/s  {sc:.2f} ms process CPU per "
              f"frame: ratios {sf / lf:.2f} / {sc / lc:.2f}")
    print(f"ratio frames/s {df / lf:.2f} (rounds {min(fps_ratios):.2f}-{max(fps_ratios):.2f}; "
          f"target >= {TARGET_FPS})   ratio CPU per frame {dc / lc:.2f} (rounds "
          f"{min(cpu_ratios):.2f}-{max(cpu_ratios):.2f}; target <= {TARGET_CPU})")


if __name__ == "__main__":
    main()
