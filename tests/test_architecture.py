"""The package's import graph has no cycles: each module depends only on modules below it.

The graph counts every ``import`` in the package, including those inside functions (a lazy import
hides a cycle, it does not remove it); only imports under ``if TYPE_CHECKING:`` are left out. The
layering is described in docs/architecture.md.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "jwt_wsgi"


def _module_name(path: Path) -> tuple[str, list[str]]:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
        return ".".join(parts), parts
    return ".".join(parts), parts[:-1]


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    hidden: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            hidden.update(id(child) for child in ast.walk(node))
    return hidden


def import_graph() -> dict[str, set[str]]:
    """Module name -> the package modules it imports."""
    files = {name: (path, package) for path in PACKAGE.rglob("*.py") for name, package in [_module_name(path)]}
    graph: dict[str, set[str]] = {name: set() for name in files}
    for name, (path, package) in files.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        hidden = _type_checking_nodes(tree)
        for node in ast.walk(tree):
            if id(node) in hidden:
                continue
            targets: list[str] = []
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package[: len(package) - (node.level - 1)]
                    module = ".".join(base + ([node.module] if node.module else []))
                else:
                    module = node.module or ""
                targets = [module, *(f"{module}.{alias.name}" for alias in node.names)]
            elif isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            graph[name].update(t for t in targets if t in graph and t != name)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_package_has_no_import_cycles() -> None:
    assert cycles(import_graph()) == []


def test_the_cycle_finder_sees_a_cycle() -> None:
    # The check above must be able to fail: a two-module loop and a three-module loop are found.
    graph = {"a": {"b"}, "b": {"a"}, "c": {"d"}, "d": {"e"}, "e": {"c"}, "f": set()}
    assert cycles(graph) == [["a", "b"], ["c", "d", "e"]]


def test_the_graph_sees_lazy_imports() -> None:
    # keys.py imports remote.py inside a function (only deployments with a JWK Set URL load it).
    assert "jwt_wsgi.remote" in import_graph()["jwt_wsgi.keys"]


def test_leaf_modules_import_nothing_above_them() -> None:
    graph = import_graph()
    for leaf in ("jwt_wsgi.claims", "jwt_wsgi.context", "jwt_wsgi._version", "jwt_wsgi.errors"):
        assert graph[leaf] == set(), leaf
    assert graph["jwt_wsgi.jose"] <= {"jwt_wsgi.errors"}
    assert graph["jwt_wsgi.net"] <= {"jwt_wsgi.errors"}
