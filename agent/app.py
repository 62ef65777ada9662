"""Composition root: config -> objects, start order, signals, ordered shutdown.

Build first, then start. The constructor builds every part, the audit log and the models
first (a model that cannot be loaded is a StartupError: the audit log is closed again,
nothing else was opened), and hands each part the objects and callables it uses. `start()` only starts them: sinks + forwarders, the
record router, evidence, PLC links + command dispatchers + heartbeat, health, stations
(inference workers), cameras, PLC triggers. Shutdown is the reverse where it matters:
stop capture, drain inference, flush commands, enqueue pending records, checkpoint the
outbox; a part that was never started stops at once.

What happens to an inspection is the station pipeline's (agent.pipeline.flow); what
follows a command's outcome, the outcome handler's (agent.pipeline.outcomes); where a
record goes, the record router's (agent.pipeline.records).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import sys
import time
from dataclasses import dataclass
from typing import Any

from agent import __version__
from agent.audit import AuditLog, AuditWriter
from agent.configfile import AgentConfig, LoadedConfig
from agent.decision.engine import DecisionEngine
from agent.evidence.wiring import EvidenceWiring
from agent.health.metrics import Metrics
from agent.outbox.store import Outbox
from agent.pipeline.flow import StationPipeline
from agent.pipeline.outcomes import OutcomeHandler
from agent.pipeline.records import RecordRouter, station_routes
from agent.pipeline.station import StationRuntime
from agent.protocols.base import SinkContext
from agent.runtime import stats_sources
from agent.runtime.assembly import StartupError, build_stations, load_models
from agent.runtime.health_wiring import HealthPorts, HealthWiring
from agent.runtime.model_lifecycle import ModelLifecycle
from agent.runtime.operator import handle_operator_command
from agent.runtime.outbox_alarms import OutboxAlarms
from agent.runtime.plc_wiring import PlcWiring
from agent.runtime.reload import reload_config
from agent.runtime.sink_wiring import SinkWiring
from agent.runtime.station_snapshot import station_snapshot
from agent.types import CommandOutcome, Inspection
from agent.web.tap import FrameTap
from agent.web.wiring import ConsoleWiring

__all__ = ["Agent", "RunLimits", "StartupError"]
log = logging.getLogger(__name__)


SWITCH_INTERVAL_S = 0.001


@dataclass(frozen=True)
class RunLimits:
    max_frames: int | None = None
    duration_s: float | None = None


class Agent:
    """Built on the event loop that will run it (`asyncio.get_running_loop()`)."""

    def __init__(self, loaded: LoadedConfig, limits: RunLimits | None = None) -> None:
        self.loaded = loaded
        self.cfg = cfg = loaded.config
        self.limits = limits or RunLimits()
        self.state_dir = loaded.resolve(cfg.state_dir)
        self.started = time.monotonic()
        self.reload_error: str | None = None
        self._stop = asyncio.Event()
        self._tick_task: asyncio.Task[None] | None = None
        base, loop = loaded.base_dir, asyncio.get_running_loop()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.audit = AuditWriter(AuditLog(self.state_dir / "audit.jsonl", cfg.audit.max_bytes,
                                          cfg.audit.keep))
        self.audit.write("start", version=__version__, config=str(loaded.path))
        self.metrics = Metrics()
        stats = self.metrics.stats
        try:
            self.runners = load_models(cfg, base, stats)
        except StartupError:
            self.audit.write("stop", seconds=0.0)
            self.audit.close()
            raise
        self.engine = DecisionEngine(cfg)
        self.tap = FrameTap()  # the console's live view: holds frames only while watched
        self.outbox = Outbox.open(self.state_dir / "outbox.sqlite3", cfg.outbox,
                                  {n: s.outbox for n, s in cfg.sinks.items()})
        ctx = SinkContext(cfg.site, cfg.agent_id, base, self.state_dir)
        self.mes = SinkWiring(cfg.sinks, ctx, self.outbox, stats, self.birth,
                              self.on_operator_command, self.audit.write)
        self.sinks = self.mes.sinks
        self.router = RecordRouter(self.outbox, self.mes.forwarders, station_routes(cfg),
                                   cfg.sinks)
        stats_sources.core(stats, self.audit.log, self.engine, self.outbox, self.router)
        self.outbox_alarms = OutboxAlarms(self.outbox, self.audit, self.router.submit,
                                          cfg.site, cfg.agent_id)
        self.metrics.add_gauge_source(self.outbox_alarms.samples)
        self.evidence = EvidenceWiring(
            cfg.evidence, self.state_dir, cfg.health.listen, cfg.site, cfg.agent_id,
            self.router.submit, self.sinks, self.router.station_sinks, stats,
        ) if cfg.evidence.enabled else None
        self.outcomes = OutcomeHandler(self.audit, self.metrics, self.tap, self.engine,
                                       self.evidence.route if self.evidence else self.router.submit)
        floor = build_stations(cfg, base, self.runners, self._inspected, loop, stats)
        self.cameras, self.stations, self.drift = floor.cameras, floor.stations, floor.drift
        self.lifecycle = ModelLifecycle(  # shadow, hot swap, guards, rollback
            self.stations, self.runners, self.current_config, base, self.state_dir, stats,
            self.audit, self.router.submit, self.drift,
            self.evidence.writer if self.evidence else None)
        self.metrics.add_gauge_source(self.lifecycle.samples)
        # the PLC side and the parts built after it call each other: bound when called
        self.plc = PlcWiring(
            self.current_config, ctx, stats, self.stations,
            on_outcome=lambda outcome: self.on_outcome(outcome),  # a seam the benches hook
            status_bits=lambda plc: self.health.heartbeat_bits(plc),
            reset_station=lambda line, st, source: self.pipeline.reset_station(line, st, source),
            inspect_part=lambda rt, part, t: self.pipeline.inspect_part(rt, part, t))
        self.pipeline = StationPipeline(
            self.engine, self.plc.dispatchers, self.outcomes, self.router.submit, self.evidence,
            self.metrics, self.tap, self.drift, self.audit, self.lifecycle.after_inspection,
            self.stations, self.limits.max_frames, self.request_stop)
        self.health = HealthWiring(HealthPorts(
            self.current_config, self.cameras, self.stations, self.runners, self.sinks,
            self.plc.links, self.plc.heartbeats, self.outbox, self.metrics, self.engine,
            self.audit, self.router.submit, lambda: self.birth()["models"], self.lifecycle.status,
            lambda: self.reload_error, lambda: self.pipeline.tally.inspections,
            functools.partial(station_snapshot, self.outbox, self.stations, self.pipeline.tally,
                              self.engine, self.plc.links)))
        self.console = ConsoleWiring(self, self.health)

    def current_config(self) -> AgentConfig:
        """The running config (a reload replaces it)."""
        return self.cfg

    # ---------------------------------------------------------------- start
    async def start(self) -> None:
        """Start what the constructor built, in order."""
        # the event loop (stop path) must get the GIL back quickly from the capture,
        # inference, outbox and MQTT threads: 1 ms instead of CPython's 5 ms
        sys.setswitchinterval(SWITCH_INTERVAL_S)
        await self.mes.start()
        await self.router.start()
        self.outbox_alarms.start()  # losses found at open: audit line + alarm record now
        if self.evidence is not None:
            self.evidence.start(asyncio.get_running_loop())
        await self.plc.start()
        await self.health.start()
        await self.console.start()
        if self.evidence is not None:
            self.evidence.serve_on(self.health.server)
        for rt in self.stations.values():
            rt.start()
        self.lifecycle.start()
        for cam in self.cameras.values():
            cam.start()
        await self.plc.start_triggers()
        self._tick_task = asyncio.create_task(self._tick(), name="agent-tick")
        log.info("edge-agent %s started: %d station(s), %d camera(s), %d sink(s), %d PLC(s)",
                 __version__, len(self.stations), len(self.cameras), len(self.sinks),
                 len(self.plc.links))

    # ---------------------------------------------------------------- seams
    def _inspected(self, rt: StationRuntime, insp: Inspection) -> bool:
        return self._on_inspection(rt, insp)

    def _on_inspection(self, rt: StationRuntime, insp: Inspection) -> bool:
        """Every inspection a station hands to the loop (a seam the benches hook)."""
        return self.pipeline.on_inspection(rt, insp)

    def on_outcome(self, outcome: CommandOutcome) -> None:
        """The dispatchers' outcome callback (a seam the benches hook): the outcome handler."""
        self.outcomes(outcome)

    def on_operator_command(self, cmd: Any, via: str = "mqtt") -> None:
        handle_operator_command(self, cmd, via)  # reset, pause, resume, promote, rollback

    # ---------------------------------------------------------------- periodic
    async def _tick(self) -> None:
        while not self._stop.is_set():
            now = time.monotonic()
            for rt in self.stations.values():
                self.pipeline.check_station(rt, now)
            d = self.limits.duration_s
            if d is not None and now - self.started >= d:
                self.request_stop("duration reached")
            if self.limits != RunLimits() and self._sources_ended():
                self.request_stop("every camera has ended (bounded run)")
            try:
                await asyncio.wait_for(self._stop.wait(), 0.2)
            except TimeoutError:
                pass

    def _sources_ended(self, ended: tuple[str, ...] = ("stopped", "failed")) -> bool:
        return bool(self.cameras) and all(c.state.value in ended for c in self.cameras.values())

    # ---------------------------------------------------------------- status
    def birth(self) -> dict[str, Any]:
        return {
            "agent_id": self.cfg.agent_id, "site": self.cfg.site, "version": __version__,
            "models": [{"name": r.info.name, "version": r.info.version, "sha256": r.info.sha256,
                        "provider": r.info.provider, "fallback": r.fallback}
                       for r in self.runners.values()],
        }

    # ---------------------------------------------------------------- stop / reload
    def request_stop(self, why: str) -> None:
        if not self._stop.is_set():
            log.info("stopping: %s", why)
            self._stop.set()

    async def wait(self) -> None:
        await self._stop.wait()

    async def reload(self) -> bool:
        """SIGHUP: see agent.runtime.reload (parsed off the loop, refused on any error)."""
        return await reload_config(self)

    async def shutdown(self) -> None:
        """Ordered: capture, inference, commands, records, sinks, outbox.

        Safe after a failed start: a part never started stops at once.
        """
        t0 = time.monotonic()
        self._stop.set()
        if self._tick_task is not None:
            await self._tick_task
        await self.health.stopping()
        await asyncio.gather(*(asyncio.to_thread(c.stop, 2.0) for c in self.cameras.values()))
        await asyncio.gather(*(asyncio.to_thread(rt.stop, 2.0) for rt in self.stations.values()))
        await self.lifecycle.close()  # pending promotes, shadow threads
        await self.plc.stop()  # triggers, heartbeat, then flush commands
        await asyncio.sleep(0)  # what chains on the last sends and outcomes runs now: their
        # audit lines, and the records (`stop` records too) handed to the router before it ends
        if self.evidence is not None:
            await self.evidence.stop()  # held records go to the router before it stops
        await self.router.stop()
        await self.mes.stop()  # forwarders, then sinks
        await self.plc.close()
        await self.outbox.close()
        await self.console.stop()
        await self.health.stop()
        self.audit.write("stop", seconds=round(time.monotonic() - t0, 3))
        self.audit.close()
        log.info("stopped in %.2f s", time.monotonic() - t0)
