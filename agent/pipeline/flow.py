"""The station pipeline: inspection -> decision -> actions, on the event loop.

A station's inspection goes to the decision engine at once. The decision's commands go
to their PLC's dispatcher first (the stop path); what follows a command off the stop path
chains on its "sent" future (`CommandDispatcher.submit`, agent.pipeline.sends): its audit
line (the outcome handler), the decision's records (to the router, or to the evidence
capture that holds them for their image; in decision order per station), and the
inspection's bookkeeping (metrics, console tap, drift, model guard and shadow). Verdict
counters at once.
A triggered station's part is inspected here too (`inspect_part`, called by its PLC
trigger handshake), and `check_station` (the app's tick) raises and clears the alarm of a
station that cannot inspect.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from agent.audit import Audit
from agent.pipeline.sends import InOrder, Sent, when_sent
from agent.types import Command, Inspection, Record, Result, Verdict

if TYPE_CHECKING:
    from agent.control.dispatcher import CommandDispatcher
    from agent.decision.engine import Decision, DecisionEngine
    from agent.evidence.wiring import EvidenceWiring
    from agent.health.drift import DriftMonitor
    from agent.health.metrics import Metrics
    from agent.pipeline.outcomes import OutcomeHandler
    from agent.pipeline.station import StationRuntime

log = logging.getLogger("agent.app")  # the station lines keep the logger operators grep for


class Tap(Protocol):
    """The console's frame tap (agent.web.tap): the newest inspection and verdict."""

    def on_inspection(self, key: str, insp: Inspection) -> None: ...

    def on_verdict(self, v: Verdict) -> None: ...


@dataclass
class Tally:
    """What the pipeline counted: inspections, and per station its verdicts (by result),
    the last one and the last NG (for /status, the console and dialect sinks)."""

    inspections: int = 0
    verdict_counts: dict[str, dict[str, int]] = field(default_factory=dict)
    last_verdict: dict[str, str] = field(default_factory=dict)  # station key -> OK/NG/UNKNOWN
    last_defect: dict[str, Verdict] = field(default_factory=dict)


