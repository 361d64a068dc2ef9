"""No import circles in ``spectra_eval`` or ``spectra_probe``.

Every module is parsed with :mod:`ast` (never imported), function-level imports included. ``import a.b`` and
``from a import b`` are edges to the imported module, and ``from pkg import mod`` also to the submodule
``pkg.mod`` when it is one; relative imports are resolved against the importing module's package. A package's
``__init__`` counts as the package. Imports under ``if TYPE_CHECKING:`` are left out: they never run, so they
close no circle at run time (mypy reads them). Any strongly connected component with more than one module (or a module
importing itself) is a circle; the test names every one.
"""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("spectra_eval", "spectra_probe")


def module_files(root: Path = ROOT) -> dict[str, Path]:
    """``{dotted module name: file}`` for every ``.py`` file of the packages."""
    out = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


def _resolve(module: str, is_package: bool, level: int, name: str | None) -> str:
    if not level:
        return name or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join(base + ([name] if name else []))


def _runtime_nodes(tree: ast.AST):
    """Every node of ``tree`` except the bodies of ``if TYPE_CHECKING:`` (or ``typing.TYPE_CHECKING``) blocks."""
    todo = [tree]
    while todo:
        node = todo.pop()
        yield node
        if isinstance(node, ast.If) and ast.unparse(node.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING"):
            todo.extend(node.orelse)
            continue
        todo.extend(ast.iter_child_nodes(node))


def import_graph(files: dict[str, Path]) -> dict[str, set[str]]:
    """``{module: {imported module of the packages}}`` (module docstring)."""
    known = set(files)

    def owner(name: str) -> str | None:  # the longest known prefix: `a.b.c` -> module `a.b` if `a.b.c` is a name in it
        parts = name.split(".")
        for i in range(len(parts), 0, -1):
            if ".".join(parts[:i]) in known:
                return ".".join(parts[:i])
        return None

    graph: dict[str, set[str]] = {}
    for module, path in files.items():
        is_package = path.name == "__init__.py"
        edges: set[str] = set()
        for node in _runtime_nodes(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            targets = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = _resolve(module, is_package, node.level, node.module)
                targets = [base] + [f"{base}.{alias.name}" for alias in node.names if alias.name != "*"]
            for target in targets:
                hit = owner(target)
                if hit is not None and hit != module:
                    edges.add(hit)
        graph[module] = edges
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted, sorted by first name."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
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
    return sorted(found)


def _cycle_in(component: list[str], graph: dict[str, set[str]]) -> list[str]:
    """One concrete path a -> ... -> a inside a component (for the failure message)."""
    members = set(component)
    start = component[0]
    path, seen = [start], {start}
    while True:
        nxt = sorted(w for w in graph[path[-1]] if w in members)
        back = [w for w in nxt if w == start]
        if back and len(path) > 1:
            return path + [start]
        fresh = [w for w in nxt if w not in seen]
        if not fresh:  # fall back to the component itself
            return component
        path.append(fresh[0])
        seen.add(fresh[0])


def test_the_graph_is_read_from_the_real_tree():
    files = module_files()
    graph = import_graph(files)
    assert {"spectra_eval.cli", "spectra_eval.io", "spectra_probe.backends"} <= set(graph)
    assert "spectra_eval.validation" in graph["spectra_eval.io"]  # a module-level import


def test_function_level_and_submodule_imports_are_edges(tmp_path):
    pkg = tmp_path / "spectra_eval"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from spectra_eval.sub import b\n")
    (pkg / "sub" / "b.py").write_text("from ..c import X\n")
    (pkg / "c.py").write_text("import spectra_eval.a\nX = 1\n")
    (pkg / "d.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from spectra_eval.a import f\n")
    (tmp_path / "spectra_probe").mkdir()
    graph = import_graph(module_files(tmp_path))
    assert graph["spectra_eval.a"] == {"spectra_eval.sub", "spectra_eval.sub.b"}
    assert graph["spectra_eval.sub.b"] == {"spectra_eval.c"}
    assert graph["spectra_eval.d"] == set()  # type-only imports do not run
    assert circles(graph) == [["spectra_eval.a", "spectra_eval.c", "spectra_eval.sub.b"]]


def test_no_import_circles():
    graph = import_graph(module_files())
    found = circles(graph)
    assert not found, "import circles: " + "; ".join(" -> ".join(_cycle_in(c, graph)) for c in found)
