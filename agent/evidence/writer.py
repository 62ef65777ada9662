"""The evidence writer: one thread, a bounded queue, never in the way of a verdict.

`submit()` is called on the event loop after the commands were handed to their
dispatchers; it never blocks: a full queue drops the evidence (counted in
`stats.dropped`), never the verdict or its records. The thread renders the JPEGs
(images.py), makes room (retention.py), writes them (store.py) and calls the job's
`done(job, ref, error)` on the writer thread: `ref` is the `evidence` object records
carry, or None with the reason when nothing was stored (disk full, encoding failed).
The frame's pixels are taken by reference: capture allocates a new array per frame
and nothing writes into one after it was published (agent/capture/camera.py).
"""

from __future__ import annotations

import hashlib
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from agent.config.evidence import EvidenceConfig
from agent.evidence import layout
from agent.evidence.images import Box, render
from agent.evidence.retention import Retention
from agent.evidence.store import EvidenceStore

log = logging.getLogger(__name__)
IDLE_ENFORCE_S = 60.0
NICE = 10  # the writer thread yields the CPU to the event loop (stop path) and inference


class DiskFull(Exception):
    pass


@dataclass
class EvidenceJob:
    eid: str
    pixels: np.ndarray
    findings: tuple[tuple[str, float, Box | None], ...]
    meta: dict[str, Any]  # sidecar fields known on the loop (verdict, model, times, ...)
    waits: tuple[str, ...] = ()  # sinks that will deliver the images
    done: Callable[[EvidenceJob, dict[str, Any] | None, str | None], None] | None = None
    queued: float = field(default_factory=time.monotonic)


@dataclass
class WriterStats:
    queued: int = 0  # frames taken by the writer's queue
    written: int = 0  # evidence items stored (images and sidecar complete on disk)
    dropped: int = 0  # queue full: evidence not taken (the verdict and records go on)
    failed: int = 0  # not stored: disk full, write or encoding error
    bytes_written: int = 0  # bytes of images and sidecars stored
    cpu_s: float = 0.0  # writer-thread CPU spent encoding and writing, since start
    disk_full: bool = False  # the last item could not be stored for lack of space
    queue_depth: int = 0  # frames waiting for the writer now


class EvidenceWriter:
    def __init__(self, store: EvidenceStore, retention: Retention, cfg: EvidenceConfig,
                 url_base: str) -> None:
        self.store = store
        self.retention = retention
        self.cfg = cfg
        self.url_base = url_base.rstrip("/")
        self.stats = WriterStats()
        self._q: queue.Queue[EvidenceJob | None] = queue.Queue(maxsize=cfg.queue_size)
        self._thread = threading.Thread(target=self._run, name="evidence-writer", daemon=True)

    def start(self) -> None:
        self.store.root.mkdir(parents=True, exist_ok=True)
        self.store.sweep()
        self.retention.load()
        self.retention.enforce()
        self._thread.start()

    def submit(self, job: EvidenceJob) -> bool:
        """Never blocks; False (and counted) when the queue is full, or when the writer
        thread is not running (the store could not start): the caller then sends the
        decision's records on at once instead of holding them for an image never written."""
        if not self._thread.is_alive():
            self.stats.dropped += 1
            return False
        try:
            self._q.put_nowait(job)
        except queue.Full:
            self.stats.dropped += 1
            return False
        self.stats.queued += 1
        return True

    def depth(self) -> int:
        return self._q.qsize()

    def snapshot(self) -> WriterStats:
        return replace(self.stats, queue_depth=self.depth())

    def stop(self, timeout: float = 5.0) -> None:
        """Write what is queued (within `timeout`), then end the thread."""
        if not self._thread.is_alive():
            return
        try:
            self._q.put(None, timeout=timeout)
        except queue.Full:
            log.error("evidence writer: queue still full after %.1f s; stopping anyway", timeout)
        self._thread.join(timeout)

    # ------------------------------------------------------------------ thread
    def _run(self) -> None:
        _lower_priority()
        while True:
            try:
                job = self._q.get(timeout=IDLE_ENFORCE_S)
            except queue.Empty:
                self._enforce()
                continue
            if job is None:
                return
            self._handle(job)

    def _enforce(self) -> None:
        try:
            self.retention.enforce()
        except Exception:  # never end the thread
            log.exception("evidence retention failed")

    def _handle(self, job: EvidenceJob) -> None:
        t0 = time.thread_time()
        ref: dict[str, Any] | None = None
        error: str | None = None
        try:
            ref = self._write(job)
            self.stats.written += 1
            self.stats.disk_full = False
        except (OSError, DiskFull) as exc:
            self.stats.failed += 1
            self.stats.disk_full = True
            error = f"evidence store {self.store.root}: {getattr(exc, 'strerror', None) or exc}"
        except Exception as exc:
            self.stats.failed += 1
            error = f"evidence {job.eid}: {type(exc).__name__}: {exc}"
            log.exception("evidence %s not stored", job.eid)
        self.stats.cpu_s += time.thread_time() - t0
        if job.done is not None:
            try:
                job.done(job, ref, error)
            except Exception:
                log.exception("evidence %s: completion callback failed", job.eid)

    def _write(self, job: EvidenceJob) -> dict[str, Any]:
        images, crop_of = render(job.pixels, job.findings, self.cfg.jpeg_quality,
                                 crops=self.cfg.crops, annotate=self.cfg.annotated,
                                 mask=self.cfg.mask)
        size = sum(len(b) for b in images.values())
        if not self.retention.room_for(size + 4096):
            free = self.retention.stats.free_bytes
            raise DiskFull(f"{free} bytes free, min_free_bytes {self.retention.min_free_bytes}")
        main = images[""]
        h, w = job.pixels.shape[:2]
        ref = {"id": job.eid, "sha256": hashlib.sha256(main).hexdigest(), "bytes": len(main),
               "width": int(w), "height": int(h), "path": layout.rel_image(job.eid),
               "url": f"{self.url_base}/evidence/{job.eid}.jpg" if self.url_base else "",
               "files": [layout.rel_image(job.eid, v) for v in images if v]}
        sidecar = {**job.meta, "evidence": ref, "masked": bool(self.cfg.mask),
                   "findings": [
                       {"label": label, "score": score, "box": list(box) if box else None,
                        "crop": None if c is None else layout.rel_image(job.eid, f".crop{c}")}
                       for (label, score, box), c in zip(job.findings, crop_of, strict=True)]}
        written = self.store.write(job.eid, images, sidecar, job.waits)
        self.retention.add(job.eid, written, job.waits)
        self.stats.bytes_written += written
        return ref


def _lower_priority() -> None:
    """Linux: nice this thread only (a thread id is a process id to setpriority), so that
    encoding on a busy box never takes a core from the event loop that sends the stops."""
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + NICE))
    except (AttributeError, OSError):
        pass