class StationPipeline:
    def __init__(self, engine: DecisionEngine, dispatchers: Mapping[str, CommandDispatcher],
                 outcomes: OutcomeHandler, submit: Callable[[Record], None],
                 evidence: EvidenceWiring | None, metrics: Metrics, tap: Tap,
                 drift: Mapping[str, DriftMonitor], audit: Audit,
                 after_inspection: Callable[[StationRuntime, Inspection], None],
                 stations: Mapping[str, StationRuntime], max_frames: int | None,
                 request_stop: Callable[[str], None]) -> None:
        """`submit`: the record router; `after_inspection`: the model lifecycle's guard and
        shadow; `request_stop`: called once `max_frames` inspections were made."""
        self.engine = engine
        self.dispatchers = dispatchers
        self.outcomes = outcomes
        self.submit = submit
        self.evidence = evidence
        self.metrics = metrics
        self.tap = tap
        self.drift = drift
        self.audit = audit
        self.after_inspection = after_inspection
        self.max_frames = max_frames
        self.request_stop = request_stop
        self.tally = Tally(verdict_counts={k: {r.value: 0 for r in Result} for k in stations})
        self.records = InOrder()

    # ------------------------------------------------------------ inspections
    def on_inspection(self, rt: StationRuntime, insp: Inspection) -> bool:
        """True when a command went to a PLC task (bookkeeping waits behind its send)."""
        now = time.monotonic()
        self.tally.inspections += 1
        rt.monitor.on_inspection(insp, rt.cfg.latency_budget_ms, now)
        if not rt.triggered:  # decide (and hand a stop to its PLC task) before bookkeeping
            sends = self.apply(self.engine.on_inspection(rt.line, rt.name, insp, now), insp)
            if sends:
                when_sent(sends, self.bookkeeping, rt, insp)
                return True
        self.bookkeeping(rt, insp)
        return False

    def bookkeeping(self, rt: StationRuntime, insp: Inspection) -> None:
        self.metrics.observe_inspection(rt.line, rt.name, insp)
        self.tap.on_inspection(rt.key, insp)
        self._observe_drift(rt, insp)
        self.after_inspection(rt, insp)  # model guard, then the shadow model
        limit = self.max_frames
        if limit is not None and self.tally.inspections >= limit:
            self.request_stop("max-frames reached")

    def _observe_drift(self, rt: StationRuntime, insp: Inspection) -> None:
        if not rt.cfg.drift.enabled or insp.error:
            return
        pixels = insp.frame.pixels if insp.frame is not None else None
        report = self.drift[rt.key].observe(pixels, insp)
        if report is not None:
            stats = dict(self.drift[rt.key].stats())
            self.submit(self.engine.drift_record(rt.line, rt.name, stats,
                                                 rt.cfg.drift.psi_threshold))
            self.audit.write("drift", line=rt.line, station=rt.name, stats=stats)

    async def inspect_part(self, rt: StationRuntime, part_id: str, t_trigger: float) -> Verdict:
        """Triggered mode: one verdict per part, UNKNOWN when no frame or inspection failed."""
        reason = rt.monitor.impossible_reason(time.monotonic(), triggered=True)
        insp = None if reason else await rt.inspect_after(t_trigger)
        if insp is None and reason is None:
            reason = f"no frame captured within {rt.cfg.trigger.frame_ms} ms after the trigger"
        if insp is not None:
            self.on_inspection(rt, insp)
        decision = self.engine.on_part(rt.line, rt.name, part_id, insp, time.monotonic(), reason)
        self.apply(decision, insp, triggered=True)
        for v in decision.verdicts:
            return v
        return Verdict(rt.line, rt.name, rt.camera.name, Result.UNKNOWN, -1, part_id=part_id,
                       reason=reason or "no verdict")

    # ------------------------------------------------------------ actions
    def apply(self, decision: Decision, insp: Inspection | None = None,
              triggered: bool = False) -> list[Sent]:
        """Commands first (the stop path), then records once they are sent (with evidence:
        held for their image), then counters. Returns the "sent" futures of the commands
        handed to a PLC (the caller chains its slow bookkeeping on them)."""
        sends = [s for s in map(self._send, decision.commands) if s is not None]
        if self.evidence is not None:
            route = functools.partial(self.evidence.on_decision, decision, insp, triggered)
        else:
            route = functools.partial(self._submit_all, decision.records)
        self.records.run(_station(decision), sends, route)
        tally = self.tally
        for v in decision.verdicts:
            self.metrics.observe_verdict(v)
            self.tap.on_verdict(v)
            key = f"{v.line}/{v.station}"
            counts = tally.verdict_counts.get(key)
            if counts is not None:
                counts[v.result.value] += 1
                tally.last_verdict[key] = v.result.value
            if v.result is Result.NG:
                tally.last_defect[key] = v
        return sends

    def _submit_all(self, records: tuple[Record, ...]) -> None:
        for r in records:
            self.submit(r)

    def _send(self, cmd: Command) -> Sent | None:
        """The stop path: hand the command to its PLC's dispatcher; its audit line follows
        once it is sent."""
        dispatcher = self.dispatchers.get(cmd.plc)
        if dispatcher is None:
            log.error("command %s for %s/%s: no PLC link %r", cmd.kind, cmd.line, cmd.station,
                      cmd.plc)
            self.outcomes.command_sent(cmd, None)
            return None
        sent = dispatcher.submit(cmd)
        self.outcomes.command_sent(cmd, sent)
        return sent

    def reset_station(self, line: str, station: str, source: str) -> None:
        self.audit.write("reset", line=line, station=station, source=source)
        self.apply(self.engine.reset(line, station, source, time.monotonic()))

    def check_station(self, rt: StationRuntime, now: float) -> None:
        """Raise (once) or clear the station's inspection-impossible alarm."""
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



def _station(decision: Decision) -> str:
    """The station a decision is about (the engine decides per station)."""
    for v in decision.verdicts:
        return f"{v.line}/{v.station}"
    for c in decision.commands:
        return f"{c.line}/{c.station}"
    for r in decision.records:
        return f"{r.line}/{r.station}"
    return ""
