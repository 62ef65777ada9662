"""Configuration errors that name the YAML line and the dotted key path."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class ConfigIssue:
    line: int | None
    path: str  # dotted key path, e.g. "lines.line1.stations.st1.camera"
    message: str

    def format(self, filename: str) -> str:
        where = f"{filename}:{self.line}" if self.line else filename
        key = f" {self.path}:" if self.path else ""
        return f"{where}:{key} {self.message}"


class ConfigError(Exception):
    """All problems found in one configuration file, reported together."""

    def __init__(self, filename: str, issues: Sequence[ConfigIssue]) -> None:
        self.filename = filename
        self.issues = sorted(issues, key=lambda i: (i.line or 0, i.path))
        super().__init__(self.render())

    def render(self) -> str:
        head = f"{self.filename}: {len(self.issues)} configuration error(s)"
        return "\n".join([head, *("  " + i.format(self.filename) for i in self.issues)])

    def one_line(self, most: int = 10) -> str:
        """The first `most` issues on one line (a log line, an audit field)."""
        shown = "; ".join(i.format(self.filename) for i in self.issues[:most])
        more = f"; and {len(self.issues) - most} more" if len(self.issues) > most else ""
        return f"{len(self.issues)} configuration error(s): {shown}{more}".replace("\n", " ")
