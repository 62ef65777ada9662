"""The live view's frame tap: the newest inspection and verdict per station.

Called on the event loop for every inspection and verdict; while nobody watches the
console's live image it returns at once and holds nothing. While a viewer watches it
keeps a reference to the newest inspection (its frame included) and verdict per
station: no copy, no encoding here. The encoder thread (`live.py`) copies and draws.
It also keeps the last command outcomes by incident (small, bounded) for the defects page.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from agent.types import CommandOutcome, Inspection, Verdict
from agent.web.defects import Outcomes


@dataclass(frozen=True, slots=True)
class Tapped:
    inspection: Inspection
    verdict: Verdict | None


class FrameTap:
    def __init__(self) -> None:
        self.watching = False  # set by the live encoder while a viewer watches
        self._lock = threading.Lock()
        self._insp: dict[str, Inspection] = {}
        self._verdict: dict[str, Verdict] = {}
        self.outcomes = Outcomes()  # always: the defects page shows each incident's PLC outcome

    def on_outcome(self, outcome: CommandOutcome) -> None:
        self.outcomes.add(outcome)

    def on_inspection(self, key: str, insp: Inspection) -> None:
        if self.watching and insp.frame is not None:
            with self._lock:
                self._insp[key] = insp

    def on_verdict(self, v: Verdict) -> None:
        if self.watching:
            with self._lock:
                self._verdict[f"{v.line}/{v.station}"] = v

    def latest(self) -> dict[str, Tapped]:
        """Per station: the newest inspection and the newest verdict (for the banner)."""
        with self._lock:
            return {k: Tapped(i, self._verdict.get(k)) for k, i in self._insp.items()}

    def stop_watching(self) -> None:
        self.watching = False
        with self._lock:
            self._insp.clear()
            self._verdict.clear()
