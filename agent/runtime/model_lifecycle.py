"""The model lifecycle of every station: shadow, hot swap (promote / reload), guards, rollback.

- `promote` loads the candidate (the station's `shadow` model, or a named one) beside the
  running model (`agent.inference.swap.load_beside`: sha256, provider policy, outputs
  against the manifest, warm-up; on a low-priority thread of its own), then switches
  the station's runner between two frames (`StationRuntime.use_runner`). A refused
  candidate changes nothing. The previous runner stays loaded for a rollback.
- After every switch the new model is guarded (`ModelGuard`) for `model_guard.window_s`;
  a tripped guard rolls the station back by itself, with an alarm record and audit.
- Every switch is audited (`model_switch`, old and new sha256) and published as a
  `model` record; `status()` and `samples()` feed /status and /metrics.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.alarms import alarm_text
from agent.audit import Audit
from agent.config.models import ModelConfig
from agent.configfile.root import AgentConfig
from agent.health.metrics import GaugeSample
from agent.health.registry import StatsRegistry
from agent.inference.errors import ModelLoadError
from agent.inference.runner import ModelRunner
from agent.inference.swap import load_beside
from agent.runtime import stats_sources
from agent.runtime.model_guard import ModelGuard, frame_classes
from agent.runtime.model_records import rollback_alarm, switch_record
from agent.runtime.shadow import ShadowRunner
from agent.types import Inspection, Record

if TYPE_CHECKING:
    from agent.evidence.writer import EvidenceWriter
    from agent.health.drift import DriftMonitor
    from agent.pipeline.station import StationRuntime

log = logging.getLogger(__name__)

@dataclass
class StationModels:
    """One station's production model (config name + runner), previous, guard, shadow."""

    model: str
    previous: tuple[str, ModelRunner] | None = None
    guard: ModelGuard | None = None
    shadow: ShadowRunner | None = None
    shadow_model: str | None = None
    switching: bool = False
    switches: int = 0
    rollbacks: int = 0
    refused: int = 0
    last: dict[str, Any] = field(default_factory=dict)  # last switch or refusal, for /status


@dataclass
class ReloadPlan:
    """Runners a reload swaps in, by station key: production and shadow (None = off)."""

    production: dict[str, tuple[str, ModelRunner]] = field(default_factory=dict)
    shadows: dict[str, tuple[str | None, ModelRunner | None]] = field(default_factory=dict)


async def _load(rt: StationRuntime, name: str, mc: ModelConfig, base: Path,
                running: ModelRunner | None) -> ModelRunner:
    try:
        return await load_beside(name, mc, base, running)
    except ModelLoadError as exc:
        raise ModelLoadError(f"station {rt.key}: {exc}") from None


