"""No import cycle between the packages of `bridge/`.

The graph is read from the source with `ast`, never by importing: a node is a subpackage
(`bridge.ami`) or a top-level module (`bridge.app`); an edge is any import of one from
another, wherever it is written (module level, inside a function, under TYPE_CHECKING), since
each is a dependency a reader has to follow. Imports within one package are not edges.
A failure names each cycle with the file and line of every import on it.
"""

from __future__ import annotations

import ast
import itertools
from collections import deque
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

Edge = tuple[str, int]  # the importing file (relative to the root) and line
Graph = dict[str, dict[str, Edge]]  # node -> node it imports -> one place it does


def _node(root: Path, parts: list[str]) -> str | None:
    """The graph node of module `parts` (e.g. ["bridge", "ami", "link"]), None outside it."""
    if len(parts) < 2 or parts[0] != root.name:
        return None
    return ".".join(parts[:2])


def _module_parts(root: Path, path: Path) -> list[str]:
    parts = [root.name, *path.relative_to(root).with_suffix("").parts]
    return parts[:-1] if parts[-1] == "__init__" else parts


def _imported(root: Path, path: Path, node: ast.Import | ast.ImportFrom) -> list[list[str]]:
    """The modules one import statement names, as dotted parts."""
    if isinstance(node, ast.Import):
        return [alias.name.split(".") for alias in node.names]
    if node.level:  # relative: from the importing module's package
        package = _module_parts(root, path)
        if path.name != "__init__.py":
            package = package[:-1]
        base = package[: len(package) - (node.level - 1)]
    else:
        base = []
    base = [*base, *(node.module.split(".") if node.module else [])]
    if len(base) >= 2:
        return [base]
    # `from bridge import pbx_events, ami`: each name is the module imported.
    return [[*base, alias.name] for alias in node.names]


def package_graph(root: Path) -> Graph:
    """The package-level import graph of the package directory `root` (e.g. `bridge/`)."""
    graph: Graph = {}
    for path in sorted(root.rglob("*.py")):
        source = _node(root, _module_parts(root, path))
        if source is None:  # the package's own __init__
            continue
        graph.setdefault(source, {})
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for statement in ast.walk(tree):
            if not isinstance(statement, ast.Import | ast.ImportFrom):
                continue
            for parts in _imported(root, path, statement):
                target = _node(root, parts)
                if target is not None and target != source:
                    where = (str(path.relative_to(root.parent)), statement.lineno)
                    graph[source].setdefault(target, where)
    return graph


def cycle_groups(graph: Graph) -> list[list[str]]:
    """Strongly connected groups of more than one node (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, {})):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(groups)


def a_cycle(graph: Graph, group: list[str]) -> list[str]:
    """One shortest cycle through the group's first node, staying inside the group."""
    start = group[0]
    inside = set(group)
    came_from: dict[str, str] = {}
    queue = deque([start])
    while queue:
        v = queue.popleft()
        for w in sorted(graph.get(v, {})):
            if w not in inside:
                continue
            if w == start:
                path = [v]
                while path[-1] != start:
                    path.append(came_from[path[-1]])
                return [start, *reversed(path[:-1]), start]
            if w not in came_from:
                came_from[w] = v
                queue.append(w)
    return [start]


def describe(graph: Graph, cycle: list[str]) -> str:
    steps = [cycle[0]]
    for a, b in itertools.pairwise(cycle):
        file, line = graph[a][b]
        steps.append(f"  -> {b}  ({file}:{line})")
    return "\n".join(steps)


def explain(graph: Graph, group: list[str]) -> str:
    """One cycle of the group step by step, then every import that keeps the group tied."""
    edges = [
        f"  {a} -> {b}  ({file}:{line})"
        for a in group
        for b, (file, line) in sorted(graph[a].items())
        if b in group
    ]
    return (
        f"cycle among {', '.join(group)}:\n{describe(graph, a_cycle(graph, group))}\n"
        "imports inside the group:\n" + "\n".join(edges)
    )


def test_no_import_cycle_between_the_packages_of_bridge() -> None:
    graph = package_graph(ROOT / "bridge")
    groups = cycle_groups(graph)
    report = "\n\n".join(explain(graph, group) for group in groups)
    assert not groups, f"import cycles between packages of bridge/:\n\n{report}"


def _write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root / "pkg"


def test_the_graph_sees_every_kind_of_import(tmp_path: Path) -> None:
    """Function-level, TYPE_CHECKING, relative and `from pkg import module` imports all count;
    imports inside one package and of other libraries do not."""
    root = _write(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/top.py": "from pkg import events\n",
            "pkg/events.py": "import json\n",
            "pkg/a/__init__.py": "from pkg.a.inner import x\n",
            "pkg/a/inner.py": "def f():\n    from pkg.b import y\n",
            "pkg/b/__init__.py": (
                "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..c import z\n"
            ),
            "pkg/c/__init__.py": "from . import d\nfrom .d import w\n",
            "pkg/c/d.py": "import pkg.top\n",
        },
    )
    graph = package_graph(root)
    assert {v: sorted(ws) for v, ws in graph.items()} == {
        "pkg.top": ["pkg.events"],
        "pkg.events": [],
        "pkg.a": ["pkg.b"],
        "pkg.b": ["pkg.c"],
        "pkg.c": ["pkg.top"],
    }
    assert graph["pkg.a"]["pkg.b"] == ("pkg/a/inner.py", 2)
    assert cycle_groups(graph) == []


def test_a_cycle_is_found_and_named_with_its_imports(tmp_path: Path) -> None:
    root = _write(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/a/__init__.py": "from pkg.b import thing\n",
            "pkg/b/__init__.py": "def later():\n    from pkg.c.mod import other\n",
            "pkg/c/mod.py": "from pkg import a\n",
            "pkg/d.py": "from pkg.a import thing\n",
        },
    )
    graph = package_graph(root)
    (group,) = cycle_groups(graph)
    assert group == ["pkg.a", "pkg.b", "pkg.c"]
    cycle = a_cycle(graph, group)
    assert cycle == ["pkg.a", "pkg.b", "pkg.c", "pkg.a"]
    text = describe(graph, cycle)
    assert "-> pkg.c  (pkg/b/__init__.py:2)" in text
    assert "-> pkg.a  (pkg/c/mod.py:1)" in text
    assert "pkg.d" not in explain(graph, group)  # imports the cycle, is not part of it
