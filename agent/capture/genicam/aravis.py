"""Loading Aravis through PyGObject, with an error that says how to install it."""

from __future__ import annotations

from functools import cache
from typing import Any

INSTALL_HINT = (
    "install the Debian packages gir1.2-aravis-0.8 and python3-gi and make `gi` reachable "
    "from the venv (scripts/setup.sh does both)")


class AravisMissing(RuntimeError):
    """Aravis or PyGObject cannot be imported; the message says what to install."""


@cache
def _load() -> tuple[Any, str | None]:
    try:
        import gi

        gi.require_version("Aravis", "0.8")
        from gi.repository import Aravis
    except (ImportError, ValueError) as exc:
        return None, f"{type(exc).__name__}: {exc}"
    return Aravis, None


def aravis() -> Any:
    """The `Aravis` module (gi.repository.Aravis 0.8); raises AravisMissing."""
    module, why = _load()
    if module is None:
        raise AravisMissing(f"type: genicam needs Aravis 0.8 through PyGObject ({why}); {INSTALL_HINT}")
    return module


def aravis_missing() -> str | None:
    """None when Aravis loads, else the reason with the install hint."""
    try:
        aravis()
    except AravisMissing as exc:
        return str(exc)
    return None
