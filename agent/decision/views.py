"""What the engine hands out: Decision, per-station views and plain stats."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from agent.types import Command, Record, Verdict


@dataclass(frozen=True)
class Decision:
    """The output of one engine call: verdicts for the PLC, commands, records for the MES."""

    verdicts: tuple[Verdict, ...] = ()
    commands: tuple[Command, ...] = ()
    records: tuple[Record, ...] = ()

    def __add__(self, other: Decision) -> Decision:
        return Decision(self.verdicts + other.verdicts, self.commands + other.commands,
                        self.records + other.records)


@dataclass(frozen=True)
class IncidentView:
    defect_class: str
    defect_code: int
    event_id: str
    opened: float  # monotonic
    frames: int
    peak_score: float


@dataclass(frozen=True)
class StationView:
    line: str
    station: str
    mode: str
    state: str  # ok | incident | inspection_impossible | fail_safe | stopped
    latched: bool
    latch_event_id: str | None
    open_incidents: tuple[IncidentView, ...]
    impossible_reason: str | None
    verdicts: dict[str, int]  # per result
    defects: int


@dataclass(frozen=True)
class EngineStats:
    verdicts: dict[str, int]  # per result: OK / NG / UNKNOWN
    defects: int  # incidents opened (= defect records)
    commands: dict[str, int]  # issued, per kind
    suppressed_stops: int  # stops not re-sent because the station was latched
    unrouted_commands: int  # commands not issued: no PLC target, or no signal mapped for them
    cooldown_suppressed: int  # confirmed defects that opened no incident (cool-down)
    rejected: dict[str, int]  # inspections refused, per reason
    fail_safe_actions: int  # episodes in which the fail-safe acted
    resets: int


@dataclass
class Counters:
    """The engine's running counts; `snapshot()` gives the frozen EngineStats."""

    verdicts: Counter[str] = field(default_factory=Counter)
    defects: int = 0
    commands: Counter[str] = field(default_factory=Counter)
    suppressed_stops: int = 0
    unrouted_commands: int = 0
    cooldown_suppressed: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    fail_safe_actions: int = 0
    resets: int = 0

    def snapshot(self) -> EngineStats:
        return EngineStats(
            verdicts=dict(self.verdicts), defects=self.defects, commands=dict(self.commands),
            suppressed_stops=self.suppressed_stops, unrouted_commands=self.unrouted_commands,
            cooldown_suppressed=self.cooldown_suppressed, rejected=dict(self.rejected),
            fail_safe_actions=self.fail_safe_actions, resets=self.resets)
