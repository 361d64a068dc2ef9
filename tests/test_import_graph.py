"""No import circles in ``spectra_eval`` or ``spectra_probe``.

Every module is parsed with :mod:`ast` (never imported), function-level imports included. An import statement
is an edge to every module it runs: ``import a.b.c`` runs ``a``, ``a.b`` (package ``__init__``) and ``a.b.c``;
``from a.b import c`` runs ``a``, ``a.b`` and, when ``c`` is a submodule, ``a.b.c``. Relative imports are resolved
against the importing module's package. A module's own ancestor packages are left out (Python initialises them
before the module whatever it imports, so that edge says nothing), except when the module takes a name defined
in the ancestor's ``__init__`` (``from pkg import NAME`` while ``pkg`` is still initialising: the real hazard).
Imports under ``if TYPE_CHECKING:`` are left out too: they never run (mypy reads them). Any strongly connected
component with more than one module is a circle; the test names every one with a path through it.
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
    """``{module: {modules of the packages its imports run}}`` (module docstring)."""
    known = set(files)

    def owner(name: str) -> str | None:  # the longest known prefix: `a.b.f` -> module `a.b` when f is a name in it
        parts = name.split(".")
        for i in range(len(parts), 0, -1):
            if ".".join(parts[:i]) in known:
                return ".".join(parts[:i])
        return None

    def prefixes(name: str) -> list[str]:  # `a.b.c` -> the known modules among a, a.b, a.b.c
        parts = name.split(".")
        return [p for p in (".".join(parts[:i]) for i in range(1, len(parts) + 1)) if p in known]

    graph: dict[str, set[str]] = {}
    for module, path in files.items():
        is_package = path.name == "__init__.py"
        parts = module.split(".")
        ancestors = {".".join(parts[:i]) for i in range(1, len(parts))}
        edges: set[str] = set()
        for node in _runtime_nodes(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    edges.update(p for p in prefixes(alias.name) if p not in ancestors)
            elif isinstance(node, ast.ImportFrom):
                base = _resolve(module, is_package, node.level, node.module)
                edges.update(p for p in prefixes(base) if p not in ancestors)
                for alias in node.names:
                    full = f"{base}.{alias.name}"
                    if full in known:
                        edges.add(full)
                    elif base in ancestors or (alias.name == "*" and base in known):
                        edges.add(base)  # a name from a package that is still initialising
                    elif owner(full) is not None and owner(full) not in ancestors:
                        edges.add(owner(full))
        edges.discard(module)
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
    # a package whose __init__ imports its children: a child taking a sibling module from it is no circle,
    # a child taking a name the __init__ defines is one
    (tmp_path / "spectra_probe" / "p").mkdir(parents=True)
    (tmp_path / "spectra_probe" / "__init__.py").write_text("")
    (tmp_path / "spectra_probe" / "p" / "__init__.py").write_text("from .m import M\nfrom .n import N\nVALUE = 1\n")
    (tmp_path / "spectra_probe" / "p" / "m.py").write_text("from spectra_probe.p import n\nM = 1\n")
    (tmp_path / "spectra_probe" / "p" / "n.py").write_text("def f():\n    from . import VALUE\nN = 1\n")
    graph = import_graph(module_files(tmp_path))
    assert graph["spectra_eval.a"] == {"spectra_eval.sub", "spectra_eval.sub.b"}
    assert graph["spectra_eval.sub.b"] == {"spectra_eval.c"}
    assert graph["spectra_eval.d"] == set()  # type-only imports do not run
    assert graph["spectra_probe.p.m"] == {"spectra_probe.p.n"}
    assert graph["spectra_probe.p.n"] == {"spectra_probe.p"}
    assert circles(graph) == [["spectra_eval.a", "spectra_eval.c", "spectra_eval.sub.b"],
                              ["spectra_probe.p", "spectra_probe.p.m", "spectra_probe.p.n"]]


def test_no_import_circles():
    graph = import_graph(module_files())
    found = circles(graph)
    assert not found, "import circles: " + "; ".join(" -> ".join(_cycle_in(c, graph)) for c in found)
