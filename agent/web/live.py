"""Live images for the console: JPEG snapshots per station, encoded on their own thread.

While a viewer has asked for a snapshot within `IDLE_S`, the encoder thread wakes
`fps` times a second, takes the newest tapped inspection of each station, draws it
(`draw.py`) and encodes it to JPEG; the HTTP handler (on the event loop) only hands out
the last bytes. With no viewer the thread sleeps and the tap holds nothing: nothing
is copied or encoded, and the inference thread and the event loop never encode.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import cv2

from agent.types import Verdict
from agent.web.draw import annotate, banner
from agent.web.tap import FrameTap, Tapped

IDLE_S = 2.0  # a viewer counts this long after its last snapshot request
MAX_VIEWERS = 256
Rois = list[tuple[float, float, float, float]]
_VIEWER = re.compile(r"^[A-Za-z0-9_-]{1,32}$")


@dataclass(frozen=True, slots=True)
class Snapshot:
    jpeg: bytes
    seq: int
    banner: str
    encoded: float  # monotonic
    wall: str  # capture time (UTC, ISO)


@dataclass(frozen=True, slots=True)
class ConsoleStats:
    viewers: int  # distinct viewers that asked for a live image in the last IDLE_S
    frames_encoded: int  # live frames drawn and encoded, every station
    encode_cpu_s: float  # CPU time of the encoder thread spent on them


class Viewers:
    """Distinct viewers seen in the last IDLE_S (bounded)."""

    def __init__(self) -> None:
        self._seen: dict[str, float] = {}
        self._lock = threading.Lock()

    def seen(self, viewer: str, now: float) -> None:
        with self._lock:
            self._seen.pop(viewer, None)
            self._seen[viewer] = now
            while len(self._seen) > MAX_VIEWERS:
                self._seen.pop(next(iter(self._seen)))

    def count(self, now: float) -> int:
        with self._lock:
            for k in [k for k, t in self._seen.items() if now - t > IDLE_S]:
                del self._seen[k]
            return len(self._seen)


def viewer_id(query: str, fallback: str) -> str:
    """The page's random viewer id (`?viewer=`), else the client address."""
    for part in query.split("&"):
        name, _, value = part.partition("=")
        if name == "viewer" and _VIEWER.match(value):
            return value
    return fallback


class LiveEncoder:
    def __init__(self, tap: FrameTap, fps: float, quality: int,
                 station_info: Callable[[str], tuple[dict[str, float], Rois]],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.tap, self.fps, self.quality = tap, fps, quality
        self._info = station_info  # key -> ({rule class: min_score}, ROIs)
        self._clock = clock
        self.viewers = Viewers()
        self.encoded: dict[str, int] = {}  # frames encoded per station
        self.encode_s = 0.0  # CPU time spent drawing + encoding (thread time)
        self._snap: dict[str, Snapshot] = {}
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="console-live", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def request(self, key: str, viewer: str) -> Snapshot | None:
        """A viewer asks for `key`'s image (event loop): count it, wake the thread."""
        self.viewers.seen(viewer, self._clock())
        if not self.tap.watching:
            self.tap.watching = True
            self._wake.set()
        return self._snap.get(key)

    def stats(self) -> ConsoleStats:
        return ConsoleStats(self.viewers.count(self._clock()), sum(self.encoded.values()),
                            self.encode_s)

    def snapshot(self, key: str) -> Snapshot | None:
        return self._snap.get(key)

    def _run(self) -> None:
        period = 1.0 / self.fps
        while not self._stop.is_set():
            if self.viewers.count(self._clock()) == 0:
                self.tap.stop_watching()
                self._snap = {}
                self._wake.wait(1.0)
                self._wake.clear()
                continue
            t0 = self._clock()
            for key, tapped in self.tap.latest().items():
                self._encode(key, tapped)
            self._stop.wait(max(0.0, period - (self._clock() - t0)))

    def _encode(self, key: str, tapped: Tapped) -> None:
        insp = tapped.inspection
        old = self._snap.get(key)
        if old is not None and old.seq == insp.frame_seq or insp.frame is None:
            return
        c0 = time.thread_time()
        thresholds, rois = self._info(key)
        img = annotate(insp.frame.pixels, insp.findings, thresholds, rois)
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, self.quality])
        self.encode_s += time.thread_time() - c0
        if not ok:
            return
        v: Verdict | None = tapped.verdict
        if v is not None and v.frame_seq != insp.frame_seq:
            v = v if v.frame_seq > insp.frame_seq else None
        self._snap = {**self._snap, key: Snapshot(buf.tobytes(), insp.frame_seq, banner(v),
                                                  self._clock(), insp.wall_time.isoformat())}
        self.encoded[key] = self.encoded.get(key, 0) + 1
