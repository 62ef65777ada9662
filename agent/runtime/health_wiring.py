"""Health of the daemon: checks, metrics sources, /healthz server, sd_notify, status.

Critical checks (cameras streaming, stations inspecting, none paused) decide the
`healthy` bit of the PLC heartbeat (per PLC: see `plc_health`); non-critical ones
(model fell back to CPU, a sink down, outbox disk full) set `degraded` but keep the
heartbeat going, because the inspection that still works must not stop. The
`heartbeat:<plc>` checks say whether each PLC sees its counter advance, and why not.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from agent import __version__
from agent.audit import Audit
from agent.control.heartbeat import Heartbeat, StatusBits
from agent.decision.payloads import MetricsPayload, ModelStatus, StationStatus, StatusPayload
from agent.health.metrics import GaugeSample, Metrics
from agent.health.sdnotify import SdNotifier, StatusLine
from agent.health.server import HealthServer
from agent.health.status import HealthChecks
from agent.health.watchdog import ProgressWatchdog
from agent.protocols.base import CommandSource, SinkState, SnapshotPublisher, StatusPublisher
from agent.runtime.plc_health import PlcHealth
from agent.tasks import cancel_and_wait
from agent.types import Record, utc_now

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from agent.capture.camera import Camera
    from agent.configfile import AgentConfig
    from agent.decision.engine import DecisionEngine
    from agent.inference.runner import ModelRunner
    from agent.outbox.store import Outbox
    from agent.pipeline.station import StationRuntime
    from agent.protocols.base import Sink
    from agent.protocols.link import PlcLink


@dataclass(frozen=True)
class HealthPorts:
    """What the health wiring reads and calls; callables for what changes while running."""

    config: Callable[[], AgentConfig]  # the running config (a reload replaces it)
    cameras: Mapping[str, Camera]
    stations: Mapping[str, StationRuntime]
    runners: Mapping[str, ModelRunner]
    sinks: Mapping[str, Sink]
    plc_links: Mapping[str, PlcLink]
    heartbeats: Sequence[Heartbeat]
    outbox: Outbox
    metrics: Metrics
    engine: DecisionEngine
    audit: Audit
    submit: Callable[[Record], None]  # the record router (PLC refusal alarms)
    models: Callable[[], list[dict[str, Any]]]  # the birth message's models
    lifecycle: Callable[[], list[dict[str, Any]]]  # the model lifecycle's status
    reload_error: Callable[[], str | None]
    inspections: Callable[[], int]
    snapshot: Callable[[], dict[str, Any]]  # station telemetry for dialect sinks


class HealthWiring:
    def __init__(self, ports: HealthPorts) -> None:
        self.p = ports
        self.started = False
        self.critical = HealthChecks()
        self.advisory = HealthChecks()
        self.all = HealthChecks()
        self.notifier = SdNotifier()
        self.status_line = StatusLine(self.notifier)  # STATUS=: every change, counters every 2 s
        self.ready_sent = False
        self.started_wall = utc_now()
        self._task: asyncio.Task[None] | None = None
        self.server: HealthServer | None = None
        self.watchdog: ProgressWatchdog | None = None
        self.plcs = PlcHealth(ports.stations, ports.heartbeats, self._station_check,
                              self._degraded, ports.engine, ports.submit, ports.audit)
        self._published: tuple[object, ...] = ()

    # ------------------------------------------------------------ checks
    def _register(self) -> None:
        a = self.p
        for name, cam in a.cameras.items():
            self._add(True, f"camera:{name}", lambda c=cam: (
                c.state.value == "streaming", f"state {c.state.value}"))
        for key, rt in a.stations.items():
            self._add(True, f"station:{key}", lambda rt=rt: self._station_check(rt))
        for name, r in a.runners.items():
            self._add(False, f"model:{name}", lambda r=r: (
                not r.fallback, f"provider {r.info.provider}" + (" (fallback)" if r.fallback else "")))
        for name, sink in a.sinks.items():
            self._add(False, f"sink:{name}", lambda s=sink: (
                s.state is SinkState.CONNECTED, f"state {s.state.value}"))
        for name, link in a.plc_links.items():
            self._add(False, f"plc:{name}", lambda lk=link: (
                lk.state is SinkState.CONNECTED, f"state {lk.state.value}"))
        self._add(False, "outbox", self._outbox_check)
        self._add(False, "config", lambda: (a.reload_error() is None, a.reload_error() or "ok"))
        for hb in a.heartbeats:  # /healthz and /status only: the heartbeat holds itself
            self.all.register(f"heartbeat:{hb.link.name}", self.plcs.check(hb))

    def _add(self, critical: bool, name: str, fn: Any) -> None:
        (self.critical if critical else self.advisory).register(name, fn)
        self.all.register(name, fn)

    def _station_check(self, rt: Any) -> tuple[bool, str]:
        if rt.paused:  # not inspecting: the PLC heartbeat stops, /healthz says why
            return False, "paused by operator"
        reason = rt.monitor.impossible_reason(time.monotonic(), rt.triggered)
        return reason is None, reason or "inspecting"

    def _outbox_check(self) -> tuple[bool, str]:
        st = self.p.outbox.store_stats()
        if st.disk_full:
            return False, ("disk full: records are lost (counted)" if st.opened else
                           "disk full: outbox not open, records are lost (counted)")
        return True, f"{sum(s.depth for s in self.p.outbox.stats().values())} record(s) queued"

    def heartbeat_bits(self, plc: str | None) -> StatusBits:
        """The PLC heartbeat's status word for `plc` (None: every station); held (nothing
        healthy) until health is started."""
        if not self.started:
            return StatusBits(healthy=False, camera_ok=False, model_ok=False, degraded=False)
        return self.plcs.bits(plc)

    def _degraded(self) -> bool:
        return not all(ok for ok, _ in self.advisory.results().values())

    # ------------------------------------------------------------ metrics
    def _gauges(self) -> Iterable[GaugeSample]:
        a = self.p
        out: list[GaugeSample] = []
        for name, cam in a.cameras.items():
            out.append(GaugeSample("edge_agent_camera_streaming", {"camera": name},
                                   1.0 if cam.state.value == "streaming" else 0.0,
                                   "1 while the camera streams"))
        for name, r in a.runners.items():
            out.append(GaugeSample("edge_agent_model_info", {
                "model": name, "version": r.info.version, "provider": r.info.provider,
                "fallback": str(r.fallback).lower()}, 1.0, "active execution provider per model"))
        for name, sk in a.sinks.items():
            out.append(GaugeSample("edge_agent_sink_connected", {"sink": name},
                                   1.0 if sk.state is SinkState.CONNECTED else 0.0,
                                   "1 while the sink is connected"))
            out += _operator_command_samples(
                name, sk.commands if isinstance(sk, CommandSource) else None)
        for name, link in a.plc_links.items():
            out.append(GaugeSample("edge_agent_plc_connected", {"plc": name},
                                   1.0 if link.state is SinkState.CONNECTED else 0.0,
                                   "1 while the PLC link is connected"))
        out += self.plcs.gauges()
        out.append(GaugeSample("edge_agent_loop_lag_seconds", {}, self.loop_lag_s,
                               "how late the event loop woke up last (nothing may block it)"))
        out.append(GaugeSample("edge_agent_loop_lag_max_seconds", {}, self.loop_lag_max_s,
                               "largest event-loop lag since start"))
        out.append(GaugeSample("edge_agent_healthy", {},
                               1.0 if self.heartbeat_bits(None).healthy else 0.0,
                               "1 while every camera and station inspects (none paused)"))
        return out

    # ------------------------------------------------------------ status
    def status(self) -> StatusPayload:
        """What /status serves and the MQTT status topic carries (retained)."""
        a, cfg = self.p, self.p.config()
        healthy, failing = self.all.evaluate()
        return StatusPayload(
            state="online", agent_id=cfg.agent_id, site=cfg.site, version=__version__,
            started=self.started_wall, time=utc_now(), healthy=healthy,
            failing=[f"{k}: {v}" for k, v in failing.items()],
            models=[ModelStatus(**m) for m in a.models()],
            stations=[StationStatus(line=rt.line, station=rt.name,
                                    state=self._station_state(rt))  # type: ignore[arg-type]
                      for rt in a.stations.values()],
            model_lifecycle=a.lifecycle())

    def status_json(self) -> dict[str, Any]:
        return self.status().model_dump(mode="json")

    def metrics_payload(self, at: datetime) -> MetricsPayload:
        """Every gauge and stats counter, for the MQTT metrics topic."""
        samples = [*self.p.metrics.stats.samples(), *self._gauges()]
        values = {f"{s.name}{{{','.join(f'{k}={v}' for k, v in s.labels.items())}}}": s.value
                  for s in samples}
        cfg = self.p.config()
        return MetricsPayload(time=at, agent_id=cfg.agent_id, site=cfg.site, values=values)

    def _station_state(self, rt: Any) -> str:
        if rt.paused:
            return "paused"
        view = self.p.engine.station_state(rt.line, rt.name)
        if getattr(view, "latched", False):
            return "stopped"
        return "inspecting" if self._station_check(rt)[0] else "impaired"

    def summary(self) -> str:
        """STATUS=: a refused reload first (until one is applied), then the counts."""
        a, error = self.p, self.p.reload_error()
        healthy, failing = self.all.evaluate()
        state = "healthy" if healthy else f"degraded: {', '.join(failing)}"
        text = f"{len(a.stations)} station(s), {a.inspections()} inspections, {state}"
        if error is not None:
            text = f"reload refused: {first_error(error)}; {text}"
        return text

    # ------------------------------------------------------------ reload (SIGHUP)
    def reload_started(self) -> bool:
        """RELOADING=1 before a reload; False (nothing sent) before READY=1 was."""
        if not self.ready_sent:
            return False
        self.notifier.reloading()
        return True

    def reload_finished(self) -> None:
        """STATUS= with the outcome at once, then READY=1: the reload is over."""
        self.status_line.update(self.summary())
        self.notifier.ready()

    # ------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        a, cfg = self.p, self.p.config()
        self._register()
        a.metrics.add_gauge_source(self._gauges)
        a.metrics.stats.register("sd_notify", self.notifier.stats)
        self.started = True
        if cfg.health.listen:
            self.server = HealthServer(cfg.health.listen, self.all, a.metrics, self.status_json,
                                       cfg.health.token)
            await self.server.start()
            a.metrics.stats.register("health", self.server.stats)
        if self.notifier.watchdog_interval_s:
            stall = max(2.0, 4 * self.notifier.watchdog_interval_s)
            self.watchdog = ProgressWatchdog(self.notifier, self._progress, stall)
            await self.watchdog.start()
            a.metrics.stats.register("watchdog", self.watchdog.stats)
        self._task = asyncio.create_task(self._loop(), name="health-loop")

    def _progress(self) -> dict[str, float]:
        prog = {f"station:{k}": rt.last_progress() for k, rt in self.p.stations.items()}
        prog["loop"] = self._loop_beat
        return prog

    _loop_beat: float = 0.0

    async def _loop(self) -> None:
        a = self.p
        next_status = 0.0
        interval = min((getattr(s, "status_interval_s", 10.0) for s in a.config().sinks.values()),
                       default=10.0)
        expected = time.monotonic()
        while True:
            now = time.monotonic()
            self._observe_lag(now - expected)
            self._loop_beat = now
            if not self.ready_sent and self._all_inspecting():
                self.ready_sent = True
                self.notifier.ready()
                a.audit.write("ready")
            self.plcs.watch()
            if self.notifier.enabled:
                self.status_line.update(self.summary())
            sig = self._status_signature()
            if now >= next_status or (sig != self._published and now >= next_status - interval + 1.0):
                next_status = now + interval  # a change goes out at once (at most 1/s)
                self._published = sig
                await self._publish_status()
            expected = time.monotonic() + 0.25
            await asyncio.sleep(0.25)

    loop_lag_s: float = 0.0
    loop_lag_max_s: float = 0.0

    def _observe_lag(self, lag: float) -> None:
        """Nothing on the loop may block: a late wake-up is measured, exported and logged."""
        self.loop_lag_s = max(0.0, lag)
        if lag > self.loop_lag_max_s:
            self.loop_lag_max_s = lag
        if lag > 0.5:
            log.warning("event loop blocked for %.2f s (stop path and heartbeat were late)", lag)

    def _status_signature(self) -> tuple[object, ...]:
        """Station states and whether each heartbeat counts: a change is published at once."""
        return (tuple(self._station_state(rt) for rt in self.p.stations.values())
                + tuple(self.heartbeat_bits(hb.link.name).healthy and hb.refusal is None
                        for hb in self.p.heartbeats))

    def _all_inspecting(self) -> bool:
        return all(rt.triggered or rt.worker.stats().inspected > 0
                   for rt in self.p.stations.values())

    async def _publish_status(self) -> None:
        status = self.status()
        doc = status.model_dump(mode="json")
        metrics = self.metrics_payload(status.time).model_dump(mode="json")
        snapshot: dict[str, Any] | None = None
        for sink in self.p.sinks.values():
            if isinstance(sink, StatusPublisher):
                await sink.publish_telemetry("status", doc)
                await sink.publish_telemetry("metrics", metrics)
            if isinstance(sink, SnapshotPublisher):  # dialect sinks: Sparkplug B, HA discovery
                snapshot = snapshot or self.p.snapshot()
                await sink.publish_snapshot(snapshot)

    async def stopping(self) -> None:
        """STOPPING=1 and the loop ends (nothing when never started)."""
        if not self.started:
            return
        self.notifier.stopping()
        self.status_line.update("stopping")
        if self._task is not None:
            await cancel_and_wait(self._task)
            self._task = None
        if self.watchdog is not None:
            await self.watchdog.stop()

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.stop()


def _operator_command_samples(sink: str, listener: Any) -> list[GaugeSample]:
    """Operator commands a sink took, by result: accepted, or the code it was rejected for."""
    if listener is None:
        return []
    counts = {"accepted": listener.accepted, **listener.rejected_by}
    return [GaugeSample("edge_agent_operator_commands_total", {"sink": sink, "result": k},
                        float(v), "operator commands by result (accepted, or why rejected)",
                        "counter") for k, v in counts.items()]


def first_error(error: str) -> str:
    """The first issue of a one-line config error ("3 configuration error(s): a; b; c")."""
    _, sep, issues = error.partition(" configuration error(s): ")
    return issues.split("; ", 1)[0] if sep else error
