"""What each PLC's heartbeat says, and why: the status bits, a health check, metrics, alarms.

The heartbeat of a PLC means "every station mapped to this PLC inspects now" (all
stations when none is mapped to it). A paused station, a camera not streaming (stalled,
frozen, reconnecting), a failing model or a station without fresh inspections hold it;
so does the PLC refusing the heartbeat's own writes. `/healthz` and `/status` name the
reason in the `heartbeat:<plc>` check; a PLC that starts refusing writes raises an
`alarm` record on each of its stations (cleared when it accepts them again) and an
audit line.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from agent.audit import Audit
from agent.capture.base import SourceState
from agent.control.heartbeat import Heartbeat, StatusBits
from agent.health.metrics import GaugeSample
from agent.types import Record

if TYPE_CHECKING:
    from agent.decision.engine import DecisionEngine
    from agent.pipeline.station import StationRuntime

Check = Callable[[], tuple[bool, str]]
log = logging.getLogger(__name__)


class PlcHealth:
    def __init__(self, stations: Mapping[str, StationRuntime], heartbeats: Sequence[Heartbeat],
                 station_check: Callable[[Any], tuple[bool, str]],
                 degraded: Callable[[], bool], engine: DecisionEngine,
                 submit: Callable[[Record], None], audit: Audit) -> None:
        """`submit`: the record router (the refusal alarms)."""
        self._stations = stations
        self._heartbeats = heartbeats
        self._station_check = station_check
        self._degraded = degraded
        self._engine = engine
        self._submit = submit
        self._audit = audit
        self._raised: dict[str, tuple[str, float, list[str]]] = {}  # plc -> reason, since, ids

    def stations(self, plc: str | None) -> list[StationRuntime]:
        """The stations whose inspection this PLC's heartbeat vouches for."""
        every = list(self._stations.values())
        mine = [rt for rt in every if plc is not None and rt.cfg.plc == plc]
        return mine or every

    def bits(self, plc: str | None) -> StatusBits:
        """The status word for `plc` (None: the whole agent)."""
        stations = self.stations(plc)
        camera_ok = all(rt.camera.state is SourceState.STREAMING for rt in stations)
        model_ok = all(rt.monitor.consecutive_errors < rt.monitor.error_limit for rt in stations)
        paused = any(rt.paused for rt in stations)
        inspecting = all(self._station_check(rt)[0] for rt in stations)
        return StatusBits(healthy=camera_ok and model_ok and inspecting and not paused,
                          camera_ok=camera_ok, model_ok=model_ok, degraded=self._degraded(),
                          paused=paused)

    def faults(self, plc: str | None) -> list[str]:
        """Why the heartbeat of `plc` is held by the inspection chain (empty: it is not)."""
        out = []
        for rt in self.stations(plc):
            ok, why = self._station_check(rt)
            if not ok:
                out.append(f"station {rt.key} {why}")
            elif rt.camera.state is not SourceState.STREAMING:
                out.append(f"station {rt.key} camera {rt.camera.state.value}")
        return out

    def check(self, hb: Heartbeat) -> Check:
        """The `heartbeat:<plc>` health check: counting, or held and why."""
        def run() -> tuple[bool, str]:
            why = self.faults(hb.link.name)
            refusal = hb.refusal
            if refusal is not None:
                why.insert(0, f"plc {refusal.error} (for {time.monotonic() - refusal.since:.1f} s)")
            if why:
                return False, "held: " + "; ".join(why)
            return True, f"counting ({hb.stats().counter})"
        return run

    def gauges(self) -> Iterable[GaugeSample]:
        out: list[GaugeSample] = []
        for hb in self._heartbeats:
            labels = {"plc": hb.link.name}
            out.append(GaugeSample("edge_agent_plc_refusing_writes", labels,
                                   1.0 if hb.refusal is not None else 0.0,
                                   "1 while the PLC refuses the heartbeat's writes"))
        return out

    def watch(self) -> None:
        """Raise / clear the refusal alarm of every PLC whose refusal began or ended."""
        try:
            self._watch()
        except Exception:  # the health loop (READY, status) must go on
            log.exception("PLC refusal alarm failed")

    def _watch(self) -> None:
        for hb in self._heartbeats:
            name, refusal = hb.link.name, hb.refusal
            if refusal is not None and name not in self._raised:
                self._raise(name, refusal.error, refusal.since)
            elif refusal is None and name in self._raised:
                self._clear(name)

    def _raise(self, plc: str, error: str, since: float) -> None:
        reason = f"plc {plc} {error}"
        ids = []
        for rt in self.stations(plc):
            record = self._engine.alarm_record(rt.line, rt.name, "raised", reason=reason)
            if record is not None:
                ids.append(record.id)
                self._submit(record)
        self._raised[plc] = (reason, since, ids)
        self._audit.write("plc_refusing", plc=plc, error=error, alarm_ids=ids)

    def _clear(self, plc: str) -> None:
        reason, since, ids = self._raised.pop(plc)
        duration = time.monotonic() - since
        for rt, event_id in zip(self.stations(plc), ids, strict=False):
            record = self._engine.alarm_record(rt.line, rt.name, "cleared", reason=reason,
                                               duration_s=duration, trigger_event_id=event_id)
            if record is not None:
                self._submit(record)
        self._audit.write("plc_accepting", plc=plc, seconds=round(duration, 3))
