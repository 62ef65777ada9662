"""Inference pipeline overhead: one station vs bare session.run on the same session.

    .venv/bin/python bench/bench_inference.py [--model models/defect-cnn] [--frames 600]
        [--rounds 5] [--size 320x240] [--codec MJPG|mp4v|raw] [--threads 1]
        [--mjpeg-decoder libjpeg-turbo|backend]

The script writes a video of synthetic conveyor frames (MJPG .avi by default) into a
temporary directory, loads the model with load_model (CPU, `--threads` intra-op
threads, spinning off: the config defaults) and measures, in interleaved rounds so that
load from other processes hits every variant alike:

- baseline: bare `session.run` on pre-processed inputs, back to back (frames/s, p50/p99)
- decode only: the camera's source read in a loop (Motion-JPEG decoded as the station
  decodes it; what the source alone can give)
- pipeline, threaded (as the daemon runs a station): Camera capture thread decoding the
  file -> LatestFrame -> InferenceWorker (pre -> session.run -> post) -> result handler.
  Frames/s = inspections / wall time; the ratio to the baseline is the figure of merit
  (target >= 0.90). Decoding runs on the capture thread, beside inference.
  With `prepare_ahead` (the station default) the next frame is pre-processed on a second
  thread while the model runs; the row after it is the same station with one worker thread.
- pipeline, sequential: decode -> pre -> session.run -> post in one thread.
- added latency per frame = everything but session.run:
  * in ModelRunner.infer (pre + post + bookkeeping; target p50/p99 <= 2 ms)
  * end to end in the threaded pipeline: result handler time - t_capture - session.run
    (includes decode and the wait in the slot)
- the ceilings on this box: decode + pre/post + session.run per frame spread perfectly
  over its cores, and the process CPU the threaded station really spends per frame.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agent.app import SWITCH_INTERVAL_S  # noqa: E402
from agent.capture.sources.opencv_source import (  # noqa: E402
    OpenCVCameraConfig,
    OpenCVSource,
    build_opencv_source,
)
from agent.capture.synthetic_scene import ConveyorScene  # noqa: E402
from agent.config.models import ModelConfig  # noqa: E402
from agent.inference.runner import ModelRunner  # noqa: E402
from agent.inference.session import load_model  # noqa: E402
from agent.inference.worker import InferenceWorker  # noqa: E402
from agent.runtime.build import build_camera  # noqa: E402
from agent.types import Frame, Inspection  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
TARGET_RATIO = 0.90
TARGET_ADDED_MS = 2.0
mjpeg_decoder = "libjpeg-turbo"  # the camera option every run uses (--mjpeg-decoder)


def write_video(path: Path, frames: int, size: tuple[int, int], codec: str) -> None:
    """`frames` frames cycling through 60 distinct rendered conveyor frames."""
    w, h = size
    scene = ConveyorScene(7, width=w, height=h, frames_per_part=2, defect_rate=0.5,
                          noise_std=4.0)
    distinct = [scene.next_frame().image for _ in range(min(60, frames))]
    fourcc = 0 if codec == "raw" else cv2.VideoWriter.fourcc(*codec)  # raw: uncompressed BGR
    writer = cv2.VideoWriter(str(path), fourcc, 30.0, (w, h))
    if not writer.isOpened():
        raise SystemExit(f"cannot write {codec} video to {path}")
    for i in range(frames):
        writer.write(distinct[i % len(distinct)])
    writer.release()


def camera_config(video: Path) -> OpenCVCameraConfig:
    return OpenCVCameraConfig(type="opencv", source=str(video), mjpeg_decoder=mjpeg_decoder)


def open_source(video: Path) -> OpenCVSource:
    """The daemon's source for the file (Motion-JPEG decoded as the station does)."""
    src = build_opencv_source("bench", camera_config(video), video.parent)
    src.open()
    return src


def decode_all(path: Path, keep: bool = False) -> tuple[list[np.ndarray], float]:
    """Every frame (with `keep`: kept frames take fresh memory, which costs page faults that
    a station, dropping each frame after use, does not pay; the timed runs keep none)."""
    src = open_source(path)
    images = []
    n = 0
    t0 = time.perf_counter()
    while (grab := src.read(time.monotonic)) is not None:
        n += 1
        if keep:
            images.append(grab.image)
    elapsed = time.perf_counter() - t0
    src.close()
    return images, n / elapsed


