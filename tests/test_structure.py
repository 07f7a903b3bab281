"""The package's shape: the pipeline runs one way.

Every efgen module's imports (module-level and inside functions) are read with ``ast``;
the tests fail on an import cycle between efgen modules, on a front-end module that
reaches into a later stage, and on any import of the repository's top-level ``sim/``
(the testbenches import efgen, never the other way round).
"""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "efgen"


def _module_name(path: Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PKG.rglob("*.py"))}


def _imports(path: Path, name: str) -> set[str]:
    """Every module ``path`` imports (absolute names; relative imports resolved)."""
    tree = ast.parse(path.read_text(), str(path))
    pkg = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = pkg.split(".")[:len(pkg.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            out.add(base)
            out.update(f"{base}.{a.name}" for a in node.names)   # submodules by name
    return out


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    return {m: {i for i in _imports(p, m) if i in mods and i != m} for m, p in mods.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_graph_is_read():
    g = _graph()
    assert len(g) > 40
    assert "efgen.frontend.ir" in g["efgen.frontend"]
    assert "efgen.model.engine" in g["efgen.model.evaluate"]


def test_cycle_finder_finds_a_planted_cycle():
    g = _graph()
    g["efgen.frontend.ir"] = g["efgen.frontend.ir"] | {"efgen.golden.model"}
    assert any({"efgen.frontend.ir", "efgen.golden.model"} <= set(c) for c in _cycles(g))


def test_no_import_cycles_between_efgen_modules():
    assert _cycles(_graph()) == []


def test_front_end_imports_no_later_stage():
    later = ("efgen.golden", "efgen.model", "efgen.hls", "efgen.rtl", "efgen.csim",
             "efgen.cosim", "efgen.report", "efgen.design", "efgen.flow", "efgen.sweep",
             "efgen.cli")
    bad = {m: sorted(i for i in deps if i.startswith(later))
           for m, deps in _graph().items() if m.startswith("efgen.frontend")}
    assert {m: v for m, v in bad.items() if v} == {}


def test_nothing_in_efgen_imports_the_testbenches():
    bad = [f"{m}: {i}" for m, p in _modules().items() for i in _imports(p, m)
           if i == "sim" or i.startswith("sim.")]
    assert bad == []
