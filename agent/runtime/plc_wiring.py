"""PLC side of the daemon: links, command dispatchers, heartbeat, reset watch, triggers."""

from __future__ import annotations

import asyncio
import functools
import logging
from typing import TYPE_CHECKING

from agent.capture.camera_trigger import camera_arm
from agent.config.station import StationSignals
from agent.control.counters import CommandCounters
from agent.control.dispatcher import CommandDispatcher
from agent.control.heartbeat import Heartbeat, StatusBits
from agent.control.reset_watch import ResetWatch
from agent.control.trigger import TriggerHandshake
from agent.protocols.base import SinkContext
from agent.protocols.link import PlcLink
from agent.runtime.build import build_plc

if TYPE_CHECKING:
    from agent.app import Agent

log = logging.getLogger(__name__)


class PlcWiring:
    def __init__(self, agent: Agent, ctx: SinkContext) -> None:
        self.agent = agent
        self.ctx = ctx
        self.links: dict[str, PlcLink] = {}
        self.dispatchers: dict[str, CommandDispatcher] = {}
        self.heartbeats: list[Heartbeat] = []
        self.resets: list[ResetWatch] = []
        self.triggers: list[TriggerHandshake] = []

    async def start(self) -> None:
        cfg = self.agent.cfg
        for name, pc in cfg.plcs.items():
            link = build_plc(name, pc, self.ctx)
            await link.start()
            self.links[name] = link
            stats = self.agent.metrics.stats
            stats.register("plc", link.stats, plc=name)
            mine = [(ln, sn, st) for ln, sn, st in cfg.stations() if st.plc == name]
            signals: dict[tuple[str, str], StationSignals] = {
                (ln, sn): st.signals for ln, sn, st in mine}
            pulses = {(ln, sn): st.reject_pulse_ms for ln, sn, st in mine}
            counters = CommandCounters.load(self.ctx.state_dir / f"plc-{name}.counters.json")
            disp = CommandDispatcher(link, signals, self.agent.on_outcome,
                                     reject_pulse_ms=pulses, counters=counters,
                                     request_timeout=pc.timeout_ms / 1000)
            await disp.start()
            self.dispatchers[name] = disp
            stats.register("dispatcher", disp.stats, plc=name)
            if pc.heartbeat.counter or pc.heartbeat.status:
                hb = Heartbeat(link, pc.heartbeat, functools.partial(self.status_bits, name))
                await hb.start()
                self.heartbeats.append(hb)
                stats.register("heartbeat", hb.stats, plc=name)
            if pc.reset:
                rw = ResetWatch(link, pc.reset, self._on_plc_reset, poll_ms=_poll_ms(pc))
                await rw.start()
                self.resets.append(rw)
                stats.register("reset_watch", rw.stats, plc=name)

    async def start_triggers(self) -> None:
        for rt in self.agent.stations.values():
            if not rt.triggered or rt.cfg.plc is None:
                continue
            pc = self.agent.cfg.plcs[rt.cfg.plc]
            trig = TriggerHandshake(
                self.links[rt.cfg.plc], rt.line, rt.name, rt.cfg.signals, rt.cfg.trigger,
                functools.partial(self.agent.inspect_part, rt), _poll_ms(pc),
                arm=camera_arm(rt.camera.source))
            await trig.start()
            self.triggers.append(trig)
            self.agent.metrics.stats.register("trigger", trig.stats, line=rt.line,
                                              station=rt.name, plc=rt.cfg.plc)

    def status_bits(self, plc: str) -> StatusBits:
        """The heartbeat status of one PLC; held until health is wired (start-up)."""
        health = getattr(self.agent, "health", None)
        if health is None:
            return StatusBits(healthy=False, camera_ok=False, model_ok=False, degraded=False)
        return health.heartbeat_bits(plc)

    def _on_plc_reset(self, plc_name: str) -> None:
        for ln, sn, st in self.agent.cfg.stations():
            if st.plc == plc_name:
                self.agent.reset_station(ln, sn, "plc")

    async def stop(self) -> None:
        """Triggers and heartbeat first (the PLC watchdog sees us go), then flush commands."""
        for t in self.triggers:
            await t.stop()
        for hb in self.heartbeats:
            await hb.stop()
        for rw in self.resets:
            await rw.stop()
        for d in self.dispatchers.values():
            try:
                await asyncio.wait_for(d.stop(), 3.0)
            except TimeoutError:
                log.error("command dispatcher did not flush within 3 s")

    async def close(self) -> None:
        for link in self.links.values():
            await link.close()


def _poll_ms(pc: object) -> int:
    return int(getattr(pc, "poll_ms", getattr(pc, "subscribe_ms", 20)))
