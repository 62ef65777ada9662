"""Composition root: config -> objects, start order, signals, ordered shutdown.

Start order: audit, models (fatal errors first), outbox, sinks + forwarders,
PLC links + command dispatchers + heartbeat, stations (inference workers),
cameras, health. Shutdown is the reverse where it matters: stop capture, drain
inference, flush commands, enqueue pending records, checkpoint the outbox.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from dataclasses import dataclass
from typing import Any

from agent import __version__
from agent.audit import AuditLog
from agent.capture.camera import Camera, CameraEvent
from agent.capture.factory import build_camera
from agent.config import LoadedConfig
from agent.control.dispatcher import CommandDispatcher
from agent.decision.engine import Decision, DecisionEngine
from agent.evidence.wiring import EvidenceWiring
from agent.health.drift import DriftMonitor
from agent.health.metrics import Metrics
from agent.inference.errors import ModelLoadError
from agent.inference.session import ModelRunner, load_model
from agent.outbox.forwarder import Forwarder
from agent.outbox.store import Outbox
from agent.runtime import stats_sources
from agent.runtime.audit_writer import AuditWriter
from agent.runtime.build import build_sink
from agent.runtime.health_wiring import HealthWiring
from agent.runtime.model_lifecycle import ModelLifecycle
from agent.runtime.operator import handle_operator_command
from agent.runtime.outbox_alarms import OutboxAlarms
from agent.runtime.outcomes import OutcomeHandler, after_sends
from agent.runtime.plc_wiring import PlcWiring
from agent.runtime.records import RecordRouter, station_routes
from agent.runtime.reload import reload_config
from agent.runtime.station import StationRuntime
from agent.sinks.base import Sink, SinkContext
from agent.tasks import stop_within
from agent.types import Command, CommandOutcome, Inspection, Result, Verdict
from agent.web.tap import FrameTap

log = logging.getLogger(__name__)


SWITCH_INTERVAL_S = 0.001


class StartupError(Exception):
    """A fatal problem at start-up; the message says what and where."""


@dataclass(frozen=True)
class RunLimits:
    max_frames: int | None = None
    duration_s: float | None = None


class Agent:
    def __init__(self, loaded: LoadedConfig, limits: RunLimits | None = None) -> None:
        self.loaded = loaded
        self.cfg = loaded.config
        self.limits = limits or RunLimits()
        self.state_dir = loaded.resolve(self.cfg.state_dir)
        self.started = time.monotonic()
        self.inspections = 0
        self.reload_error: str | None = None
        self._stop = asyncio.Event()
        self._tick_task: asyncio.Task[None] | None = None
        self.runners: dict[str, ModelRunner] = {}
        self.sinks: dict[str, Sink] = {}
        self.forwarders: dict[str, Forwarder] = {}
        self.cameras: dict[str, Camera] = {}
        self.stations: dict[str, StationRuntime] = {}
        self.drift: dict[str, DriftMonitor] = {}
        self.verdict_counts: dict[str, dict[str, int]] = {}
        self.last_defect: dict[str, Verdict] = {}
        self.last_verdict: dict[str, str] = {}  # station key -> OK / NG / UNKNOWN
        self.evidence: EvidenceWiring | None = None
        self.tap = FrameTap()  # the console's live view: holds frames only while watched

    # ---------------------------------------------------------------- start
    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        # the event loop (stop path) must get the GIL back quickly from the capture,
        # inference, outbox and MQTT threads: 1 ms instead of CPython's 5 ms
        sys.setswitchinterval(SWITCH_INTERVAL_S)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.audit = AuditWriter(AuditLog(self.state_dir / "audit.jsonl",
                                          self.cfg.audit.max_bytes, self.cfg.audit.keep))
        self.audit.write("start", version=__version__, config=str(self.loaded.path))
        self.metrics = Metrics()
        self.engine = DecisionEngine(self.cfg)
        self._load_models()
        self.outbox = Outbox.open(self.state_dir / "outbox.sqlite3", self.cfg.outbox,
                                  {n: s.outbox for n, s in self.cfg.sinks.items()})
        ctx = SinkContext(self.cfg.site, self.cfg.agent_id, self.loaded.base_dir, self.state_dir)
        await self._start_sinks(ctx)
        self.router = RecordRouter(self.outbox, self.forwarders, station_routes(self.cfg),
                                   self.cfg.sinks)
        await self.router.start()
        # every component registers its stats() when built (cameras, stations, links...)
        stats_sources.core(self.metrics.stats, self.audit.log, self.engine, self.outbox, self.router)
        self.outbox_alarms = OutboxAlarms(self.outbox, self.audit, self.router.submit,
                                          self.cfg.site, self.cfg.agent_id)
        self.outbox_alarms.start()  # losses found at open: audit line + alarm record now
        self.metrics.add_gauge_source(self.outbox_alarms.samples)
        if self.cfg.evidence.enabled:
            self.evidence = EvidenceWiring(self)
            self.evidence.start(loop)
        self.outcomes = OutcomeHandler(self.audit, self.metrics, self.tap, self.engine,
                                       self.evidence.route if self.evidence else self.router.submit)
        self.plc = PlcWiring(self, ctx)
        await self.plc.start()
        self._build_stations(loop)
        self.lifecycle = ModelLifecycle(self)  # shadow, hot swap, guards, rollback
        self.metrics.add_gauge_source(self.lifecycle.samples)
        self.health = HealthWiring(self)
        await self.health.start()
        if self.evidence is not None:
            self.evidence.serve_on(getattr(self.health, "server", None))
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

    def _load_models(self) -> None:
        """The models a station uses (production or shadow); candidates load on promote."""
        used = {m for _, _, st in self.cfg.stations() for m in (st.model, st.shadow) if m}
        for name, mc in self.cfg.models.items():
            if name not in used:
                continue
            try:
                runner = load_model(name, mc, self.loaded.base_dir)
            except ModelLoadError as exc:
                raise StartupError(str(exc)) from None
            if runner.fallback:
                log.error("model %s: first-choice provider is not active; running on %s",
                          name, runner.info.provider)
            self.runners[name] = runner
            stats_sources.model(self.metrics.stats, self.runners, name)

    async def _start_sinks(self, ctx: SinkContext) -> None:
        for name, sc in self.cfg.sinks.items():
            sink = build_sink(name, sc, ctx)
            if hasattr(sink, "set_birth"):
                sink.set_birth(self.birth())
            if hasattr(sink, "on_command"):  # every attempt audited by the sink, with its id
                sink.on_command(self.on_operator_command, self.audit.write)
            await sink.start()
            self.sinks[name] = sink
            fwd = Forwarder(self.outbox, sink, sc.outbox)
            await fwd.start()
            self.forwarders[name] = fwd
            stats_sources.sink(self.metrics.stats, name, sc.type, sink, fwd)

    def _build_stations(self, loop: asyncio.AbstractEventLoop) -> None:
        for name, cc in self.cfg.cameras.items():
            cam = build_camera(name, cc, self.loaded.base_dir)
            cam.add_listener(lambda ev: self._threadsafe(loop, self._on_camera_event, ev))
            self.cameras[name] = cam
            self.metrics.stats.register("camera", cam.stats, camera=name)
            stream_stats = getattr(cam.source, "stream_stats", None)  # GenICam cameras
            if stream_stats is not None:
                self.metrics.stats.register("camera_stream", stream_stats, camera=name)
        for line, st_name, st in self.cfg.stations():
            rt = StationRuntime(line, st_name, st, self.cameras[st.camera], self.runners[st.model],
                                self._on_inspection, loop)
            self.stations[rt.key] = rt
            stats_sources.station(self.metrics.stats, rt)
            self.drift[rt.key] = DriftMonitor(st.drift)
            self.verdict_counts[rt.key] = {r.value: 0 for r in Result}

    @staticmethod
    def _threadsafe(loop: asyncio.AbstractEventLoop, fn: Any, *args: Any) -> None:
        try:
            loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:
            pass  # loop closed during shutdown

    # ---------------------------------------------------------------- flow
    def _on_inspection(self, rt: StationRuntime, insp: Inspection) -> bool:
        """True when a command went to a PLC task (bookkeeping waits behind its send)."""
        now = time.monotonic()
        self.inspections += 1
        rt.monitor.on_inspection(insp, rt.cfg.latency_budget_ms, now)
        if not rt.triggered:  # decide (and hand a stop to its PLC task) before bookkeeping
            if self.apply(self.engine.on_inspection(rt.line, rt.name, insp, now), insp):
                after_sends(self._inspection_bookkeeping, rt, insp)
                return True
        self._inspection_bookkeeping(rt, insp)
        return False

    def _inspection_bookkeeping(self, rt: StationRuntime, insp: Inspection) -> None:
        self.metrics.observe_inspection(rt.line, rt.name, insp)
        self.tap.on_inspection(rt.key, insp)
        self._observe_drift(rt, insp)
        self.lifecycle.after_inspection(rt, insp)  # model guard, then the shadow model
        limit = self.limits.max_frames
        if limit is not None and self.inspections >= limit:
            self.request_stop("max-frames reached")

    def _observe_drift(self, rt: StationRuntime, insp: Inspection) -> None:
        if not rt.cfg.drift.enabled or insp.error:
            return
        pixels = insp.frame.pixels if insp.frame is not None else None
        report = self.drift[rt.key].observe(pixels, insp)
        if report is not None:
            stats = dict(self.drift[rt.key].stats())
            self.router.submit(self.engine.drift_record(rt.line, rt.name, stats,
                                                        rt.cfg.drift.psi_threshold))
            self.audit.write("drift", line=rt.line, station=rt.name, stats=stats)

    async def inspect_part(self, rt: StationRuntime, part_id: str, t_trigger: float) -> Verdict:
        """Triggered mode: one verdict per part, UNKNOWN when no frame or inspection failed."""
        reason = rt.monitor.impossible_reason(time.monotonic(), triggered=True)
        insp = None if reason else await rt.inspect_after(t_trigger)
        if insp is None and reason is None:
            reason = f"no frame captured within {rt.cfg.trigger.frame_ms} ms after the trigger"
        if insp is not None:
            self._on_inspection(rt, insp)
        decision = self.engine.on_part(rt.line, rt.name, part_id, insp, time.monotonic(), reason)
        self.apply(decision, insp, triggered=True)
        for v in decision.verdicts:
            return v
        return Verdict(rt.line, rt.name, rt.camera.name, Result.UNKNOWN, -1, part_id=part_id,
                       reason=reason or "no verdict")

    def apply(self, decision: Decision, insp: Inspection | None = None,
              triggered: bool = False) -> bool:
        """Commands first (the stop path), then records (with evidence: held for their image,
        taken after the PLC tasks have sent), then counters; True when a command went to a
        PLC task (the caller then leaves slow bookkeeping until it has sent)."""
        for c in decision.commands:
            self._submit_command(c)
        if self.evidence is not None:
            if decision.commands:
                after_sends(self.evidence.on_decision, decision, insp, triggered)
            else:
                self.evidence.on_decision(decision, insp, triggered)
        else:
            for r in decision.records:
                self.router.submit(r)
        for v in decision.verdicts:
            self.metrics.observe_verdict(v)
            self.tap.on_verdict(v)
            counts = self.verdict_counts.get(f"{v.line}/{v.station}")
            if counts is not None:
                counts[v.result.value] += 1
                self.last_verdict[f"{v.line}/{v.station}"] = v.result.value
            if v.result is Result.NG:
                self.last_defect[f"{v.line}/{v.station}"] = v
        return bool(decision.commands)

    def _submit_command(self, cmd: Command) -> None:
        """The stop path: hand the command to its PLC's dispatcher first, then audit it."""
        dispatcher: CommandDispatcher | None = self.plc.dispatchers.get(cmd.plc)
        if dispatcher is not None:
            dispatcher.submit(cmd)
        else:
            log.error("command %s for %s/%s: no PLC link %r", cmd.kind, cmd.line, cmd.station,
                      cmd.plc)
        self.outcomes.command_sent(cmd, dispatcher is not None)

    def on_outcome(self, outcome: CommandOutcome) -> None:
        """The dispatchers' outcome callback (a seam the benches hook): the outcome handler."""
        self.outcomes(outcome)

    def reset_station(self, line: str, station: str, source: str) -> None:
        self.audit.write("reset", line=line, station=station, source=source)
        self.apply(self.engine.reset(line, station, source, time.monotonic()))

    def _on_camera_event(self, ev: CameraEvent) -> None:
        level = logging.WARNING if ev.state.value in ("stalled", "failed", "reconnecting") \
            else logging.INFO
        log.log(level, "camera %s: %s -> %s%s", ev.camera, ev.previous.value, ev.state.value,
                f" ({ev.message})" if ev.message else "")
        for rt in self.stations.values():
            if rt.camera.name == ev.camera:
                rt.monitor.camera_state = ev.state

    def on_operator_command(self, cmd: Any, via: str = "mqtt") -> None:
        handle_operator_command(self, cmd, via)  # reset, pause, resume, promote, rollback

    # ---------------------------------------------------------------- periodic
    async def _tick(self) -> None:
        while not self._stop.is_set():
            now = time.monotonic()
            for rt in self.stations.values():
                self._check_station(rt, now)
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

    def _check_station(self, rt: StationRuntime, now: float) -> None:
        if rt.paused:
            return
        reason = rt.monitor.impossible_reason(now, rt.triggered)
        if reason is not None:
            if rt.monitor.last_reason != reason:
                log.warning("station %s: inspection impossible: %s", rt.key, reason)
            rt.monitor.last_reason = reason
            self.apply(self.engine.on_inspection_impossible(rt.line, rt.name, reason, now,
                                                            rt.impossible_since()))
        elif rt.monitor.last_reason is not None:
            log.info("station %s: inspecting again", rt.key)
            rt.monitor.last_reason = None
            self.apply(self.engine.on_inspection_possible(rt.line, rt.name, now))

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

        Safe after a failed start: only what was built is stopped.
        """
        t0 = time.monotonic()
        self._stop.set()
        if self._tick_task is not None:
            await self._tick_task
        health = getattr(self, "health", None)
        if health is not None:
            await health.stopping()
        await asyncio.gather(*(asyncio.to_thread(c.stop, 2.0) for c in self.cameras.values()))
        await asyncio.gather(*(asyncio.to_thread(rt.stop, 2.0) for rt in self.stations.values()))
        if hasattr(self, "lifecycle"):
            await self.lifecycle.close()  # pending promotes, shadow threads
        plc = getattr(self, "plc", None)
        if plc is not None:
            await plc.stop()  # triggers, heartbeat, then flush commands
            await asyncio.sleep(0)  # outcomes run behind the sends (on_outcome): let the
            # last ones hand their `stop` records to the router before it ends
        if self.evidence is not None:
            await self.evidence.stop()  # held records go to the router before it stops
        router = getattr(self, "router", None)
        if router is not None:
            await router.stop()
        for fwd in self.forwarders.values():
            await stop_within(fwd.stop(), 2.0, "forwarder")
        for sink in self.sinks.values():
            await stop_within(sink.close(), 2.0, f"sink {sink.name}")
        if plc is not None:
            await plc.close()
        outbox = getattr(self, "outbox", None)
        if outbox is not None:
            await outbox.close()
        if health is not None:
            await health.stop()
        audit = getattr(self, "audit", None)
        if audit is not None:
            audit.write("stop", seconds=round(time.monotonic() - t0, 3))
            audit.close()
        log.info("stopped in %.2f s", time.monotonic() - t0)
