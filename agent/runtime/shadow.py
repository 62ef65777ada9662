"""Shadow mode: a candidate model runs on the production frames, never acts, is compared.

One thread per station with a `shadow` model, at a lower CPU priority (nice +10 for that
thread). After the production inspection has been handed to the decision engine, the
loop offers the frame through a one-place buffer: never waits. The shadow thread runs
the candidate only while the production worker was busy less than `max_busy` of the last
10 s (CPU to spare); every frame it does not run on is counted as skipped (buffer full,
production busy, or shadow still on the previous frame). Its verdicts go nowhere: no
command, no record. Each frame's verdict (classes passing the station's rules, see
`frame_classes`) is compared with production's: agreement, flips OK->NG and NG->OK per
class, its own latency and CPU per frame. Disagreements are saved as evidence (the
evidence store, agent/evidence: the frame, and a sidecar with `role: shadow`, both
models' outputs under `production` and `shadow`) when the store is on; without it under
`state_dir/shadow/<line>_<station>/` as JSON with both outputs plus the frame as PNG.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agent.config.lifecycle import ShadowConfig
from agent.config.station import DefectRule
from agent.evidence.writer import EvidenceJob, EvidenceWriter
from agent.inference.runner import ModelRunner
from agent.inference.stats import LatencyWindow
from agent.inference.swap import lower_thread_priority
from agent.runtime.model_guard import frame_classes
from agent.types import Inspection, new_event_id

log = logging.getLogger(__name__)

BUSY_REFRESH_S = 0.5


def findings_json(insp: Inspection, classes: frozenset[str]) -> dict[str, Any]:
    return {"model": {"name": insp.model.name, "version": insp.model.version,
                      "sha256": insp.model.sha256}, "verdict": "NG" if classes else "OK",
            "classes": sorted(classes), "error": insp.error,
            "findings": [{"label": f.label, "score": round(f.score, 4), "box": f.box}
                         for f in insp.findings],
            "infer_ms": round(insp.timings.infer_ms, 3)}


class ShadowStats:
    """Counters of one shadow runner (thread-safe snapshot via `snapshot`)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.offered = self.compared = self.agree = self.errors = 0
        self.skipped: Counter[str] = Counter()
        self.ng = 0
        self.ok_to_ng: Counter[str] = Counter()
        self.ng_to_ok: Counter[str] = Counter()
        self.saved = 0
        self.cpu_ms = 0.0
        self.latency = LatencyWindow()

    def snapshot(self) -> dict[str, Any]:
        p50, p99 = self.latency.percentiles(50, 99)
        with self.lock:
            good = self.compared - self.errors
            return {
                "offered": self.offered, "compared": self.compared,
                "skipped": dict(self.skipped), "skipped_total": sum(self.skipped.values()),
                "agree": self.agree, "agreement": self.agree / good if good else None,
                "errors": self.errors, "ng_rate": self.ng / good if good else None,
                "flips_ok_to_ng": dict(self.ok_to_ng), "flips_ng_to_ok": dict(self.ng_to_ok),
                "disagreements_saved": self.saved,
                "cpu_ms_per_frame": self.cpu_ms / self.compared if self.compared else None,
                "p50_ms": p50, "p99_ms": p99}


