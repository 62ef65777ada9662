"""A YAML composer that refuses what would exhaust memory or the stack.

An alias bomb (`b: [*a, *a, ...]`, nine levels deep) is a few hundred bytes that
expand to hundreds of millions of nodes; a recursive alias (`a: &x [*x]`) never
ends; 5,000 nested brackets overflow Python's stack. The composer counts the
nodes the document expands to (an alias counts the whole subtree it repeats)
and the nesting depth while it builds the node graph, and stops at the line
where a limit is crossed, before anything is expanded.
"""

from __future__ import annotations

import yaml
from yaml.composer import ComposerError

MAX_NODES = 50_000  # after alias expansion; a 100-station line is ~8,000
MAX_DEPTH = 64  # the deepest key of a real config is ~8 levels


class LimitError(ComposerError):
    """The document crosses a limit; problem_mark is where."""


class BoundedLoader(yaml.SafeLoader):
    """SafeLoader whose composer bounds the expanded node count and the nesting depth."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._sizes: dict[int, int] = {}  # id(node) -> nodes it expands to, once complete
        self._depth = 0
        self._total = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            return self._alias()
        start = self.peek_event().start_mark
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise LimitError(None, None, f"nested deeper than {MAX_DEPTH} levels", start)
        self._count(1, start)
        node = super().compose_node(parent, index)
        self._depth -= 1
        if node is not None:
            self._sizes[id(node)] = 1 + sum(self._sizes[id(c)] for c in _children(node))
        return node

    def _alias(self) -> yaml.Node:
        event = self.get_event()
        anchor = event.anchor
        node = self.anchors.get(anchor)
        if node is None:
            raise ComposerError(None, None, f"found undefined alias {anchor!r}", event.start_mark)
        size = self._sizes.get(id(node))
        if size is None:
            raise LimitError(None, None, f"alias *{anchor} refers to a node that contains it "
                             "(a recursive alias)", event.start_mark)
        self._count(size, event.start_mark)
        return node

    def _count(self, n: int, mark: yaml.Mark) -> None:
        self._total += n
        if self._total > MAX_NODES:
            raise LimitError(None, None, f"the document expands to more than {MAX_NODES:,} "
                             "nodes (an alias bomb?)", mark)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return []
