"""SIGHUP: load the config off the event loop, apply what can change live, refuse the rest.

Reading and parsing the file (up to 1 MiB of YAML, a second or two on a small
box) runs in a thread, never on the loop that drives the stop path and the PLC
heartbeat. One reload runs at a time; a SIGHUP during one asks for one more.
Every outcome is audited and logged in one line that names the errors, never
the file's text; a refusal keeps the running config and marks /healthz.
Under systemd each reload is RELOADING=1 ... READY=1, and STATUS= says "reload
refused: <first error>" until a reload is applied. A station whose `model:` (or its
model's settings, or its `shadow`) changed gets the new model loaded beside the running
one and switched between two frames (agent.runtime.model_lifecycle); a model that
cannot be loaded refuses the whole reload.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from agent.configfile import ConfigError, LoadedConfig, load_config
from agent.inference.errors import ModelLoadError
from agent.pipeline.records import station_routes

if TYPE_CHECKING:
    from agent.runtime.daemon import Daemon

log = logging.getLogger(__name__)

RESTART_ONLY = ("cameras", "plcs", "sinks", "state_dir", "evidence")


class Reloader:
    """Runs reloads one at a time; `request()` is the SIGHUP handler."""

    def __init__(self, agent: Daemon) -> None:
        self.agent = agent
        self._task: asyncio.Task[None] | None = None
        self._again = False

    def request(self) -> None:
        if self._task is not None and not self._task.done():
            self._again = True
            return
        self._task = asyncio.create_task(self._run(), name="config-reload")

    async def _run(self) -> None:
        while True:
            self._again = False
            health = self.agent.health
            told = health.reload_started()  # RELOADING=1
            try:
                await reload_config(self.agent)
            finally:
                if told:
                    health.reload_finished()  # STATUS= (refused: why), then READY=1
            if not self._again:
                return

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


async def reload_config(agent: Daemon) -> bool:
    """Validate the file again; apply rules, thresholds and mappings; refuse on any error."""
    path = agent.loaded.path
    try:
        new = await asyncio.to_thread(load_config, path)
    except ConfigError as exc:
        return _refuse(agent, exc.one_line())
    except Exception as exc:  # noqa: BLE001 - a reload never takes the daemon down
        log.debug("config reload of %s failed", path, exc_info=True)
        return _refuse(agent, f"{path}: cannot load ({type(exc).__name__})")
    fixed = [k for k in RESTART_ONLY if getattr(new.config, k) != getattr(agent.cfg, k)]
    if set(_station_keys(new)) != set(agent.stations):
        fixed.append("stations added/removed")
    if fixed:
        return _refuse(agent, f"needs a restart, not applied: {', '.join(fixed)}")
    try:  # a changed `model:` (or shadow) is loaded beside the running one first
        swaps = await agent.lifecycle.prepare_reload(new.config)
    except ModelLoadError as exc:
        return _refuse(agent, f"model not swapped, nothing applied: {exc}")
    agent.engine.update_config(new.config)
    for line, name, st in new.config.stations():
        agent.stations[f"{line}/{name}"].cfg = st
    agent.router.set_routes(station_routes(new.config))  # a station's `sinks:` may change
    agent.cfg = new.config
    agent.lifecycle.apply_reload(swaps)
    agent.reload_error = None
    log.info("config reloaded from %s", new.path)
    agent.audit.write("config_reload", ok=True)
    return True


def _refuse(agent: Daemon, why: str) -> bool:
    agent.reload_error = why
    log.error("config reload refused, running config kept: %s", why)
    agent.audit.write("config_reload", ok=False, error=why)
    return False


def _station_keys(loaded: LoadedConfig) -> list[str]:
    return [f"{ln}/{sn}" for ln, sn, _ in loaded.config.stations()]
