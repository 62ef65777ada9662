"""PLC side of the daemon: links, command dispatchers, heartbeat, reset watch, triggers.

Everything is built with the app; `start()` connects the links and starts their
dispatchers, heartbeats and reset watches, `start_triggers()` (once the stations run)
the trigger handshakes. `stop()` and `close()` end only what was started.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING

from agent.capture.camera_trigger import camera_arm
from agent.config.station import StationSignals
from agent.control.counters import CommandCounters
from agent.control.dispatcher import CommandDispatcher
from agent.control.heartbeat import Heartbeat, StatusBits
from agent.control.reset_watch import ResetWatch
from agent.control.trigger import TriggerHandshake
from agent.health.registry import StatsRegistry
from agent.protocols.base import SinkContext
from agent.protocols.link import PlcLink
from agent.runtime.build import build_plc
from agent.types import CommandOutcome, Verdict

if TYPE_CHECKING:
    from agent.configfile import AgentConfig
    from agent.pipeline.station import StationRuntime

log = logging.getLogger(__name__)
InspectPart = Callable[["StationRuntime", str, float], Awaitable[Verdict]]


class PlcWiring:
    def __init__(self, config: Callable[[], AgentConfig], ctx: SinkContext,
                 stats: StatsRegistry, stations: Mapping[str, StationRuntime], *,
                 on_outcome: Callable[[CommandOutcome], None],
                 status_bits: Callable[[str], StatusBits],
                 reset_station: Callable[[str, str, str], None],
                 inspect_part: InspectPart) -> None:
        """`config()`: the running config (a reload replaces it); `status_bits(plc)`: the
        heartbeat's status word; `reset_station(line, station, source)`: a PLC reset;
        `inspect_part(rt, part_id, t_trigger)`: a triggered part."""
        self._config = config
        self._reset_station = reset_station
        cfg = config()
        self.links: dict[str, PlcLink] = {}
        self.dispatchers: dict[str, CommandDispatcher] = {}
        self.heartbeats: list[Heartbeat] = []
        self.resets: list[ResetWatch] = []
        self.triggers: list[TriggerHandshake] = []
        for name, pc in cfg.plcs.items():
            self.links[name] = link = build_plc(name, pc, ctx)
            stats.register("plc", link.stats, plc=name)
            mine = [(ln, sn, st) for ln, sn, st in cfg.stations() if st.plc == name]
            signals: dict[tuple[str, str], StationSignals] = {
                (ln, sn): st.signals for ln, sn, st in mine}
            pulses = {(ln, sn): st.reject_pulse_ms for ln, sn, st in mine}
            counters = CommandCounters.load(ctx.state_dir / f"plc-{name}.counters.json")
            self.dispatchers[name] = disp = CommandDispatcher(
                link, signals, on_outcome, reject_pulse_ms=pulses, counters=counters,
                request_timeout=pc.timeout_ms / 1000)
            stats.register("dispatcher", disp.stats, plc=name)
            if pc.heartbeat.counter or pc.heartbeat.status:
                hb = Heartbeat(link, pc.heartbeat, functools.partial(status_bits, name))
                self.heartbeats.append(hb)
                stats.register("heartbeat", hb.stats, plc=name)
            if pc.reset:
                rw = ResetWatch(link, pc.reset, self._on_plc_reset, poll_ms=_poll_ms(pc))
                self.resets.append(rw)
                stats.register("reset_watch", rw.stats, plc=name)
        for rt in stations.values():
            if not rt.triggered or rt.cfg.plc is None:
                continue
            trig = TriggerHandshake(
                self.links[rt.cfg.plc], rt.line, rt.name, rt.cfg.signals, rt.cfg.trigger,
                functools.partial(inspect_part, rt), _poll_ms(cfg.plcs[rt.cfg.plc]),
                arm=camera_arm(rt.camera.source))
            self.triggers.append(trig)
            stats.register("trigger", trig.stats, line=rt.line, station=rt.name,
                           plc=rt.cfg.plc)
        self._links_started: list[PlcLink] = []
        self._running: list[Heartbeat | ResetWatch] = []
        self._triggers_started: list[TriggerHandshake] = []

    async def start(self) -> None:
        for name, link in self.links.items():
            await link.start()
            self._links_started.append(link)
            await self.dispatchers[name].start()
            parts: list[Heartbeat | ResetWatch] = [*self.heartbeats, *self.resets]
            for part in parts:
                if part.link is link:
                    await part.start()
                    self._running.append(part)

    async def start_triggers(self) -> None:
        for trig in self.triggers:
            await trig.start()
            self._triggers_started.append(trig)

    def _on_plc_reset(self, plc_name: str) -> None:
        for ln, sn, st in self._config().stations():
            if st.plc == plc_name:
                self._reset_station(ln, sn, "plc")

    async def stop(self) -> None:
        """Triggers and heartbeat first (the PLC watchdog sees us go), then flush commands
        (every dispatcher: one never started still reports what was submitted to it)."""
        for t in self._triggers_started:
            await t.stop()
        for hb in [p for p in self._running if isinstance(p, Heartbeat)]:
            await hb.stop()
        for rw in [p for p in self._running if isinstance(p, ResetWatch)]:
            await rw.stop()
        self._triggers_started, self._running = [], []
        for d in self.dispatchers.values():
            try:
                await asyncio.wait_for(d.stop(), 3.0)
            except TimeoutError:  # cut short: its output task must not be left running
                log.error("command dispatcher did not flush within 3 s")
                await d.outputs.stop(0.0)
                await d.counters.close()

    async def close(self) -> None:
        for link in self._links_started:
            await link.close()
        self._links_started = []


def _poll_ms(pc: object) -> int:
    return int(getattr(pc, "poll_ms", getattr(pc, "subscribe_ms", 20)))
