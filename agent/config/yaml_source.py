"""YAML -> plain Python data, remembering the line of every key and value.

Secrets are interpolated here (see secrets.py) so that errors about them carry
the YAML line too. Duplicate keys are errors, not silently last-wins. Merge keys
(`<<: *defaults`) work as in PyYAML: own keys win, then the merged mappings in
order. Custom tags are errors naming their line. The composer (yaml_limits.py)
bounds alias expansion and nesting.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from agent.config.errors import ConfigIssue
from agent.config.secrets import SecretResolver
from agent.config.yaml_limits import BoundedLoader, LimitError

Path_ = tuple[str | int, ...]

_STD = "tag:yaml.org,2002:"
MAP, SEQ, MERGE = _STD + "map", _STD + "seq", _STD + "merge"
SCALAR_TAGS = {_STD + t for t in ("str", "int", "float", "bool", "null", "timestamp", "binary")}


@dataclass
class YamlDocument:
    data: Any
    lines: dict[Path_, int] = field(default_factory=dict)
    issues: list[ConfigIssue] = field(default_factory=list)
    secret_paths: set[Path_] = field(default_factory=set)  # values holding an interpolated secret

    def line_of(self, path: Path_) -> int | None:
        """Line of the deepest existing prefix of `path` (1-based)."""
        for n in range(len(path), -1, -1):
            line = self.lines.get(tuple(path[:n]))
            if line is not None:
                return line
        return None


def load_yaml(text: str, resolver: SecretResolver) -> YamlDocument:
    try:
        node = yaml.compose(text, Loader=BoundedLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        msg = f"malformed YAML: {exc.problem or exc}"
        if isinstance(exc, LimitError):
            msg = f"refused: {exc.problem}"
        return YamlDocument(None, issues=[ConfigIssue(line, "", msg)])
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        msg = f"character #x{exc.character:04x} is not allowed in YAML: {exc.reason}" if isinstance(
            exc.character, int) else f"malformed YAML: {exc.reason}"
        return YamlDocument(None, issues=[ConfigIssue(line, "", msg)])
    doc = YamlDocument(None)
    if node is None:
        doc.issues.append(ConfigIssue(1, "", "the file is empty"))
        return doc
    doc.data = _Walker(doc, resolver).walk(node, ())
    return doc


Entry = tuple[str, yaml.Node, yaml.Node, bool]  # key, key node, value node, came from a merge


class _Walker:
    def __init__(self, doc: YamlDocument, resolver: SecretResolver) -> None:
        self.doc = doc
        self.resolver = resolver
        self.constructor = yaml.SafeLoader("")

    def walk(self, node: yaml.Node, path: Path_) -> Any:
        self.doc.lines.setdefault(path, _line(node))
        if isinstance(node, yaml.MappingNode) and node.tag == MAP:
            return self._mapping(node, path)
        if isinstance(node, yaml.SequenceNode) and node.tag == SEQ:
            return [self.walk(item, (*path, i)) for i, item in enumerate(node.value)]
        if not isinstance(node, yaml.ScalarNode) or node.tag not in SCALAR_TAGS:
            return self._issue(node, path, f"unsupported tag {_tag(node.tag)}: this file takes "
                               "plain mappings, lists and values (no custom tags)")
        value = self._scalar(node, path)
        if isinstance(value, str) and "${" in value:
            return self._interpolate(value, path, _line(node))
        return value

    def _mapping(self, node: yaml.MappingNode, path: Path_) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, key_node, value_node, merged in self._entries(node, path):
            if key in out:
                if not merged:
                    self._issue(key_node, (*path, key), "duplicate key")
                continue
            self.doc.lines[(*path, key)] = _line(key_node)
            out[key] = self.walk(value_node, (*path, key))
        return out

    def _entries(self, node: yaml.MappingNode, path: Path_, merged: bool = False) -> list[Entry]:
        """Own keys first, then those of the merged mappings (`<<`) in order."""
        own: list[Entry] = []
        inherited: list[Entry] = []
        for key_node, value_node in node.value:
            if key_node.tag == MERGE:
                for src in self._merge_sources(value_node, path):
                    inherited += self._entries(src, path, merged=True)
                continue
            key = self._key(key_node, path)
            if key is not None:
                own.append((key, key_node, value_node, merged))
        return own + inherited

    def _merge_sources(self, node: yaml.Node, path: Path_) -> list[yaml.MappingNode]:
        items = node.value if isinstance(node, yaml.SequenceNode) else [node]
        if all(isinstance(i, yaml.MappingNode) and i.tag == MAP for i in items):
            return list(items)
        self._issue(node, path, "a merge key (<<) takes a mapping or a list of mappings")
        return []

    def _key(self, node: yaml.Node, path: Path_) -> str | None:
        if not isinstance(node, yaml.ScalarNode) or node.tag not in SCALAR_TAGS:
            self._issue(node, path, f"a key must be a plain value, not {_tag(node.tag)}")
            return None
        return str(self._scalar(node, path))

    def _scalar(self, node: yaml.ScalarNode, path: Path_) -> Any:
        try:
            return self.constructor.construct_object(node, deep=True)
        except (yaml.YAMLError, ValueError):
            return self._issue(node, path, f"{node.value[:40]!r} is not a valid {_tag(node.tag)}")

    def _interpolate(self, value: str, path: Path_, line: int) -> Any:
        try:
            out = self.resolver.interpolate(value)
        except ValueError as exc:
            dotted = ".".join(str(p) for p in path)
            self.doc.issues.append(ConfigIssue(line, dotted, str(exc)))
            return None
        self.doc.secret_paths.add(path)
        return out

    def _issue(self, node: yaml.Node, path: Path_, message: str) -> None:
        self.doc.issues.append(ConfigIssue(_line(node), ".".join(str(p) for p in path), message))
        return None


def _line(node: yaml.Node) -> int:
    return int(node.start_mark.line) + 1


def _tag(tag: str) -> str:
    return "!!" + tag[len(_STD):] if tag.startswith(_STD) else tag
