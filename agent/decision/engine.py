"""DecisionEngine: inspections -> verdicts, PLC commands and MES records. Pure: no I/O, no clock.

`now` (monotonic seconds) is passed in by the caller; event ids and wall times come
from injectable factories so tests are deterministic.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

from agent.config.station import StationConfig
from agent.decision import failsafe
from agent.decision.actions import incident_actions, part_reject
from agent.decision.commands import CommandIssuer
from agent.decision.evaluation import NG_STEPS, evaluate, frame_verdict, unknown_verdict
from agent.decision.records import RecordFactory
from agent.decision.state import StationState
from agent.decision.triggered import part_verdict, precheck
from agent.decision.validate import BAD_CLOCK, UNKNOWN_STATION, clock_ok, reject_reason
from agent.decision.views import Counters, Decision, EngineStats, IncidentView, StationView
from agent.logutil import RepeatLimiter
from agent.types import (
    CommandKind,
    CommandOutcome,
    Inspection,
    Record,
    Verdict,
    new_event_id,
    utc_now,
)

log = logging.getLogger(__name__)
DUPLICATE_PART = "duplicate_part_id"


class PlantConfig(Protocol):
    """What the engine reads of the root config (`AgentConfig` satisfies it)."""

    @property
    def site(self) -> str: ...
    @property
    def agent_id(self) -> str: ...
    def stations(self) -> list[tuple[str, str, StationConfig]]: ...


class DecisionEngine:
    """Per station and defect class: min_score, ROI, k-of-n, hysteresis, cool-down, action.

    - A confirmed defect opens one incident: one `defect` record and one action (alert: the
      record only; reject: REJECT; stop: STOP, latched until `reset`). Later frames of the
      incident update it silently; it closes after `clear_after` clean frames.
    - Continuous verdicts are NG for frames that show a confirmed defect, UNKNOWN on an
      inference error (the error frame counts neither as hit nor as clean), else OK.
    - Triggered (`on_part`): one verdict per part id, NG when a watched class is on the part,
      UNKNOWN when there is no trustworthy frame; a late OK becomes UNKNOWN. Each NG part
      whose deciding rule is reject/stop gets its own REJECT; stops still need k-of-n parts.
    - Bad input (unknown station, non-finite score/box/timing/clock, out-of-order frame seq,
      a second verdict for a part id) is refused, counted in `stats().rejected`, and leaves
      the station's state untouched.
    Not thread-safe: call it from one thread (the daemon's asyncio loop).
    """

    def __init__(self, cfg: PlantConfig, *, ids: Callable[[], str] = new_event_id,
                 wall: Callable[[], datetime] = utc_now) -> None:
        self._ids = ids
        self._counters = Counters()
        self._stations: dict[tuple[str, str], StationState] = {}
        self._limiters: dict[str, RepeatLimiter] = {}
        self._records = RecordFactory(cfg.site, cfg.agent_id, ids, wall)
        self._issuer = CommandIssuer(self._counters, self._records)
        self.update_config(cfg)

    # -- configuration -------------------------------------------------------------------
    def update_config(self, cfg: PlantConfig) -> None:
        """SIGHUP reload: new rules and mappings; stations that still exist keep their state."""
        stations = {}
        for line, name, st_cfg in cfg.stations():
            st = self._stations.get((line, name))
            if st is None:
                st = StationState.create(line, name, st_cfg)
            else:
                st.apply_config(st_cfg)
            stations[(line, name)] = st
        self._stations = stations
        self._records = RecordFactory(cfg.site, cfg.agent_id, self._ids, self._records.wall)
        self._issuer = CommandIssuer(self._counters, self._records)

    # -- continuous mode -----------------------------------------------------------------
    def on_inspection(self, line: str, station: str, insp: Inspection, now: float) -> Decision:
        st = self._accept(line, station, insp, now)
        if st is None:
            return Decision()
        if insp.error:
            verdict = unknown_verdict(st, f"inference error: {insp.error}", insp, now)
            return self._with_verdict(st, verdict, insp, Decision())
        outcomes = evaluate(st, insp, now, self._ids)
        verdict = frame_verdict(st, insp, now, [o for o in outcomes if o.step in NG_STEPS])
        acts = incident_actions(st, outcomes, insp, verdict, now, self._issuer, self._records,
                                self._counters)
        return self._with_verdict(st, verdict, insp, acts)

    # -- triggered mode ------------------------------------------------------------------
    def on_part(self, line: str, station: str, part_id: str, insp: Inspection | None,
                now: float, reason: str | None = None) -> Decision:
        st = self._station(line, station, now)
        if st is None:
            return Decision()
        if part_id in st.recent_parts:
            self._reject(st, DUPLICATE_PART, f"part {part_id!r} already has a verdict")
            return Decision()
        st.recent_parts.append(part_id)
        rejected = self._check(st, insp, now) if insp is not None else None
        check = precheck(insp, reason, rejected)
        if check.reason is not None or insp is None:
            verdict = unknown_verdict(st, check.reason or "no frame", insp, now, part_id=part_id)
            return self._with_verdict(st, verdict, insp, Decision())
        outcomes = evaluate(st, insp, now, self._ids)
        verdict, deciding = part_verdict(st, part_id, insp, now, outcomes)
        acts = incident_actions(st, outcomes, insp, verdict, now, self._issuer, self._records,
                                self._counters)
        acts += part_reject(st, deciding, insp, verdict, now, self._issuer, self._ids)
        return self._with_verdict(st, verdict, insp, acts)

    # -- fail-safe -----------------------------------------------------------------------
    def on_inspection_impossible(self, line: str, station: str, reason: str,
                                 now: float, since: float | None = None) -> Decision:
        """`since`: when it became impossible, if known to be earlier than `now`."""
        st = self._station(line, station, now)
        if st is None:
            return Decision()
        return failsafe.impossible(st, reason, now, self._issuer, self._records,
                                   self._counters, self._ids, since)

    def on_inspection_possible(self, line: str, station: str, now: float) -> Decision:
        st = self._station(line, station, now)
        return Decision() if st is None else failsafe.possible(st, now, self._records)

    # -- latch ---------------------------------------------------------------------------
    def reset(self, line: str, station: str, source: str, now: float) -> Decision:
        """Release a latched stop; always sends RESET to the PLC (its own latch may be set)."""
        st = self._station(line, station, now)
        if st is None:
            return Decision()
        latch, st.latch = st.latch, None
        self._counters.resets += 1
        log.warning("%s/%s: reset by %s (%s)", line, station, source,
                    f"latched since event {latch.event_id}" if latch else "was not latched")
        record = self._records.alarm(st, "reset", source=source,
                                     trigger_event_id=latch.event_id if latch else None)
        cmd = self._issuer.build(st, CommandKind.RESET, record.id, now, rule=f"reset by {source}")
        return Decision(records=(record,)) + self._issuer.issue(st, cmd, now)

    # -- records for other modules -------------------------------------------------------
    def outcome_record(self, outcome: CommandOutcome) -> Record:
        """The `stop` record (command outcome) for the MES side."""
        st = self._stations.get((outcome.command.line, outcome.command.station))
        return self._records.outcome(outcome, st.cfg.camera if st else None)

    def alarm_record(self, line: str, station: str, event: str, **fields: Any) -> Record | None:
        """An `alarm` record of a station for a fault outside the decision (a PLC refusing
        writes); None for a station that is not configured."""
        st = self._stations.get((line, station))
        return None if st is None else self._records.alarm(st, event, **fields)

    def drift_record(self, line: str, station: str, stats: dict[str, float],
                     threshold: float) -> Record:
        st = self._stations.get((line, station))
        return self._records.drift(line, station, st.cfg.camera if st else None, stats,
                                   threshold, st.last_model if st else None)

    # -- views ---------------------------------------------------------------------------
    def station_state(self, line: str, station: str) -> StationView:
        """Raises KeyError for a station that is not configured."""
        st = self._stations[(line, station)]
        rules = st.rules()
        incidents = tuple(
            IncidentView(cls, rules[cls].defect_code, inc.event_id, inc.opened, inc.frames,
                         inc.peak_score) for cls, inc in st.open_incidents().items())
        return StationView(
            line=line, station=station, mode=st.cfg.mode, state=st.state_name(),
            latched=st.latch is not None, latch_event_id=st.latch.event_id if st.latch else None,
            open_incidents=incidents, impossible_reason=st.episode.reason if st.episode else None,
            verdicts=dict(st.verdicts), defects=st.defects)

    def rule_windows(self, line: str, station: str) -> list[dict[str, Any]]:
        """Per rule: k, n, the window's marks (oldest first) and whether an incident is open."""
        st = self._stations[(line, station)]
        return [{"class": cls, "k": t.window.k, "n": t.window.n,
                 "marks": [{"hit": m.hit, "score": round(m.score, 3)} for m in t.window.window],
                 "confirmed": t.window.confirmed(), "open": t.incident is not None}
                for cls, t in st.tracks.items()]

    def stations(self) -> list[tuple[str, str]]:
        return list(self._stations)

    def stats(self) -> EngineStats:
        return self._counters.snapshot()

    # -- helpers -------------------------------------------------------------------------
    def _station(self, line: str, station: str, now: float) -> StationState | None:
        if not clock_ok(now):
            self._counters.rejected[BAD_CLOCK] += 1
            self._limiter("clock").failure("%s/%s: now=%r is not a monotonic time", line,
                                           station, now)
            return None
        st = self._stations.get((line, station))
        if st is None:
            self._counters.rejected[UNKNOWN_STATION] += 1
            self._limiter("unknown station").failure("%s/%s is not configured", line, station)
        return st

    def _accept(self, line: str, station: str, insp: Inspection,
                now: float) -> StationState | None:
        st = self._station(line, station, now)
        if st is None or self._check(st, insp, now) is not None:
            return None
        return st

    def _check(self, st: StationState, insp: Inspection, now: float) -> str | None:
        """Validate; an accepted inspection advances the station's sequence number."""
        reason = reject_reason(st, insp, now)
        if reason is not None:
            self._reject(st, reason, f"frame {insp.frame_seq} (last {st.last_seq})")
            return reason
        st.last_seq = insp.frame_seq
        st.last_model = insp.model
        self._limiter(f"{st.line}/{st.station}").recovered("inspections accepted again")
        return None

    def _reject(self, st: StationState, reason: str, detail: str) -> None:
        self._counters.rejected[reason] += 1
        self._limiter(f"{st.line}/{st.station}").failure("inspection refused (%s): %s",
                                                         reason, detail)

    def _limiter(self, what: str) -> RepeatLimiter:
        if what not in self._limiters:
            self._limiters[what] = RepeatLimiter(log, f"decision {what}")
        return self._limiters[what]

    def _with_verdict(self, st: StationState, verdict: Verdict, insp: Inspection | None,
                      acts: Decision) -> Decision:
        self._counters.verdicts[verdict.result.value] += 1
        st.verdicts[verdict.result.value] += 1
        out = Decision(verdicts=(verdict,)) + acts
        if st.cfg.publish_inspections:
            out += Decision(records=(self._records.inspection(st, verdict, insp),))
        return out
