"""The inspection side of the daemon, built from the config: the models stations use, the
cameras, and one StationRuntime (worker, monitor) and drift monitor per station. Each
registers its stats when built (agent.runtime.stats_sources)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from agent.capture.camera import Camera, CameraEvent
from agent.configfile import AgentConfig
from agent.health.drift import DriftMonitor
from agent.health.registry import StatsRegistry
from agent.inference.errors import ModelLoadError
from agent.inference.session import ModelRunner, load_model
from agent.pipeline.station import InspectionHandler, StationRuntime
from agent.runtime import stats_sources
from agent.runtime.build import build_camera

log = logging.getLogger("agent.app")  # the camera lines keep the logger operators grep for


class StartupError(Exception):
    """A fatal problem at start-up; the message says what and where."""


def load_models(cfg: AgentConfig, base_dir: Path, stats: StatsRegistry) -> dict[str, ModelRunner]:
    """The models a station uses (production or shadow); candidates load on promote."""
    used = {m for _, _, st in cfg.stations() for m in (st.model, st.shadow) if m}
    runners: dict[str, ModelRunner] = {}
    for name, mc in cfg.models.items():
        if name not in used:
            continue
        try:
            runner = load_model(name, mc, base_dir)
        except ModelLoadError as exc:
            raise StartupError(str(exc)) from None
        if runner.fallback:
            log.error("model %s: first-choice provider is not active; running on %s",
                      name, runner.info.provider)
        runners[name] = runner
        stats_sources.model(stats, runners, name)
    return runners


@dataclass
class Stations:
    """The cameras and the stations that inspect their frames, each with a drift monitor."""

    cameras: dict[str, Camera] = field(default_factory=dict)
    stations: dict[str, StationRuntime] = field(default_factory=dict)
    drift: dict[str, DriftMonitor] = field(default_factory=dict)

    def on_camera_event(self, ev: CameraEvent) -> None:
        """On the loop: log the change, and tell the camera's stations."""
        level = logging.WARNING if ev.state.value in ("stalled", "failed", "reconnecting") \
            else logging.INFO
        log.log(level, "camera %s: %s -> %s%s", ev.camera, ev.previous.value, ev.state.value,
                f" ({ev.message})" if ev.message else "")
        for rt in self.stations.values():
            if rt.camera.name == ev.camera:
                rt.monitor.camera_state = ev.state


def build_stations(cfg: AgentConfig, base_dir: Path, runners: Mapping[str, ModelRunner],
                   on_inspection: InspectionHandler, loop: asyncio.AbstractEventLoop,
                   stats: StatsRegistry) -> Stations:
    built = Stations()
    for name, cc in cfg.cameras.items():
        cam = build_camera(name, cc, base_dir)
        cam.add_listener(lambda ev: _threadsafe(loop, built.on_camera_event, ev))
        built.cameras[name] = cam
        stats.register("camera", cam.stats, camera=name)
        stream_stats = getattr(cam.source, "stream_stats", None)  # GenICam cameras
        if stream_stats is not None:
            stats.register("camera_stream", stream_stats, camera=name)
    for line, st_name, st in cfg.stations():
        rt = StationRuntime(line, st_name, st, built.cameras[st.camera], runners[st.model],
                            on_inspection, loop)
        built.stations[rt.key] = rt
        stats_sources.station(stats, rt)
        built.drift[rt.key] = DriftMonitor(st.drift)
    return built


def _threadsafe(loop: asyncio.AbstractEventLoop, fn: Callable[[CameraEvent], None],
                ev: CameraEvent) -> None:
    try:
        loop.call_soon_threadsafe(fn, ev)
    except RuntimeError:
        pass  # loop closed during shutdown
