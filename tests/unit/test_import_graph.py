"""Imports flow one way: no cycle between agent's modules, nor between its packages.

Every import counts: module level, inside functions (lazy imports) and under
TYPE_CHECKING. `from pkg import mod` is an import of `pkg.mod`. Packages are the
first level below `agent` (`agent.protocols`, `agent.control`...; a top-level module
such as `agent.app` is a node of its own).
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import agent

ROOT = Path(agent.__file__).parent


def _modules() -> dict[str, Path]:
    mods = {}
    for path in ROOT.rglob("*.py"):
        parts = ["agent", *path.relative_to(ROOT).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        mods[".".join(parts)] = path
    return mods


def import_graph() -> dict[str, set[str]]:
    mods = _modules()
    edges: dict[str, set[str]] = defaultdict(set)
    for name, path in mods.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*up, base] if base else up)
                for a in node.names:
                    sub = f"{base}.{a.name}"
                    targets.append(sub if sub in mods else base)
            for t in targets:
                while t and t not in mods:  # `import a.b.c` of a name inside a module
                    t = t.rpartition(".")[0]
                if t and t != name and t != "agent":
                    edges[name].add(t)
    return edges


def package_of(module: str) -> str:
    return ".".join(module.split(".")[:2])


def package_graph(edges: dict[str, set[str]]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = defaultdict(set)
    for a, targets in edges.items():
        for b in targets:
            if package_of(a) != package_of(b):
                out[package_of(a)].add(package_of(b))
    return out


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _explain(graph: dict[str, set[str]], comps: list[list[str]]) -> str:
    lines = []
    for comp in comps:
        lines.append(" <-> ".join(comp))
        lines += [f"    {a} -> {b}" for a in comp for b in sorted(graph[a]) if b in comp]
    return "\n".join(lines)


def test_no_module_imports_back_into_a_cycle() -> None:
    graph = import_graph()
    assert len(graph) > 150  # the walk saw the whole package
    comps = cycles(graph)
    assert not comps, "import cycles between modules:\n" + _explain(graph, comps)


def test_packages_import_one_way() -> None:
    graph = package_graph(import_graph())
    comps = cycles(graph)
    assert not comps, "import cycles between packages:\n" + _explain(graph, comps)


# The layers of docs/architecture.md, lowest first: a package imports only from its own
# layer or below. A new top-level package or module must be placed here.
LAYERS = [
    ["agent.types", "agent.event_ids", "agent.logutil", "agent.backoff", "agent.tasks",
     "agent.lowprio", "agent.data"],
    ["agent.config"],
    ["agent.decision"],
    ["agent.protocols", "agent.capture", "agent.inference"],
    ["agent.plugins"],
    ["agent.configfile"],
    ["agent.audit", "agent.alarms", "agent.control", "agent.outbox", "agent.evidence",
     "agent.health"],
    ["agent.pipeline"],
    ["agent.runtime"],
    ["agent.web"],
    ["agent.app"],
    ["agent.runner", "agent.demo_view", "agent.logsetup"],
    ["agent.commands"],
    ["agent.cli", "agent.__main__"],
]


def test_packages_import_only_their_layer_or_below() -> None:
    rank = {pkg: i for i, layer in enumerate(LAYERS) for pkg in layer}
    graph = package_graph(import_graph())
    packages = set(graph) | {b for targets in graph.values() for b in targets}
    assert not packages - set(rank), f"place these in LAYERS: {sorted(packages - set(rank))}"
    upward = [f"{a} -> {b}" for a in sorted(graph) for b in sorted(graph[a]) if rank[b] > rank[a]]
    assert not upward, "imports against the layering:\n" + "\n".join(upward)


def test_the_check_sees_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]
    assert package_graph({"agent.x.m": {"agent.y.n"}, "agent.y.n": {"agent.x.k"}}) == {
        "agent.x": {"agent.y"}, "agent.y": {"agent.x"}}
