"""Cost of one saved evidence image, in ms of CPU: JPEG encoders compared, then the whole
writer path (mask, full frame + crop + annotated copy, sha256, fsynced atomic writes, sidecar).

At 320x240, 1280x720 and 1920x1080 (synthetic conveyor frames, quality 90):
  - cv2.imencode (OpenCV's bundled libjpeg-turbo) against simplejpeg (libjpeg-turbo
    directly) when it is installed (`pip install simplejpeg`);
  - the agent's writer path as the evidence thread runs it (thread CPU time and wall time).

    .venv/bin/python bench/bench_evidence.py [--n 50]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from agent.capture.synthetic_scene import ConveyorScene  # noqa: E402
from agent.config.evidence import EvidenceConfig  # noqa: E402
from agent.event_ids import EventIds  # noqa: E402
from agent.evidence.retention import Retention  # noqa: E402
from agent.evidence.store import EvidenceStore  # noqa: E402
from agent.evidence.writer import EvidenceJob, EvidenceWriter  # noqa: E402

SIZES = ((320, 240), (1280, 720), (1920, 1080))
QUALITY = 90


def frame(w: int, h: int) -> np.ndarray:
    scene = ConveyorScene(seed=3, width=w, height=h, schedule=["scratch"])
    for _ in range(4):
        img = scene.next_frame().image
    return np.ascontiguousarray(img)


def cpu_ms(fn: Callable[[], object], n: int) -> tuple[float, float]:
    """(median thread-CPU ms, median wall ms) of `fn`."""
    cpu, wall = [], []
    for _ in range(n):
        c, t = time.thread_time(), time.perf_counter()
        fn()
        cpu.append((time.thread_time() - c) * 1000)
        wall.append((time.perf_counter() - t) * 1000)
    return statistics.median(cpu), statistics.median(wall)


def encoders(img: np.ndarray) -> dict[str, Callable[[], object]]:
    out: dict[str, Callable[[], object]] = {
        "cv2.imencode": lambda: cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, QUALITY])}
    try:
        import simplejpeg

        out["simplejpeg"] = lambda: simplejpeg.encode_jpeg(img, QUALITY, colorspace="BGR")
    except ImportError:
        pass
    return out


def writer_path(img: np.ndarray, root: Path) -> Callable[[], object]:
    store = EvidenceStore(root)
    writer = EvidenceWriter(store, Retention(store, 10**12, 1e9, 0), EvidenceConfig(), "")
    h, w = img.shape[:2]
    box = (w * 0.4, h * 0.4, w * 0.6, h * 0.6)
    ids = EventIds()

    def one() -> None:
        job = EvidenceJob(ids(), img, (("scratch", 0.93, box),), {"verdict": "NG"}, ())
        writer._handle(job)  # noqa: SLF001  (the thread's own step, timed on this thread)
        assert writer.stats.failed == 0
    return one


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=50)
    args = ap.parse_args()
    print(f"JPEG quality {QUALITY}; median of {args.n}; ms of CPU (thread time) / wall")
    with tempfile.TemporaryDirectory(dir=REPO) as d:
        for w, h in SIZES:
            img = frame(w, h)
            row = []
            for name, fn in encoders(img).items():
                fn()
                c, t = cpu_ms(fn, args.n)
                row.append(f"{name} {c:6.2f} / {t:6.2f}")
            c, t = cpu_ms(writer_path(img, Path(d) / f"{w}x{h}"), args.n)
            row.append(f"writer path (3 JPEGs, sha256, fsync x3, sidecar) {c:6.2f} / {t:6.2f}")
            print(f"{w}x{h}: " + "   ".join(row))


if __name__ == "__main__":
    main()
