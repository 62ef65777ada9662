"""Mutable per-station decision state: class tracks, incidents, latch, fail-safe episode."""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field

from agent.config.station import DefectRule, StationConfig
from agent.decision.kofn import KofN
from agent.types import ModelInfo

RECENT_PARTS = 256  # part ids remembered per station to refuse a second verdict


@dataclass
class Incident:
    """An open defect incident: opened once, updated by further frames, closed by hysteresis."""

    event_id: str
    opened: float  # monotonic
    frames: int = 1
    peak_score: float = 0.0
    clean_streak: int = 0


@dataclass
class ClassTrack:
    """k-of-n window and incident state of one defect class at one station."""

    window: KofN
    incident: Incident | None = None
    closed_at: float | None = None  # monotonic time the last incident closed (cool-down)

    @classmethod
    def for_rule(cls, rule: DefectRule) -> ClassTrack:
        return cls(window=KofN(rule.k, rule.n))


@dataclass
class Episode:
    """A fail-safe episode: inspection impossible since `since`."""

    since: float
    reason: str
    acted: bool = False
    event_id: str | None = None


@dataclass
class Latch:
    """A latched stop: stays until a reset."""

    event_id: str
    since: float


@dataclass
class StationState:
    line: str
    station: str
    cfg: StationConfig
    tracks: dict[str, ClassTrack] = field(default_factory=dict)
    last_seq: int | None = None
    latch: Latch | None = None
    episode: Episode | None = None
    recent_parts: deque[str] = field(default_factory=lambda: deque(maxlen=RECENT_PARTS))
    verdicts: Counter[str] = field(default_factory=Counter)
    defects: int = 0
    last_model: ModelInfo | None = None

    @classmethod
    def create(cls, line: str, station: str, cfg: StationConfig) -> StationState:
        state = cls(line=line, station=station, cfg=cfg)
        state.apply_config(cfg)
        return state

    def rules(self) -> dict[str, DefectRule]:
        return {r.defect_class: r for r in self.cfg.rules}

    def apply_config(self, cfg: StationConfig) -> None:
        """New rules: keep tracks (and open incidents) of classes still watched."""
        if self.cfg.camera != cfg.camera:
            self.last_seq = None  # a different camera numbers its frames afresh
        self.cfg = cfg
        tracks = {}
        for cls_name, rule in self.rules().items():
            track = self.tracks.get(cls_name) or ClassTrack.for_rule(rule)
            track.window.resize(rule.k, rule.n)
            tracks[cls_name] = track
        self.tracks = tracks

    def open_incidents(self) -> dict[str, Incident]:
        return {c: t.incident for c, t in self.tracks.items() if t.incident is not None}

    def state_name(self) -> str:
        if self.latch is not None:
            return "stopped"
        if self.episode is not None:
            return "fail_safe" if self.episode.acted else "inspection_impossible"
        return "incident" if self.open_incidents() else "ok"
