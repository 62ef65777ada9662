"""The daemon beside the loop a user would write instead (issue 20), interleaved rounds.

On one 320x240 Motion-JPEG file of a textured, moving conveyor scene:

- baseline: a hand-written one-thread loop in its own process: `cv2.VideoCapture.read`
  -> resize/normalise -> `session.run` (onnxruntime CPU, 1 intra-op thread, the bundled
  model) -> softmax;
- the daemon as a real process: `edge-agent run --max-frames N` on an `opencv` file
  camera, one station with its rules, drift and metrics at their defaults, a file sink.
  Frames/s from its own `/metrics` (inspections counter), process CPU from
  /proc/<pid>/stat (utime + stime), both over the same steady window (after the first
  10% of the frames, before the last 20%): start-up (imports, model load) is not counted
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
lo, hi = frames // 10, frames - frames // 5
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


# --breakdown: the daemon's event-loop work per frame, by part (thread CPU time around
# each call; a call's wrapper costs ~1 us), printed at exit as JSON on stderr
ACCOUNTED = r'''
import atexit, collections, json, sys, time
import agent.app as app, agent.decision.engine as eng, agent.health.metrics as met
import agent.health.drift as dr, agent.pipeline.flow as pl, agent.pipeline.station as st
import asyncio.base_events as be
acc = collections.Counter()
def wrap(cls, name, label):
    f = getattr(cls, name)
    def w(*a, **k):
        c = time.thread_time()
        try:
            return f(*a, **k)
        finally:
            acc[label] += time.thread_time() - c
            acc[label + "#"] += 1
    setattr(cls, name, w)
wrap(be.BaseEventLoop, "_run_once", "loop")
wrap(app.Agent, "_on_inspection", "inspection")
wrap(eng.DecisionEngine, "on_inspection", "decision")
wrap(pl.StationPipeline, "apply", "apply")
wrap(met.Metrics, "observe_inspection", "metrics")
wrap(dr.DriftMonitor, "observe", "drift")
atexit.register(lambda: print("ACCOUNTED " + json.dumps(acc), file=sys.stderr))
''' + NAMED


def run_daemon(tmp: Path, video: Path, frames: int, extra: dict[str, Any] | None = None,
               per_thread: bool = False, breakdown: bool = False,
               code: Path | None = None) -> dict[str, Any]:
    port = free_port()
    cfg = daemon_config(tmp, video, port, extra)
    exe = [sys.executable, "-c", ACCOUNTED if breakdown else NAMED] if per_thread else \
        [str(Path(sys.executable).with_name("edge-agent"))]
    env = None
    if code is not None:  # another checkout of the daemon (before/after), same venv
        env = {**os.environ, "PYTHONPATH": str(code)}
        exe = [sys.executable, "-c", NAMED]
    proc = subprocess.Popen([*exe, "run", "-c", str(cfg), "--max-frames", str(frames)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    try:
        wait_port(port, timeout=60.0)
        lo, hi = frames // 10, frames - frames // 5
        start = end = last = None
        while proc.poll() is None:
            n = scrape(port)
            if n is None:  # not serving yet, or a scrape that timed out: try again
                time.sleep(0.05)
                continue
            try:
                sample = (n, time.perf_counter(), proc_cpu(proc.pid),
                          threads(proc.pid) if per_thread else {})
            except OSError:  # it just ended
                break
            if start is None and n >= lo:
                start = sample
            elif start is not None:
                last = sample
                if n >= hi:
                    end = sample
                    break
            time.sleep(0.02)
        _, err = proc.communicate(timeout=120)
        if end is None and start is not None and last is not None \
                and last[0] - start[0] >= frames // 5:
            end = last  # a slow scrape missed `hi`: the window closes at the last one
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
    for line in err.decode().splitlines():
        if line.startswith("ACCOUNTED "):
            acc = json.loads(line.split(" ", 1)[1])
            n = acc["inspection#"]
            out["loop_parts"] = {k: v / n * 1000 for k, v in acc.items() if "#" not in k}
    return out


def work_per_frame(video: Path, n: int = 1500) -> dict[str, float]:
    """The work itself, one thread, thread CPU ms per frame: the camera source's decode
    (libjpeg-turbo), the freeze check, pre, session.run, post (the daemon's own objects)."""
    from agent.capture.freeze import FreezeDetector
    from agent.capture.sources.opencv_source import OpenCVCameraConfig, build_opencv_source
    from agent.config.models import ModelConfig
    from agent.inference.session import load_model
    from agent.types import Frame, utc_now

    src = build_opencv_source("b", OpenCVCameraConfig(type="opencv", source=str(video)),
                              video.parent)
    src.open()
    c0, grabs = time.thread_time(), []
    while len(grabs) < n and (g := src.read(time.monotonic)) is not None:
        grabs.append(g)
    decode = (time.thread_time() - c0) / len(grabs)
    src.close()
    images = [g.image for g in grabs]
    freeze = FreezeDetector()
    c0 = time.thread_time()
    for i, im in enumerate(images):
        freeze.update(im, float(i))
    fz = (time.thread_time() - c0) / len(images)
    r = load_model("m", ModelConfig(path=str(REPO / "models" / "defect-cnn")), REPO)
    frames = [Frame(im, "cam", i, time.monotonic(), utc_now()) for i, im in enumerate(images)]
    c0 = time.thread_time()
    prepared = [r.prepare(f) for f in frames]
    pre = (time.thread_time() - c0) / len(frames)
    c0 = time.thread_time()
    outs = [r.session.run(None, {r.input_name: p.x}) for p in prepared]
    run = (time.thread_time() - c0) / len(frames)
    c0 = time.thread_time()
    for o, p in zip(outs, prepared, strict=True):
        r.decoder(o, p.geom)
    post = (time.thread_time() - c0) / len(frames)
    c0 = time.thread_time()
    for p in prepared:
        r.finish(p)
    finish = (time.thread_time() - c0) / len(frames) - run - post
    return {k: v * 1000 for k, v in (("decode", decode), ("freeze", fz), ("pre", pre),
                                     ("run", run), ("post", post), ("inspection", finish))}


def breakdown(tmp: Path, video: Path, frames: int, rounds: int) -> None:
    """The README's per-frame CPU table: medians over `rounds` daemon runs and work runs."""
    runs = [run_daemon(tmp / f"b{i}", video, frames, per_thread=True, breakdown=True)
            for i in range(rounds)]
    works = [work_per_frame(video) for _ in range(rounds)]

    def med(get: Any) -> float:
        return statistics.median(get(r) for r in runs)

    def wmed(key: str) -> float:
        return statistics.median(w[key] for w in works)

    th = {name: med(lambda r, n=name: r["threads"].get(n, 0.0))
          for name in runs[0]["threads"]}
    lp = {k: med(lambda r, k=k: r["loop_parts"][k]) for k in runs[0]["loop_parts"]}
    total = med(lambda r: r["cpu_ms"])
    cap = th.get("capture-cam", 0.0)
    prep = th.get("prepare-l1/s1", 0.0)
    inf = th.get("infer-l1/s1", 0.0)
    loop = th.get("event-loop", 0.0)
    rows = [
        ("decode (libjpeg-turbo), capture thread", wmed("decode")),
        ("freeze check, capture thread", wmed("freeze")),
        ("pre-processing, prepare thread", wmed("pre")),
        ("session.run, inference thread", wmed("run")),
        ("post-processing, inference thread", wmed("post")),
        ("Inspection, timings, runner counters, inference thread", wmed("inspection")),
        ("hand-offs: capture -> slot -> prepare thread -> buffer -> inference thread -> "
         "event loop (each thread's CPU less its work above)",
         max(0.0, cap - wmed("decode") - wmed("freeze")) + max(0.0, prep - wmed("pre"))
         + max(0.0, inf - wmed("run") - wmed("post") - wmed("inspection"))
         + max(0.0, loop - lp["inspection"])),
        ("decision (rules, k-of-n, incidents, verdict)", lp["decision"]),
        ("records, commands, verdict metrics and counters (apply)", lp["apply"]),
        ("stage metrics (observe_inspection)", lp["metrics"]),
        ("drift (image features, PSI of 5 features)", lp["drift"]),
        ("station monitor and the rest of the inspection callback",
         max(0.0, lp["inspection"] - lp["decision"] - lp["apply"] - lp["metrics"]
             - lp["drift"])),
        ("outbox writer thread (durable records), file sink",
         th.get("outbox-writer", 0.0) + th.get("asyncio_0", 0.0)),
    ]
    print(f"per-frame CPU, default configuration (drift and metrics on), medians of {rounds}"
          f" runs; load average {os.getloadavg()[0]:.2f}:")
    print("| part | ms per frame |\n|---|---|")
    for name, ms in rows:
        print(f"| {name} | {ms:.3f} |")
    print(f"| **process total** (/proc utime+stime; the rows add up to "
          f"{sum(ms for _, ms in rows):.3f}) | **{total:.3f}** |")


def show_threads(r: dict[str, Any]) -> None:
    for name, ms in sorted(r.get("threads", {}).items(), key=lambda kv: -kv[1]):
        if ms >= 0.005:
            print(f"    {name:<16} {ms:.3f} ms/frame")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--frames", type=int, default=6000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--per-thread", action="store_true", help="daemon CPU per frame by thread")
    ap.add_argument("--before", type=Path,
                    help="also the daemon from another checkout (e.g. a git worktree of the "
                         "commit before a change), in the same rounds")
    ap.add_argument("--one-thread", action="store_true",
                    help="also the daemon with prepare_ahead: false (one inference thread)")
    ap.add_argument("--breakdown", action="store_true",
                    help="only the per-frame CPU table of the daemon (README)")
    ap.add_argument("--smoke", action="store_true", help="CI: 1500 frames, 1 round")
    args = ap.parse_args()
    if args.smoke:
        args.frames, args.rounds = 1500, 1
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        video = tmp / "line.avi"
        write_video(video, args.frames)
        if args.breakdown:
            breakdown(tmp, video, args.frames, args.rounds)
            return
        loops, daemons, singles, befores = [], [], [], []
        for i in range(args.rounds):
            loop = run_loop(video, args.frames)
            dmn = run_daemon(tmp / f"d{i}", video, args.frames, per_thread=args.per_thread)
            loops.append(loop)
            daemons.append(dmn)
            print(f"round {i + 1}: loop {loop['fps']:7.1f} f/s {loop['cpu_ms']:.2f} ms CPU/frame"
                  f" | daemon {dmn['fps']:7.1f} f/s {dmn['cpu_ms']:.2f} ms CPU/frame", flush=True)
            show_threads(dmn)
            if args.before:
                old = run_daemon(tmp / f"p{i}", video, args.frames, code=args.before)
                befores.append(old)
                print(f"         daemon from {args.before}: {old['fps']:7.1f} f/s "
                      f"{old['cpu_ms']:.2f} ms CPU/frame", flush=True)
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
    if befores:
        bf = statistics.median(r["fps"] for r in befores)
        bc = statistics.median(r["cpu_ms"] for r in befores)
        print(f"  daemon from {args.before}: {bf:7.1f} frames/s  {bc:.2f} ms process CPU per "
              f"frame: ratios {bf / lf:.2f} / {bc / lc:.2f}")
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
