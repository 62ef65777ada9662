"""YAML -> plain Python data, remembering the line of every key and value.

Secrets are interpolated here (see secrets.py) so that errors about them carry
the YAML line too. Duplicate keys are errors, not silently last-wins.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from agent.config.errors import ConfigIssue
from agent.config.secrets import SecretResolver

Path_ = tuple[str | int, ...]


@dataclass
class YamlDocument:
    data: Any
    lines: dict[Path_, int] = field(default_factory=dict)
    issues: list[ConfigIssue] = field(default_factory=list)

    def line_of(self, path: Path_) -> int | None:
        """Line of the deepest existing prefix of `path` (1-based)."""
        for n in range(len(path), -1, -1):
            line = self.lines.get(tuple(path[:n]))
            if line is not None:
                return line
        return None


def load_yaml(text: str, resolver: SecretResolver) -> YamlDocument:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        msg = f"malformed YAML: {exc.problem or exc}"
        return YamlDocument(None, issues=[ConfigIssue(line, "", msg)])
    doc = YamlDocument(None)
    if node is None:
        doc.issues.append(ConfigIssue(1, "", "the file is empty"))
        return doc
    doc.data = _Walker(doc, resolver).walk(node, ())
    return doc


class _Walker:
    def __init__(self, doc: YamlDocument, resolver: SecretResolver) -> None:
        self.doc = doc
        self.resolver = resolver
        self.constructor = yaml.SafeLoader("")

    def walk(self, node: yaml.Node, path: Path_) -> Any:
        self.doc.lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path)
        if isinstance(node, yaml.SequenceNode):
            return [self.walk(item, (*path, i)) for i, item in enumerate(node.value)]
        value = self.constructor.construct_object(node, deep=True)
        if isinstance(value, str) and "${" in value:
            return self._interpolate(value, path, node.start_mark.line + 1)
        return value

    def _mapping(self, node: yaml.MappingNode, path: Path_) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = str(self.constructor.construct_object(key_node, deep=True))
            line = key_node.start_mark.line + 1
            if key in out:
                dotted = ".".join(str(p) for p in (*path, key))
                self.doc.issues.append(ConfigIssue(line, dotted, "duplicate key"))
                continue
            self.doc.lines[(*path, key)] = line
            out[key] = self.walk(value_node, (*path, key))
        return out

    def _interpolate(self, value: str, path: Path_, line: int) -> Any:
        try:
            return self.resolver.interpolate(value)
        except ValueError as exc:
            dotted = ".".join(str(p) for p in path)
            self.doc.issues.append(ConfigIssue(line, dotted, str(exc)))
            return None


def read_text(path: Path) -> str:
    return path.read_text(encoding="utf-8")