def bare_fps(runner: ModelRunner, inputs: list[np.ndarray], runs: list[float]) -> float:
    name, session = runner.input_name, runner.session
    t0 = time.perf_counter()
    for x in inputs:
        a = time.perf_counter()
        session.run(None, {name: x})
        runs.append((time.perf_counter() - a) * 1000)
    return len(inputs) / (time.perf_counter() - t0)


@dataclass
class Collected:
    inspections: int = 0
    errors: int = 0
    end_to_end_added: list[float] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, _key: str, ins: Inspection) -> None:
        now = time.monotonic()
        with self.lock:
            self.inspections += 1
            if ins.error is not None:
                self.errors += 1
                return
            self.end_to_end_added.append((now - ins.t_capture) * 1000 - ins.timings.infer_ms)


def threaded_pipeline(runner: ModelRunner, video: Path, out: Collected,
                      ahead: bool = True) -> tuple[float, int, int, float]:
    """(frames/s inspected, frames decoded, frames the slot replaced before inspection,
    process CPU ms per inspected frame)."""
    cam = build_camera("bench", camera_config(video), video.parent)
    slot = cam.subscribe()
    worker = InferenceWorker("bench", runner, slot, 60_000.0, out, prepare_ahead=ahead)
    before = out.inspections
    worker.start()
    t0, cpu0 = time.perf_counter(), time.process_time()
    cam.start()
    try:
        if not worker.join(120):
            raise SystemExit("pipeline did not finish within 120 s")
    finally:
        cam.stop()
        worker.stop()
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    n = max(1, out.inspections - before)
    return n / elapsed, cam.stats().captured, slot.dropped, cpu * 1000 / n


def sequential_pipeline(runner: ModelRunner, video: Path, added: list[float]) -> float:
    src = open_source(video)
    n = 0
    now = datetime.now(UTC)
    t0 = time.perf_counter()
    while (grab := src.read(time.monotonic)) is not None:
        a = time.perf_counter()
        ins = runner.infer(Frame(grab.image, "bench", n, grab.t_grab, now))
        added.append((time.perf_counter() - a) * 1000 - ins.timings.infer_ms)
        n += 1
    elapsed = time.perf_counter() - t0
    src.close()
    return n / elapsed


def pct(samples: list[float]) -> str:
    p50, p99 = np.percentile(samples, [50, 99])
    return f"p50 {p50:7.3f} ms  p99 {p99:7.3f} ms"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(REPO / "models" / "defect-cnn"))
    ap.add_argument("--frames", type=int, default=600)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--size", default="320x240", help="video frame WIDTHxHEIGHT")
    ap.add_argument("--codec", default="MJPG")
    ap.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads")
    ap.add_argument("--mjpeg-decoder", choices=["libjpeg-turbo", "backend"],
                    default="libjpeg-turbo", help="the camera's mjpeg_decoder setting")
    args = ap.parse_args()
    global mjpeg_decoder
    mjpeg_decoder = args.mjpeg_decoder
    w, h = (int(v) for v in args.size.split("x"))
    sys.setswitchinterval(SWITCH_INTERVAL_S)  # as the daemon runs (agent/app.py)

    runner = load_model("bench", ModelConfig(path=str(Path(args.model).resolve()),
                                             intra_op_threads=args.threads), Path("."))
    with tempfile.TemporaryDirectory(prefix="bench-inference-") as tmp:
        video = Path(tmp) / f"line.{'mp4' if args.codec == 'mp4v' else 'avi'}"
        write_video(video, args.frames, (w, h), args.codec)
        images, _ = decode_all(video, keep=True)
        inputs = [runner.pre(img)[0] for img in images]
        bare_runs: list[float] = []
        runner_added: list[float] = []
        collected = Collected()
        rows: dict[str, list[float]] = {k: [] for k in ("bare", "decode", "threaded", "one",
                                                        "seq", "cpu")}
        replaced = decoded = 0
        for _ in range(args.rounds):
            rows["bare"].append(bare_fps(runner, inputs, bare_runs))
            rows["decode"].append(decode_all(video)[1])
            fps, n_dec, n_drop, cpu_ms = threaded_pipeline(runner, video, collected)
            rows["threaded"].append(fps)
            rows["cpu"].append(cpu_ms)
            decoded, replaced = decoded + n_dec, replaced + n_drop
            rows["one"].append(threaded_pipeline(runner, video, Collected(), ahead=False)[0])
            rows["seq"].append(sequential_pipeline(runner, video, runner_added))
        report(args, runner, rows, bare_runs, runner_added, collected, decoded, replaced)
    return 0


