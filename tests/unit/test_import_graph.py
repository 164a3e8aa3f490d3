"""The house stays one-way: no feature package imports one that (directly or not) imports it back.

A newcomer reads the layout top-down (api and cli over serving and curation, over bank, index, embedding and
selection); a cycle between packages would mean a room that cannot be understood on its own.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import fewshot_service

PACKAGE = Path(fewshot_service.__file__).parent


def _imported_modules(path: Path, module: str) -> set[str]:
    """Absolute names of the fewshot_service modules a file imports (TYPE_CHECKING imports included)."""
    is_package = path.name == "__init__.py"
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                parts = module.split(".")
                base = parts[: len(parts) - node.level + (1 if is_package else 0)]
                names.add(".".join(base + ([node.module] if node.module else [])))
            else:
                names.add(node.module or "")
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return {name for name in names if name.startswith("fewshot_service.")}


def package_graph() -> dict[str, set[str]]:
    """Edges between the first-level parts of fewshot_service (a package, or a module at the root)."""
    edges: dict[str, set[str]] = defaultdict(set)
    for path in PACKAGE.rglob("*.py"):
        relative = path.relative_to(PACKAGE.parent).with_suffix("")
        module = ".".join(relative.parts[:-1] if path.name == "__init__.py" else relative.parts)
        source = relative.parts[1] if len(relative.parts) > 1 else relative.parts[0]
        for target in _imported_modules(path, module):
            part = target.split(".")[1]
            if part != source.removesuffix(".py"):
                edges[source.removesuffix(".py")].add(part)
    return edges


def _reachable(edges: dict[str, set[str]], start: str) -> set[str]:
    seen: set[str] = set()
    todo = [start]
    while todo:
        for target in edges.get(todo.pop(), set()):
            if target not in seen:
                seen.add(target)
                todo.append(target)
    return seen


def test_no_package_imports_one_that_imports_it_back() -> None:
    edges = package_graph()
    cycles = sorted(f"{a} -> {b}" for a in edges for b in edges[a] if a in _reachable(edges, b))
    assert cycles == []


def test_the_graph_is_read_off_real_imports() -> None:
    edges = package_graph()  # guards the test above against a parser that sees nothing
    assert {"bank", "index", "embedding", "selection"} <= edges["serving"]
    assert "serving" in edges["curation"] and "serving" in edges["api"]


def test_the_package_root_holds_only_the_shared_vocabulary() -> None:
    root_modules = sorted(path.name for path in PACKAGE.glob("*.py"))
    assert len(root_modules) <= 8, root_modules
