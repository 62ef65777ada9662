"""Capture overhead and consumer frame age.

    .venv/bin/python bench/bench_capture.py [--frames 300] [--runs 5] [--codec MJPG] [--age-seconds 5]

1. Throughput: frames/s the Camera capture thread sustains reading a 1280x720 video
   file (no fps limit, one consumer draining its slot) vs a bare
   `cv2.VideoCapture.read()` loop on the same file: with the same decoder
   (`mjpeg_decoder: backend`) and with the defaults (Motion-JPEG decoded by
   libjpeg-turbo). Runs alternate; medians and the ratio are printed (target >= 0.95).
2. Frame age at 30 fps input (file paced to 30 fps, looping): age = consumer's
   monotonic time when `get()` returns - `t_capture` (taken at grab, before decode).
   p50/p99 for a consumer that keeps up, and for a slow consumer (50 ms per frame)
   next to the same slow consumer fed through a FIFO queue (the baseline a
   newest-frame slot replaces).

The video is generated into a temporary directory by this script.
"""

from __future__ import annotations

import argparse
import os
import queue
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agent.capture.camera import Camera  # noqa: E402
from agent.capture.sources.opencv_source import OpenCVCameraConfig  # noqa: E402
from agent.runtime.build import build_camera  # noqa: E402

W, H = 1280, 720


def write_video(path: Path, frames: int, codec: str) -> None:
    rng = np.random.default_rng(0)
    base = cv2.resize(rng.integers(0, 255, (90, 160, 3), dtype=np.uint8), (W, H))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*codec), 30.0, (W, H))
    if not writer.isOpened():
        raise SystemExit(f"cannot write {codec} video to {path}")
    for i in range(frames):
        img = np.roll(base, 8 * i, axis=1)
        cv2.circle(img, (40 + (9 * i) % (W - 80), H // 2), 40, (0, 0, 255), -1)
        cv2.putText(img, str(i), (20, 80), cv2.FONT_HERSHEY_SIMPLEX, 2.5, (255, 255, 255), 4)
        writer.write(img)
    writer.release()


def bare_read_fps(path: Path) -> tuple[float, int]:
    t0 = time.perf_counter()
    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    n = 0
    while True:
        ok, _ = cap.read()
        if not ok:
            break
        n += 1
    elapsed = time.perf_counter() - t0
    cap.release()
    return n / elapsed, n


def _camera(path: Path, **kw: object) -> Camera:
    cfg = OpenCVCameraConfig.model_validate({"type": "opencv", "source": str(path), **kw})
    return build_camera("bench", cfg, path.parent)


def camera_fps(path: Path, **kw: object) -> tuple[float, int]:
    """Start to end of source, a consumer draining the slot (an unpaced recording is read
    at its consumer's pace)."""
    cam = _camera(path, **kw)
    slot = cam.subscribe()
    t0 = time.perf_counter()
    cam.start()
    while slot.get(timeout=30) is not None:
        pass
    elapsed = time.perf_counter() - t0
    cam.stop()
    return cam.stats().captured / elapsed, cam.stats().captured


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def slot_ages(path: Path, seconds: float, work_s: float) -> tuple[list[float], int]:
    cam = _camera(path, fps=30, loop=True)
    slot = cam.subscribe()
    ages: list[float] = []
    cam.start()
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        f = slot.get(timeout=5)
        if f is None:
            break
        ages.append(time.monotonic() - f.t_capture)
        time.sleep(work_s)
    cam.stop()
    return ages, slot.dropped


def queue_ages(path: Path, seconds: float, work_s: float) -> tuple[list[float], int]:
    """Baseline: the same paced reader feeding an unbounded FIFO queue."""
    q: queue.Queue[float] = queue.Queue()
    stop = threading.Event()

    def reader() -> None:
        cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
        nxt = time.monotonic()
        while not stop.is_set():
            stop.wait(max(0.0, nxt - time.monotonic()))
            nxt += 1 / 30
            if not cap.grab():
                cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
                continue
            t = time.monotonic()
            cap.retrieve()
            q.put(t)
        cap.release()

    th = threading.Thread(target=reader)
    th.start()
    ages: list[float] = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        t = q.get(timeout=5)
        ages.append(time.monotonic() - t)
        time.sleep(work_s)
    stop.set()
    th.join()
    return ages, q.qsize()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--codec", default="MJPG", help="FourCC: MJPG (.avi) or mp4v (.mp4)")
    ap.add_argument("--age-seconds", type=float, default=5.0)
    args = ap.parse_args()
    ext = "mp4" if args.codec.lower() == "mp4v" else "avi"
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"bench_1280x720.{ext}"
        write_video(path, args.frames, args.codec)
        load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
        print(f"video: {path.name} {W}x{H} {args.codec}, {args.frames} frames; "
              f"cv2 {cv2.__version__}; {os.cpu_count()} CPUs, load average {load}")
        throughput(path, args.runs)
        ages(path, args.age_seconds)
    return 0


def throughput(path: Path, runs: int) -> None:
    bare_fps, same_fps, cam_fps = [], [], []
    bare_read_fps(path)  # warm the page cache and the decoder libraries
    n = 0
    for _ in range(runs):
        bare_fps.append(bare_read_fps(path)[0])
        same_fps.append(camera_fps(path, mjpeg_decoder="backend")[0])
        fps, n = camera_fps(path)
        cam_fps.append(fps)
    b = statistics.median(bare_fps)
    print(f"\n[throughput] frames/s, median of {runs} alternating runs (min..max), {n} frames/run")
    for label, values in (
        ("bare cv2.VideoCapture.read() loop", bare_fps),
        ("Camera, same decoder (mjpeg_decoder: backend)", same_fps),
        ("Camera, defaults (MJPG: libjpeg-turbo)", cam_fps),
    ):
        m = statistics.median(values)
        print(f"  {label:<46}{m:8.1f}  ({min(values):.1f}..{max(values):.1f})  "
              f"ratio {m / b:.3f}")
    print("  target: ratio camera/bare >= 0.95")


def ages(path: Path, seconds: float) -> None:
    print(f"\n[frame age] 30 fps input, {seconds:.0f} s each, age = get() return - t_capture (ms)")
    print(f"  {'consumer':<36}{'n':>6}{'p50':>9}{'p99':>9}{'max':>9}  dropped/backlog")
    for label, fn, work in (
        ("slot, consumer keeps up", slot_ages, 0.0),
        ("slot, slow consumer 50 ms/frame", slot_ages, 0.05),
        ("FIFO queue (baseline), 50 ms/frame", queue_ages, 0.05),
    ):
        values, lost = fn(path, seconds, work)
        ms = [v * 1000 for v in values]
        print(f"  {label:<36}{len(ms):>6}{_pct(ms, 50):>9.1f}{_pct(ms, 99):>9.1f}"
              f"{max(ms):>9.1f}  {lost}")
    print(f"  (frame period at 30 fps: {1000 / 30:.1f} ms)")


if __name__ == "__main__":
    raise SystemExit(main())
