"""The packages import one another in one direction, and no files import each other in a loop.

Read from the source (every ``import``, function-local ones included), so a new back edge fails
here before it shows in the picture of docs/architecture.md.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("scorebridge", "queueing", "ml_core", "scoring_plugin", "lti", "workers")

# What each package may import among the others (the layers of docs/architecture.md).
ALLOWED = {
    "scorebridge": set(),
    "ml_core": set(),
    "queueing": {"scorebridge"},
    "scoring_plugin": {"scorebridge", "queueing", "ml_core"},
    "lti": {"scorebridge", "queueing", "scoring_plugin"},
    "workers": {"scorebridge", "queueing", "ml_core", "scoring_plugin", "lti"},
}
# ml_core is plain Python + torch: trained, benchmarked and tested without the web stack.
ML_CORE_FORBIDDEN = {"django", "celery", "kombu", "rest_framework", "lti_tool"}


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = defaultdict(set)
    for name, path in modules.items():
        for imported in _imports(path):
            # the longest known module the name lies in (a module, or a name in one)
            target = imported
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name:
                graph[name].add(target)
    return graph


def test_packages_import_only_downwards() -> None:
    wrong = []
    for module, targets in _graph().items():
        source = module.split(".")[0]
        for target in targets:
            package = target.split(".")[0]
            if package == source or package in ALLOWED[source]:
                continue
            wrong.append(f"{module} -> {target}")
    assert wrong == []


def test_no_packages_import_each_other_in_a_loop() -> None:
    # independent of ALLOWED: a loop stays wrong even if someone widens the table above
    packages: dict[str, set[str]] = defaultdict(set)
    for module, targets in _graph().items():
        packages[module.split(".")[0]] |= {t.split(".")[0] for t in targets}
    graph = {source: targets - {source} for source, targets in packages.items()}
    assert _cycles(graph) == []


def test_ml_core_imports_no_web_or_queue_framework() -> None:
    wrong = [
        f"{module}: {name}"
        for module, path in _modules().items()
        if module.startswith("ml_core")
        for name in _imports(path)
        if name.split(".")[0] in ML_CORE_FORBIDDEN | set(PACKAGES) - {"ml_core"}
    ]
    assert wrong == []


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in list(graph):
        if node not in index:
            visit(node)
    return found


def test_no_files_import_each_other_in_a_loop() -> None:
    # a package's __init__ re-exporting its own modules is not a loop between files
    graph = {
        module: {t for t in targets if not module.startswith(t + ".")}
        for module, targets in _graph().items()
    }
    assert _cycles(graph) == []


def test_the_cycle_finder_finds_a_loop() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