class ShadowRunner:
    def __init__(self, key: str, runner: ModelRunner, rules: Callable[[], list[DefectRule]],
                 busy: Callable[[], float], cfg: ShadowConfig, evidence_dir: Path,
                 evidence: EvidenceWriter | None = None,
                 static: dict[str, Any] | None = None) -> None:
        self.key = key
        self.evidence = evidence  # the evidence store's writer, when it is on
        self.static = static or {}  # site, agent_id for the evidence sidecar
        self.runner = runner
        self.rules = rules
        self.busy = busy
        self.cfg = cfg
        self.dir = evidence_dir
        self.stats = ShadowStats()
        self._buf: queue.Queue[Inspection] = queue.Queue(maxsize=1)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._busy_cached = (0.0, -BUSY_REFRESH_S)

    @property
    def sha256(self) -> str:
        return self.runner.info.sha256

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"shadow-{self.key}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        """Ends after the frame in progress (waits up to `timeout` for it; 0 on the loop)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def offer(self, production: Inspection) -> None:
        """On the loop, after the production verdict was acted on: never blocks."""
        if production.frame is None or production.error is not None:
            return
        with self.stats.lock:
            self.stats.offered += 1
        try:
            self._buf.put_nowait(production)
        except queue.Full:
            self._skip("shadow_busy")

    def _skip(self, why: str) -> None:
        with self.stats.lock:
            self.stats.skipped[why] += 1

    def _production_busy(self) -> float:
        value, at = self._busy_cached
        now = time.monotonic()
        if now - at >= BUSY_REFRESH_S:
            value = self.busy()
            self._busy_cached = (value, now)
        return value

    def _run(self) -> None:
        lower_thread_priority()
        while not self._stop.is_set():
            try:
                prod = self._buf.get(timeout=0.1)
            except queue.Empty:
                continue
            if self._production_busy() > self.cfg.max_busy:
                self._skip("production_busy")
                continue
            try:
                self._compare(prod)
            except Exception:  # a bug here must never touch production
                log.exception("station %s: shadow comparison failed", self.key)

    def _compare(self, prod: Inspection) -> None:
        assert prod.frame is not None
        c0 = time.thread_time()
        shadow = self.runner.infer(prod.frame)
        cpu_ms = (time.thread_time() - c0) * 1000.0
        rules = self.rules()
        p, s = frame_classes(prod, rules), frame_classes(shadow, rules)
        st = self.stats
        with st.lock:
            st.compared += 1
            st.cpu_ms += cpu_ms
            if shadow.error is not None:
                st.errors += 1
                return
            st.ng += bool(s)
            agree = p == s
            st.agree += agree
            if p and not s:
                st.ng_to_ok.update(p)
            elif s and not p:
                st.ok_to_ng.update(s)
        st.latency.add(shadow.timings.pre_ms + shadow.timings.infer_ms + shadow.timings.post_ms)
        if not agree and self.evidence is not None:
            self._to_evidence(prod, shadow, p, s)
        elif not agree and self.cfg.save_disagreements:
            self._save(prod, shadow, p, s)

    def _to_evidence(self, prod: Inspection, shadow: Inspection, p: frozenset[str],
                     s: frozenset[str]) -> None:
        assert prod.frame is not None and self.evidence is not None
        line, station = self.key.split("/", 1)
        top = max((f for f in prod.findings if f.label in p), key=lambda f: f.score,
                  default=None)
        meta = {**self.static, "line": line, "station": station, "camera": prod.camera_id,
                "role": "shadow", "reasons": ["shadow_disagreement"], "part_id": prod.part_id,
                "truth": prod.truth, "frame_seq": prod.frame_seq,
                "verdict": "NG" if p else "OK", "defect_class": top.label if top else None,
                "defect_code": 0, "model": findings_json(prod, p)["model"],
                "capture_time": prod.wall_time.isoformat(),
                "production": findings_json(prod, p), "shadow": findings_json(shadow, s)}
        findings = tuple((f.label, float(f.score), f.box) for f in prod.findings)
        job = EvidenceJob(new_event_id(), prod.frame.pixels, findings, meta, (), self._stored)
        if not self.evidence.submit(job):
            with self.stats.lock:
                self.stats.skipped["evidence_queue_full"] += 1

    def _stored(self, _job: EvidenceJob, ref: dict[str, Any] | None, _err: str | None) -> None:
        """The evidence writer's thread: count what is on disk."""
        if ref is not None:
            with self.stats.lock:
                self.stats.saved += 1

    def _save(self, prod: Inspection, shadow: Inspection, p: frozenset[str],
              s: frozenset[str]) -> None:
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            stem = f"{prod.wall_time.strftime('%Y%m%dT%H%M%S%f')}-{prod.camera_id}-{prod.frame_seq}"
            doc = {"station": self.key, "camera": prod.camera_id, "frame_seq": prod.frame_seq,
                   "time": prod.wall_time.isoformat(), "part_id": prod.part_id,
                   "truth": prod.truth, "image": f"{stem}.png",
                   "production": findings_json(prod, p), "shadow": findings_json(shadow, s)}
            _write_png(self.dir / f"{stem}.png", prod)
            (self.dir / f"{stem}.json").write_text(json.dumps(doc, indent=1))
            with self.stats.lock:
                self.stats.saved += 1
            self._prune()
        except OSError as exc:
            log.warning("station %s: shadow disagreement not saved: %s", self.key, exc)

    def _prune(self) -> None:
        files = sorted(self.dir.glob("*.json"))
        for old in files[:max(0, len(files) - self.cfg.save_disagreements)]:
            old.unlink(missing_ok=True)
            old.with_suffix(".png").unlink(missing_ok=True)


def _write_png(path: Path, insp: Inspection) -> None:
    import cv2

    assert insp.frame is not None
    if not cv2.imwrite(str(path), insp.frame.pixels):
        raise OSError(f"cannot write {path}")
