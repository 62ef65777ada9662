"""Per-rule finding filters: minimum score and region of interest."""

from __future__ import annotations

import math

from agent.config.station import DefectRule
from agent.types import Finding, Inspection

ACTION_RANK = {"alert": 0, "reject": 1, "stop": 2}
SEVERITY_RANK = {"minor": 0, "major": 1, "critical": 2}


def rule_text(rule: DefectRule) -> str:
    """Human-readable rule, e.g. 'scratch>=0.80 k2/n3 -> stop'."""
    return f"{rule.defect_class}>={rule.min_score:.2f} k{rule.k}/n{rule.n} -> {rule.action}"


def in_roi(rule: DefectRule, finding: Finding, frame_shape: tuple[int, int]) -> bool:
    """True when the finding's box centre lies inside the rule's ROI (edges included).

    Findings without a box are whole-frame results and always inside. When the
    frame size is unknown (0x0) the box cannot be placed, so it counts as inside:
    a possible defect is never thrown away for lack of a frame size.
    """
    if rule.roi is None or finding.box is None:
        return True
    height, width = frame_shape
    if width <= 0 or height <= 0:
        return True
    x1, y1, x2, y2 = finding.box
    cx, cy = (x1 + x2) / 2 / width, (y1 + y2) / 2 / height
    rx1, ry1, rx2, ry2 = rule.roi
    return rx1 <= cx <= rx2 and ry1 <= cy <= ry2


def passes(rule: DefectRule, finding: Finding, frame_shape: tuple[int, int]) -> bool:
    return (finding.label == rule.defect_class and math.isfinite(finding.score)
            and finding.score >= rule.min_score and in_roi(rule, finding, frame_shape))


def best_finding(rule: DefectRule, insp: Inspection) -> Finding | None:
    """The highest-scoring finding that passes the rule, or None."""
    matching = [f for f in insp.findings if passes(rule, f, insp.frame_shape)]
    return max(matching, key=lambda f: f.score, default=None)


def priority(rule: DefectRule, score: float) -> tuple[int, int, float]:
    """Sort key of the rule that decides a verdict: action, then severity, then score."""
    return ACTION_RANK[rule.action], SEVERITY_RANK[rule.severity], score
