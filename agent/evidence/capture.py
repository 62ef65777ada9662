"""When a frame becomes evidence, and how records come to point to it (runs on the loop).

`on_decision()` is the hook where verdicts are acted on: the agent calls it with a
decision's records after the decision's commands were handed to their dispatchers.
A frame is kept when the decision opened a defect incident (its confirming frame,
plus the other frames of the k-of-n window with `window_frames`), when the verdict is
UNKNOWN or late, when the fail-safe acts (the station's last frame), for every
triggered result, and for sampled OK frames. The decision's records are then held
until the writer stored the images and are handed on with an `evidence` reference
(id, sha256, bytes, width, height, path, url): no record references an image that is
not complete on disk. `stop` records (command outcomes) get the reference of the
defect that caused them, queued behind it. When the writer cannot take the frame
(queue full) or cannot store it (disk full), the records go on without a reference;
a failing store raises an `alarm` record (event raised, cleared when it works again).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Any

from agent.config.evidence import EvidenceConfig
from agent.decision.payloads import EVIDENCE_SCHEMA_VERSION
from agent.decision.views import Decision
from agent.evidence.writer import EvidenceJob, EvidenceWriter
from agent.types import Inspection, Record, RecordKind, Result, Verdict, new_event_id, utc_now

log = logging.getLogger(__name__)
REFERENCING = (RecordKind.DEFECT, RecordKind.INSPECTION, RecordKind.ALARM, RecordKind.STOP)
REMEMBERED = 4096  # event ids -> evidence ids kept for `stop` records


def with_ref(record: Record, ref: dict[str, Any] | None) -> Record:
    if ref is None or record.kind not in REFERENCING:
        return record
    payload = {**record.payload, "evidence": ref, "schema_version": EVIDENCE_SCHEMA_VERSION}
    return dataclasses.replace(record, payload=payload)


def model_meta(insp: Inspection | None) -> dict[str, str] | None:
    if insp is None:
        return None
    m = insp.model
    return {"name": m.name, "version": m.version, "sha256": m.sha256, "provider": m.provider}


class EvidenceCapture:
    def __init__(self, cfg: EvidenceConfig, writer: EvidenceWriter,
                 submit: Callable[[Record], None], waits_for: Callable[[str, str], tuple[str, ...]],
                 alarm: Callable[[str, str, str, str, str], Record], *,
                 static: dict[str, Any] | None = None,
                 rng: Callable[[], float] = random.random, ids: Callable[[], str] = new_event_id,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.cfg = cfg
        self.static = dict(static or {})
        self.writer = writer
        self._submit = submit
        self._waits_for = waits_for
        self._alarm = alarm
        self._rng, self._ids, self._clock = rng, ids, clock
        self._loop: asyncio.AbstractEventLoop | None = None
        # evidence id -> records waiting for it (True: the record points to that image)
        self._holding: dict[str, list[tuple[Record, bool]]] = {}
        self._last_held: dict[str, str] = {}  # station key -> its newest held evidence id
        self._by_event: OrderedDict[str, str] = OrderedDict()  # defect/alarm id -> evidence id
        self._refs: OrderedDict[str, dict[str, Any] | None] = OrderedDict()
        self._last: dict[str, Inspection] = {}
        self._recent: dict[str, deque[Inspection]] = {}
        self._sampled: dict[str, float] = {}
        self._alarmed: dict[str, tuple[str, str, str]] = {}  # station key -> (line, st, camera)
        self.captured: dict[str, int] = {}

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    # ------------------------------------------------------------------ the hook
    def on_decision(self, decision: Decision, insp: Inspection | None,
                    triggered: bool = False) -> None:
        verdict = next(iter(decision.verdicts), None)
        key = self._key(decision, verdict)
        if key is not None and insp is not None and insp.frame is not None:
            self._last[key] = insp
            if self.cfg.window_frames:
                self._recent.setdefault(key, deque(maxlen=32)).append(insp)
        reasons = self._reasons(decision, verdict, triggered, key)
        source = insp
        if source is None and "fail_safe" in reasons:  # no frame of its own: the last one seen
            source = self._last.get(key or "")
        if not reasons or source is None or source.frame is None:
            for r in decision.records:
                self._in_order(r)
            return
        job = self._job(source, verdict, decision.records, reasons, "verdict")
        if not self.writer.submit(job):
            for r in decision.records:
                self._in_order(r)
            return
        for reason in reasons:
            self.captured[reason] = self.captured.get(reason, 0) + 1
        self._holding[job.eid] = [(r, True) for r in decision.records]
        if key is not None:
            self._last_held[key] = job.eid
        for r in decision.records:
            if r.kind in (RecordKind.DEFECT, RecordKind.ALARM):
                self._remember(self._by_event, r.id, job.eid)
        if self.cfg.window_frames and key is not None:
            self._window(key, source, verdict, decision.records)

    def route(self, record: Record) -> None:
        """A record decided elsewhere (a command outcome): behind its defect's evidence."""
        trigger = record.payload.get("trigger_event_id") if record.kind is RecordKind.STOP \
            else None
        eid = self._by_event.get(trigger) if isinstance(trigger, str) else None
        if eid is not None and eid in self._holding:
            self._holding[eid].append((record, True))
            return
        self._in_order(with_ref(record, self._refs.get(eid)) if eid else record)

    def _in_order(self, record: Record) -> None:
        """A record that needs no image still waits behind its station's held ones: the MES
        sees a station's records in the order they were decided (an alarm's `raised`, held
        for its frame, before its `cleared`)."""
        eid = self._last_held.get(f"{record.line}/{record.station}")
        if eid is not None and eid in self._holding:
            self._holding[eid].append((record, False))
        else:
            self._submit(record)

    def flush(self) -> None:
        """Shutdown: records whose evidence never came go on without it."""
        for eid in list(self._holding):
            self._written(eid, None, None)

    # ------------------------------------------------------------------ policy
    def _reasons(self, decision: Decision, verdict: Verdict | None, triggered: bool,
                 key: str | None) -> list[str]:
        reasons = []
        if any(r.kind is RecordKind.DEFECT for r in decision.records):
            reasons.append("defect")
        if any(r.kind is RecordKind.ALARM and r.payload.get("event") == "raised"
               and not r.payload.get("reason", "").startswith("evidence")
               for r in decision.records):
            reasons.append("fail_safe")
        if verdict is not None:
            if verdict.result is Result.UNKNOWN:
                reasons.append("unknown")
            if verdict.budget_exceeded:
                reasons.append("late")
            if triggered:
                reasons.append("triggered")
            if not reasons and verdict.result is Result.OK and self._sample(key or ""):
                reasons.append("sample")
        return reasons

    def _sample(self, key: str) -> bool:
        now = self._clock()
        every = self.cfg.sample_ok_every_s
        if every is not None and now - self._sampled.get(key, -1e18) >= every:
            self._sampled[key] = now
            return True
        return self.cfg.sample_ok_rate > 0 and self._rng() < self.cfg.sample_ok_rate

    # ------------------------------------------------------------------ jobs
    def _job(self, insp: Inspection, verdict: Verdict | None, records: tuple[Record, ...],
             reasons: list[str], role: str, event_id: str | None = None) -> EvidenceJob:
        frame = insp.frame
        assert frame is not None
        found = verdict.findings if verdict is not None and verdict.findings else insp.findings
        line = verdict.line if verdict else next((r.line for r in records if r.line), None)
        station = verdict.station if verdict else next((r.station for r in records), None)
        defect = next((r for r in records if r.kind is RecordKind.DEFECT), None)
        meta = {
            **self.static, "line": line, "station": station, "camera": frame.camera_id,
            "role": role, "reasons": reasons, "part_id": (verdict.part_id if verdict else None)
            or frame.part_id, "truth": frame.truth, "frame_seq": frame.seq,
            "verdict": verdict.result.value if verdict else None,
            "unknown_reason": verdict.reason if verdict else None,
            "defect_class": (verdict.defect_class if verdict else None)
            or (defect.payload.get("defect_class") if defect else None),
            "defect_code": verdict.defect_code if verdict else 0,
            "rule": (verdict.rule if verdict else None)
            or (defect.payload.get("rule") if defect else None),
            "defect_event_id": event_id or (defect.id if defect else None)
            or (verdict.event_id if verdict else None),
            "records": [{"id": r.id, "kind": r.kind.value} for r in records],
            "model": model_meta(insp), "capture_time": frame.wall_time.isoformat(),
            "decision_time": utc_now().isoformat(),
            "latency_ms": dict(verdict.latency_ms) if verdict else {},
        }
        waits = self._waits_for(line or "", station or "") if role == "verdict" else ()
        findings = tuple((f.label, float(f.score), f.box) for f in found)
        return EvidenceJob(self._ids(), frame.pixels, findings, meta, waits, self._done)

    def _window(self, key: str, source: Inspection, verdict: Verdict | None,
                records: tuple[Record, ...]) -> None:
        for r in records:
            if r.kind is not RecordKind.DEFECT:
                continue
            seqs = set(r.payload.get("frames", [])) - {source.frame_seq}
            for insp in self._recent.get(key, ()):
                if insp.frame_seq in seqs and insp.frame is not None:
                    self.writer.submit(self._job(insp, None, (), ["window"], "window", r.id))

    def _done(self, job: EvidenceJob, ref: dict[str, Any] | None, error: str | None) -> None:
        """Writer thread: hand the result to the loop."""
        loop = self._loop
        if loop is None:
            self._written(job.eid, ref, error, job.meta)
            return
        try:
            loop.call_soon_threadsafe(self._written, job.eid, ref, error, job.meta)
        except RuntimeError:  # loop closed: shutdown
            pass

    def _written(self, eid: str, ref: dict[str, Any] | None, error: str | None,
                 meta: dict[str, Any] | None = None) -> None:
        self._remember(self._refs, eid, ref)
        for r, points_to_it in self._holding.pop(eid, []):
            self._submit(with_ref(r, ref) if points_to_it else r)
        if meta is not None:
            self._alarm_state(ref, error, meta)

    def _alarm_state(self, ref: dict[str, Any] | None, error: str | None,
                     meta: dict[str, Any]) -> None:
        key = f"{meta.get('line')}/{meta.get('station')}"
        if error is not None and ref is None and key not in self._alarmed:
            log.error("evidence not stored, inspection goes on: %s", error)
            self._alarmed[key] = (meta.get("line") or "", meta.get("station") or "",
                                  meta.get("camera") or "")
            self._submit(self._alarm("raised", *self._alarmed[key], f"evidence: {error}"))
        elif ref is not None and self._alarmed:
            log.info("evidence stored again")
            for line, station, camera in self._alarmed.values():
                self._submit(self._alarm("cleared", line, station, camera, "evidence: stored again"))
            self._alarmed.clear()

    @staticmethod
    def _remember(d: OrderedDict[str, Any], k: str, v: Any) -> None:
        d[k] = v
        while len(d) > REMEMBERED:
            d.popitem(last=False)

    @staticmethod
    def _key(decision: Decision, verdict: Verdict | None) -> str | None:
        if verdict is not None:
            return f"{verdict.line}/{verdict.station}"
        for r in decision.records:
            if r.line is not None:
                return f"{r.line}/{r.station}"
        return None