class ModelLifecycle:
    def __init__(self, runtimes: Mapping[str, StationRuntime], runners: dict[str, ModelRunner],
                 config: Callable[[], AgentConfig], base_dir: Path, state_dir: Path,
                 stats: StatsRegistry, audit: Audit, submit: Callable[[Record], None],
                 drift: Mapping[str, DriftMonitor], evidence: EvidenceWriter | None) -> None:
        """`runners`: the loaded models by name (a promoted one is added); `config()`: the
        running config; `submit`: the record router; `evidence`: shadow disagreements'
        images (None: evidence off)."""
        self.runtimes = runtimes
        self.runners = runners
        self.config = config
        self.base_dir = base_dir
        self.state_dir = state_dir
        self.stats = stats
        self.audit = audit
        self.submit = submit
        self.drift = drift
        self.evidence = evidence
        self.stations: dict[str, StationModels] = {
            key: StationModels(rt.cfg.model) for key, rt in runtimes.items()}
        self._tasks: set[asyncio.Task[Any]] = set()

    # ------------------------------------------------------------ shadow
    def start(self) -> None:
        for rt in self.runtimes.values():
            if rt.cfg.shadow:
                self.set_shadow(rt, rt.cfg.shadow, self.runners[rt.cfg.shadow])

    def set_shadow(self, rt: StationRuntime, name: str | None,
                   runner: ModelRunner | None) -> None:
        sm = self.stations[rt.key]
        if sm.shadow is not None:  # on the loop: never waits for the frame in progress
            sm.shadow.stop(timeout=0)
        sm.shadow, sm.shadow_model = None, name
        if name is None or runner is None:
            return
        worker = rt.worker
        busy = lambda: worker.stats().busy_fraction  # noqa: E731
        where = self.state_dir / "shadow" / f"{rt.line}_{rt.name}"
        cfg = self.config()
        sm.shadow = ShadowRunner(rt.key, runner, lambda: list(rt.cfg.rules), busy,
                                 rt.cfg.shadow_options, where, self.evidence,
                                 {"site": cfg.site, "agent_id": cfg.agent_id})
        sm.shadow.start()
        log.info("station %s: model %s (sha256 %s) runs in shadow", rt.key, name,
                 runner.info.sha256[:12])

    # ------------------------------------------------------------ per inspection (loop)
    def after_inspection(self, rt: StationRuntime, insp: Inspection) -> None:
        """After the production verdict was acted on: guard, then offer to the shadow."""
        sm = self.stations.get(rt.key)
        if sm is None:
            return
        if sm.guard is not None and insp.model.sha256 == rt.runner.info.sha256:
            if sm.guard.active(time.monotonic()):
                trip = sm.guard.observe(insp, bool(frame_classes(insp, rt.cfg.rules)))
                if trip is not None:
                    self.rollback(rt, f"guard:{trip[0]}", trip[1])
            else:
                sm.guard = None
        if sm.shadow is not None:
            sm.shadow.offer(insp)

    # ------------------------------------------------------------ operator commands
    def command(self, rt: StationRuntime, action: str, model: str | None, source: str) -> None:
        if action == "promote":
            self._spawn(self.promote(rt, model, source))
        elif action == "rollback":
            self.rollback(rt, source, "operator rollback")

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def promote(self, rt: StationRuntime, model: str | None, source: str) -> bool:
        sm = self.stations[rt.key]
        name = model or sm.shadow_model
        if name is None:
            return self._refuse(rt, "promoted", source, name, "the station has no shadow model "
                                "and the command names none")
        models = self.config().models
        mc = models.get(name)
        if mc is None:
            return self._refuse(rt, "promoted", source, name, f"unknown model {name!r} "
                                f"(known: {', '.join(sorted(models))})")
        if sm.switching:
            return self._refuse(rt, "promoted", source, name, "a switch is in progress")
        sm.switching = True
        try:
            runner = await load_beside(name, mc, self.base_dir, rt.runner)
        except ModelLoadError as exc:
            return self._refuse(rt, "promoted", source, name, str(exc))
        finally:
            sm.switching = False
        self._adopt(name, runner, replace=False)
        self.switch(rt, name, runner, "promoted", source)
        return True

    def _adopt(self, name: str, runner: ModelRunner, replace: bool) -> None:
        """The model's stats under its name (`edge_agent_model_*{model}`): a name not loaded
        at start is registered; a reload's new settings replace the running instance."""
        runners = self.runners
        if name not in runners:
            runners[name] = runner
            stats_sources.model(self.stats, runners, name)
        elif replace:
            runners[name] = runner

    def switch(self, rt: StationRuntime, name: str, runner: ModelRunner, event: str,
               source: str) -> None:
        """The new runner (loaded, checked, warm) inspects from the next frame on."""
        sm = self.stations[rt.key]
        expected = None
        if sm.shadow is not None and sm.shadow.sha256 == runner.info.sha256:
            expected = sm.shadow.stats.snapshot()["ng_rate"]
            self.set_shadow(rt, None, None)  # the candidate is production now
        old = rt.use_runner(runner)
        sm.previous, sm.model = (sm.model, old), name
        sm.switches += 1
        sm.guard = None
        if rt.cfg.model_guard.window_s > 0:  # a fallback counts only where the old one had none
            sm.guard = ModelGuard(rt.cfg.model_guard, time.monotonic(), rt.cfg.latency_budget_ms,
                                  expected, runner.fallback and not old.fallback)
        self._announce(rt, event, source, old, runner, None)
        self._rebaseline(rt)
        trip = sm.guard.first_check() if sm.guard is not None else None
        if trip is not None:
            self.rollback(rt, f"guard:{trip[0]}", trip[1])

    def rollback(self, rt: StationRuntime, source: str, reason: str) -> bool:
        sm = self.stations[rt.key]
        if sm.previous is None:
            return self._refuse(rt, "rolled_back", source, None,
                                "no previous model to roll back to")
        name, runner = sm.previous
        old = rt.use_runner(runner)
        sm.previous, sm.guard, sm.model = None, None, name
        sm.rollbacks += 1
        self._announce(rt, "rolled_back", source, old, runner, reason)
        self._rebaseline(rt)
        if source.startswith("guard:"):
            text = alarm_text("model_rolled_back", reason=reason, guard=source[6:],
                              old=f"{old.info.name} {old.info.version} ({old.info.sha256[:12]})",
                              new=f"{runner.info.name} {runner.info.version}")
            cfg = self.config()
            self.submit(rollback_alarm(cfg.site, cfg.agent_id, rt.line, rt.name,
                                       rt.cfg.camera, text))
            log.error("station %s: %s", rt.key, text)
        return True

    # ------------------------------------------------------------ SIGHUP
    async def prepare_reload(self, new: AgentConfig) -> ReloadPlan:
        """Load every model the new config swaps in (production or shadow), beside the
        running ones; raises ModelLoadError naming the station, and then nothing changes."""
        plan = ReloadPlan()
        base = self.base_dir
        old_models = self.config().models
        for line, name, st in new.stations():
            rt = self.runtimes[f"{line}/{name}"]
            mc = new.models[st.model]
            running = self.stations[rt.key].model == st.model and mc == old_models.get(st.model)
            if (st.model != rt.cfg.model or mc != old_models.get(st.model)) and not running:
                plan.production[rt.key] = (st.model, await _load(rt, st.model, mc, base,
                                                                 rt.runner))
            if st.shadow != rt.cfg.shadow or (
                    st.shadow and new.models[st.shadow] != old_models.get(st.shadow)):
                runner = None
                if st.shadow is not None:
                    smc = new.models[st.shadow]
                    runner = (self.runners[st.shadow]
                              if smc == old_models.get(st.shadow) else
                              await _load(rt, st.shadow, smc, base, None))
                plan.shadows[rt.key] = (st.shadow, runner)
        return plan

    def apply_reload(self, plan: ReloadPlan) -> None:
        """After the new config is in place: switch and (re)start shadows."""
        for key, (name, runner) in plan.production.items():
            self._adopt(name, runner, replace=True)
            self.switch(self.runtimes[key], name, runner, "reloaded", "reload")
        for key, (shadow, srunner) in plan.shadows.items():
            self.set_shadow(self.runtimes[key], shadow, srunner)

    def _rebaseline(self, rt: StationRuntime) -> None:
        """Another model scores differently: drift starts a new baseline, not an alarm."""
        drift = self.drift.get(rt.key)
        if drift is not None:
            drift.rebaseline()

    # ------------------------------------------------------------ reporting
    def _announce(self, rt: StationRuntime, event: str, source: str, old: ModelRunner,
                  new: ModelRunner, reason: str | None) -> None:
        sm, cfg = self.stations[rt.key], self.config()
        sm.last = {"event": event, "source": source, "ok": True, "old_sha256": old.info.sha256,
                   "new_sha256": new.info.sha256, "model": sm.model, "reason": reason,
                   "time": time.time()}
        self.audit.write("model_switch", line=rt.line, station=rt.name, change=event, ok=True,
                      source=source,
                      model=sm.model, old_sha256=old.info.sha256, new_sha256=new.info.sha256,
                      old_version=old.info.version, new_version=new.info.version, reason=reason)
        self.submit(switch_record(cfg.site, cfg.agent_id, rt.line, rt.name,
                                  rt.cfg.camera, event, source, old.info, new.info, reason))
        log.warning("station %s: model %s: %s %s (%s) -> %s %s (%s)%s", rt.key, event,
                    old.info.name, old.info.version, old.info.sha256[:12], new.info.name,
                    new.info.version, new.info.sha256[:12], f": {reason}" if reason else "")

    def _refuse(self, rt: StationRuntime, event: str, source: str, name: str | None,
                why: str) -> bool:
        sm = self.stations[rt.key]
        sm.refused += 1
        sm.last = {"event": event, "source": source, "ok": False, "model": name,
                   "error": why, "time": time.time()}
        self.audit.write("model_switch", line=rt.line, station=rt.name, change=event,
                         source=source, model=name, ok=False, error=why)
        log.error("station %s: model not %s (%s): %s", rt.key, event.replace("_", " "),
                  source, why)
        return False

    def status(self) -> list[dict[str, Any]]:
        now = time.monotonic()
        out = []
        for key, sm in self.stations.items():
            rt = self.runtimes[key]
            g = sm.guard
            out.append({
                "station": key, "model": sm.model, "sha256": rt.runner.info.sha256,
                "version": rt.runner.info.version,
                "previous": sm.previous[0] if sm.previous else None,
                "guard": None if g is None or not g.active(now) else {
                    "remaining_s": round(g.cfg.window_s - (now - g.started), 1),
                    "frames": g.frames, "errors": g.errors, "overruns": g.overruns},
                "switches": sm.switches, "rollbacks": sm.rollbacks, "refused": sm.refused,
                "last": sm.last or None,
                "shadow": None if sm.shadow is None else {
                    "model": sm.shadow_model, "sha256": sm.shadow.sha256,
                    **sm.shadow.stats.snapshot()}})
        return out

    def samples(self) -> list[GaugeSample]:
        out: list[GaugeSample] = []
        for key, sm in self.stations.items():
            line, station = key.split("/", 1)
            lab = {"line": line, "station": station}
            out += [GaugeSample("edge_agent_model_switches_total", lab, float(sm.switches),
                                "production model switches (promote, reload, rollback)", "counter"),
                    GaugeSample("edge_agent_model_rollbacks_total", lab, float(sm.rollbacks),
                                "rollbacks to the previous model (guard or operator)", "counter"),
                    GaugeSample("edge_agent_model_switch_refused_total", lab, float(sm.refused),
                                "promotes, reload swaps and rollbacks refused", "counter")]
            if sm.shadow is not None:
                out += _shadow_samples(lab, sm.shadow.stats.snapshot())
        return out

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await asyncio.gather(*(asyncio.to_thread(sm.shadow.stop) for sm in self.stations.values()
                               if sm.shadow is not None))


