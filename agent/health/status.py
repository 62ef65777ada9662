"""Named health checks: each returns (ok, detail); /healthz is healthy when all are ok."""

from __future__ import annotations

import logging
from collections.abc import Callable

log = logging.getLogger(__name__)

Check = Callable[[], tuple[bool, str]]


class HealthChecks:
    """Registry of named checks. A check that raises counts as failing, with the error."""

    def __init__(self) -> None:
        self._checks: dict[str, Check] = {}

    def register(self, name: str, fn: Check) -> None:
        if name in self._checks:
            raise ValueError(f"health check {name!r} is already registered")
        self._checks[name] = fn

    def names(self) -> list[str]:
        return list(self._checks)

    def results(self) -> dict[str, tuple[bool, str]]:
        """Every check's (ok, detail), in registration order."""
        return {name: self._run(name, fn) for name, fn in self._checks.items()}

    def evaluate(self) -> tuple[bool, dict[str, str]]:
        """(healthy, failing checks as name -> detail)."""
        failing = {name: detail for name, (ok, detail) in self.results().items() if not ok}
        return not failing, failing

    @staticmethod
    def _run(name: str, fn: Check) -> tuple[bool, str]:
        try:
            ok, detail = fn()
        except Exception as exc:
            log.debug("health check %s raised", name, exc_info=True)
            return False, f"check raised {type(exc).__name__}: {exc}"
        return bool(ok), str(detail)
