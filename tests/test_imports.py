"""The package's import graph: no module imports itself round a circle, and the engines stay free of
the directors.

Every module under ``m2m/`` is read with ``ast`` (nothing is imported), and every ``import`` and
``from ... import`` in it counts, at the top or inside a function, under ``TYPE_CHECKING`` or not:
a circle that only closes at call time still ties the modules together. ``from package import name``
counts as importing the submodule when ``name`` is one, else the package.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "m2m"


def module_files() -> dict[str, Path]:
    """Dotted module name -> its file, for every module of the package (``__init__`` names the package)."""
    modules = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def imported_names(tree: ast.AST, module: str, is_package: bool) -> Iterator[str]:
    """Every dotted name ``tree`` imports, relative imports resolved against ``module``."""
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            for alias in node.names:
                yield f"{source}.{alias.name}"  # a submodule when it is one; else resolved to ``source``


def import_graph() -> dict[str, set[str]]:
    """Module -> the package modules it imports (itself left out)."""
    files = module_files()
    graph: dict[str, set[str]] = {}
    for module, path in files.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        targets = set()
        for name in imported_names(tree, module, path.name == "__init__.py"):
            while name and name not in files:  # an attribute of a module: the module it lives in
                name = name.rpartition(".")[0]
            if name and name != module:
                targets.add(name)
        graph[module] = targets
    return graph


def reachable(graph: Mapping[str, set[str]], start: str) -> set[str]:
    """The modules ``start`` imports, directly or through others."""
    seen, todo = set(), [start]
    while todo:
        for target in graph.get(todo.pop(), ()):
            if target not in seen:
                seen.add(target)
                todo.append(target)
    return seen


def import_cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """One circle ``[a, b, ..., a]`` for each group of modules that import each other round a circle."""
    reach = {module: reachable(graph, module) for module in graph}
    cycles, seen = [], set()
    for module in sorted(graph):
        if module in seen or module not in reach[module]:
            continue
        group = {m for m in reach[module] if module in reach[m]}
        seen |= group
        cycles.append(_circle_through(graph, module, group))
    return cycles


def _circle_through(graph: Mapping[str, set[str]], start: str, group: set[str]) -> list[str]:
    """The shortest circle from ``start`` back to it within ``group`` (breadth-first)."""
    came_from: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for module in frontier:
            for target in sorted(graph[module] & group):
                if target == start:
                    path = [module]
                    while path[-1] != start:
                        path.append(came_from[path[-1]])
                    return [*reversed(path), start]
                if target not in came_from:
                    came_from[target] = module
                    following.append(target)
        frontier = following
    raise AssertionError(f"{start} is not on a circle")


def test_the_graph_is_read():
    graph = import_graph()
    assert "m2m.music.composer" in graph and "m2m.cues" in graph["m2m.music.base"]


def test_no_import_cycle():
    cycles = import_cycles(import_graph())
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(cycle) for cycle in cycles)


def test_the_engines_do_not_import_the_directors():
    """Stage 5 reads cues (m2m.cues); the directors and their LLM client are stages 1-4's."""
    graph = import_graph()
    for module in sorted(m for m in graph if m == "m2m.music" or m.startswith("m2m.music.")):
        found = reachable(graph, module) & {"m2m.directives", "m2m.llm"}
        assert not found, f"{module} imports {', '.join(sorted(found))} (directly or through other modules)"


def test_import_cycles_names_each_circle():
    graph = {"a": {"b"}, "b": {"c", "a"}, "c": {"a"}, "d": {"e", "a"}, "e": {"d"}, "f": {"a"}}
    assert import_cycles(graph) == [["a", "b", "a"], ["d", "e", "d"]]
    assert import_cycles({"a": {"b"}, "b": set()}) == []


def test_importing_an_engine_loads_no_director():
    """At import time too: package ``__init__`` files run first, which the graph above leaves out."""
    probe = ("import sys, m2m.music, m2m.music.composer, m2m.music.musicgen, m2m.music.library, m2m.music.render; "
             "print(sorted(m for m in sys.modules if m in ('m2m.directives', 'm2m.llm', 'm2m.director')))")
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120,
                         check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"