def _shadow_samples(lab: dict[str, str], s: dict[str, Any]) -> list[GaugeSample]:
    out = [GaugeSample("edge_agent_shadow_frames_total", {**lab, "result": r}, float(v),
                       "shadow frames by result", "counter")
           for r, v in (("compared", s["compared"]), ("agree", s["agree"]),
                        ("error", s["errors"]))]
    out += [GaugeSample("edge_agent_shadow_skipped_total", {**lab, "why": k}, float(v),
                        "frames the shadow model did not run on", "counter")
            for k, v in s["skipped"].items()]
    for direction, key in (("ok_to_ng", "flips_ok_to_ng"), ("ng_to_ok", "flips_ng_to_ok")):
        out += [GaugeSample("edge_agent_shadow_flips_total",
                            {**lab, "direction": direction, "class": c}, float(v),
                            "frames whose verdict the shadow model flips, per class", "counter")
                for c, v in s[key].items()]
    for name, key, scale in (("agreement_ratio", "agreement", 1.0),
                             ("p99_seconds", "p99_ms", 0.001),
                             ("cpu_seconds_per_frame", "cpu_ms_per_frame", 0.001)):
        if s[key] is not None:
            out.append(GaugeSample(f"edge_agent_shadow_{name}", lab, float(s[key]) * scale,
                                   f"shadow model {name.replace('_', ' ')}"))
    return out