def report(args: argparse.Namespace, runner: ModelRunner, rows: dict[str, list[float]],
           bare_runs: list[float], runner_added: list[float], c: Collected,
           decoded: int, replaced: int) -> None:
    med = {k: statistics.median(v) for k, v in rows.items()}
    ratios_thr = [t / b for t, b in zip(rows["threaded"], rows["bare"], strict=True)]
    ratios_seq = [s / b for s, b in zip(rows["seq"], rows["bare"], strict=True)]
    ratios_one = [s / b for s, b in zip(rows["one"], rows["bare"], strict=True)]
    m = runner.manifest
    print(f"model {m.name} {m.version} on {runner.info.provider}, input {list(runner.pre.size)}, "
          f"intra_op_threads={args.threads}, spinning off; video {args.size} {args.codec} "
          f"(mjpeg_decoder {args.mjpeg_decoder}), "
          f"{args.frames} frames x {args.rounds} interleaved rounds (medians)")
    print(f"  baseline bare session.run      {med['bare']:9,.0f} frames/s   {pct(bare_runs)}")
    print(f"  decode only (camera source)    {med['decode']:9,.0f} frames/s")
    print(f"  pipeline, threaded (station)   {med['threaded']:9,.0f} frames/s   ratio "
          f"{statistics.median(ratios_thr):.2f} of bare (target >= {TARGET_RATIO:.2f}); "
          f"{decoded - replaced} of {decoded} decoded frames inspected, {c.errors} errors")
    print(f"  same, prepare_ahead: false     {med['one']:9,.0f} frames/s   ratio "
          f"{statistics.median(ratios_one):.2f} of bare (one worker thread: pre, run, post)")
    print(f"  pipeline, sequential           {med['seq']:9,.0f} frames/s   ratio "
          f"{statistics.median(ratios_seq):.2f} of bare")
    print(f"  added latency in ModelRunner.infer (all but session.run): {pct(runner_added)} "
          f"(target <= {TARGET_ADDED_MS:.0f} ms)")
    print(f"  added latency grab -> result, threaded (decode + slot wait + pre + post): "
          f"{pct(c.end_to_end_added)}")
    bound = min(med["bare"], med["decode"])
    print(f"  the pipeline cannot beat min(bare, decode only) = {bound:,.0f} frames/s: "
          f"ratio to that bound {med['threaded'] / bound:.2f}")
    cores = len(os.sched_getaffinity(0))
    run_ms, added_ms = statistics.median(bare_runs), statistics.median(runner_added)
    work_ms = 1000 / med["decode"] + added_ms + run_ms
    print(f"  perfect overlap: decode {1000 / med['decode']:.3f} + pre/post {added_ms:.3f} + "
          f"session.run {run_ms:.3f} = {work_ms:.3f} ms of work per frame on {cores} cores: "
          f"at most {min(1.0, cores * run_ms / work_ms):.2f} of bare with no other cost")
    cpu_bound = cores * 1000 / med["cpu"]
    print(f"  CPU: the station spends {med['cpu']:.3f} ms of process CPU per frame (session.run "
          f"{statistics.median(bare_runs):.3f}); {cores} cores can give at most "
          f"{cpu_bound:,.0f} frames/s = {cpu_bound / med['bare']:.2f} of bare, reached "
          f"{med['threaded'] / cpu_bound:.2f}")


if __name__ == "__main__":
    sys.exit(main())
