"""Guards on a newly promoted model, and the per-frame verdict they and shadow mode share.

After a promote (or a reload that swapped a station's model) the new model is watched
for `model_guard.window_s`. A guard trips on: `max_errors` inference errors, `max_overruns`
frames over the latency budget, a provider fallback, or (once `min_frames` were
inspected) an NG rate outside the shadow NG rate of the same model +/- the band. Pure:
the caller feeds inspections and acts on the reason returned (a rollback).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from agent.config.lifecycle import ModelGuardConfig
from agent.config.station import DefectRule
from agent.decision.rules import passes
from agent.types import Inspection

# guard names: the `guard:<name>` source of a rollback (audit, record, runbook)
GUARD_ERRORS = "errors"
GUARD_BUDGET = "budget"
GUARD_DEFECT_RATE = "defect_rate"
GUARD_FALLBACK = "fallback"
GUARDS = (GUARD_ERRORS, GUARD_BUDGET, GUARD_DEFECT_RATE, GUARD_FALLBACK)


def frame_classes(insp: Inspection, rules: list[DefectRule]) -> frozenset[str]:
    """The defect classes this one frame shows under the station's rules (score and ROI;
    no k-of-n): empty = OK. Production and shadow are compared frame by frame on this."""
    return frozenset(r.defect_class for r in rules for f in insp.findings
                     if f.label == r.defect_class and passes(r, f, insp.frame_shape))


@dataclass
class ModelGuard:
    cfg: ModelGuardConfig
    started: float  # monotonic
    budget_ms: float
    expected_ng_rate: float | None  # the candidate's NG rate in shadow, None = unknown
    fallback: bool  # the new model is not on its first-choice provider
    frames: int = 0
    ng: int = 0
    errors: int = 0
    overruns: int = 0
    tripped: str | None = field(default=None)

    def active(self, now: float) -> bool:
        return self.tripped is None and now - self.started < self.cfg.window_s

    def first_check(self) -> tuple[str, str] | None:
        """A guard that trips before any frame (the provider fell back)."""
        if self.cfg.on_fallback and self.fallback:
            return self._trip(GUARD_FALLBACK, "the new model is not on its first-choice provider")
        return None

    def observe(self, insp: Inspection, ng: bool) -> tuple[str, str] | None:
        """(guard, reason) when this inspection trips a guard, else None."""
        self.frames += 1
        if insp.error is not None:
            self.errors += 1
            if self.errors >= self.cfg.max_errors:
                return self._trip(GUARD_ERRORS, f"{self.errors} inference errors within "
                                  f"{self.frames} frames (max {self.cfg.max_errors}): "
                                  f"{insp.error}")
            return None
        self.ng += ng
        if insp.timings.total_ms > self.budget_ms:
            self.overruns += 1
            if self.overruns >= self.cfg.max_overruns:
                return self._trip(GUARD_BUDGET, f"{self.overruns} frames over the latency "
                                  f"budget of {self.budget_ms:g} ms (max {self.cfg.max_overruns})")
        return self._rate_check()

    def _rate_check(self) -> tuple[str, str] | None:
        ok = self.frames - self.errors
        if self.expected_ng_rate is None or ok < self.cfg.min_frames:
            return None
        rate, band = self.ng / ok, self.cfg.defect_rate_band
        if abs(rate - self.expected_ng_rate) > band:
            return self._trip(GUARD_DEFECT_RATE, f"NG rate {rate:.3f} over {ok} frames is "
                              f"outside {self.expected_ng_rate:.3f} +/- {band:g} (its rate "
                              f"in shadow)")
        return None

    def _trip(self, guard: str, reason: str) -> tuple[str, str]:
        self.tripped = guard
        return guard, reason
