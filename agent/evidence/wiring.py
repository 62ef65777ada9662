"""Builds the evidence branch of a running agent: store, retention, writer, capture hook.

The station pipeline calls `on_decision()` where it acts on verdicts (once a command of
the decision was sent, agent.pipeline.flow) and the outcome handler `route()` for
command outcomes; both end in the record router. Metrics: edge_agent_evidence_writer_* and edge_agent_evidence_store_*
(stats registry, docs/metrics.md).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from agent.config.evidence import EvidenceConfig
from agent.decision.payloads import AlarmPayload
from agent.decision.views import Decision
from agent.evidence.capture import EvidenceCapture
from agent.evidence.http_route import PREFIX, EvidenceRoute
from agent.evidence.retention import Retention
from agent.evidence.store import EvidenceStore
from agent.evidence.writer import EvidenceWriter
from agent.health.registry import StatsRegistry
from agent.protocols.base import EvidenceTaker
from agent.types import Inspection, Record, RecordKind, new_event_id, utc_now

log = logging.getLogger(__name__)


def evidence_root(state_dir: Path) -> Path:
    return state_dir / "evidence"


def url_base(cfg: EvidenceConfig, listen: str) -> str:
    return cfg.public_url or (f"http://{listen}" if listen else "")


class EvidenceWiring:
    def __init__(self, cfg: EvidenceConfig, state_dir: Path, listen: str, site: str,
                 agent_id: str, submit: Callable[[Record], None], sinks: Mapping[str, Any],
                 station_sinks: Callable[[str, str], Sequence[str]],
                 stats: StatsRegistry) -> None:
        """`listen`: the health server's address (image URLs); `submit`: the record router;
        `station_sinks(line, station)`: where a station's records go (the router's routes)."""
        self.cfg = cfg
        self.site, self.agent_id = site, agent_id
        self.sinks = sinks
        self.station_sinks = station_sinks
        self.store = EvidenceStore(evidence_root(state_dir))
        self.retention = Retention(self.store, cfg.max_bytes, cfg.max_age_s, cfg.min_free_bytes)
        self.writer = EvidenceWriter(self.store, self.retention, cfg, url_base(cfg, listen))
        self.capture = EvidenceCapture(cfg, self.writer, submit, self._waits_for, self._alarm,
                                       static={"site": site, "agent_id": agent_id})
        self.route_handler = EvidenceRoute(self.store)
        stats.register("evidence_writer", self.writer.snapshot)
        stats.register("evidence_store", lambda: dataclasses.replace(self.retention.stats))

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self.capture.bind(loop)
        for sink in self.sinks.values():  # sinks that take files deliver the images
            if isinstance(sink, EvidenceTaker):
                sink.attach_evidence(self.store)
        try:
            self.writer.start()
        except OSError as exc:  # inspection goes on without evidence
            log.error("evidence store %s unusable, no evidence kept: %s", self.store.root, exc)
        else:
            log.info("evidence: saving images under %s (edge-agent evidence list --dir %s)",
                     self.store.root, self.store.root)

    def serve_on(self, server: Any) -> None:
        """Register GET /evidence/... on the health server (same token as /status)."""
        if server is not None and hasattr(server, "prefix_routes"):
            server.prefix_routes[PREFIX] = self.route_handler

    def on_decision(self, decision: Decision, insp: Inspection | None,
                    triggered: bool = False) -> None:
        self.capture.on_decision(decision, insp, triggered)

    def route(self, record: Record) -> None:
        self.capture.route(record)

    async def stop(self) -> None:
        """Write what is queued, hand the held records on (before the router stops)."""
        await asyncio.to_thread(self.writer.stop, 5.0)
        await asyncio.sleep(0)  # completions scheduled by the writer run now
        self.capture.flush()

    def _waits_for(self, line: str, station: str) -> tuple[str, ...]:
        return tuple(n for n in self.station_sinks(line, station)
                     if getattr(self.sinks.get(n), "takes_evidence", False))

    def _alarm(self, event: str, line: str, station: str, camera: str, reason: str) -> Record:
        eid, now = new_event_id(), utc_now()
        payload = AlarmPayload(event_id=eid, time=now, site=self.site,
                               agent_id=self.agent_id, line=line, station=station,
                               camera=camera or None, event=event,  # type: ignore[arg-type]
                               reason=reason)
        return Record(id=eid, kind=RecordKind.ALARM, payload=payload.model_dump(mode="json"),
                      line=line, station=station, created=now)
