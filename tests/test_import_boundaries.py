"""Import direction stays one-way (docs/architecture.md): every `import` in the package — at the top of a
file or inside a function — is read from the source, resolved to a file, and checked against the rules.

- layers imports nothing of spec, engine, analysis, data, cli, build or graph;
- spec imports no torch (not even lazily) and nothing of engine internals, analysis internals, data
  internals, build or cli (only the torch-free schema modules of the sections it validates);
- data imports no layers, graph or build;
- engine imports nothing of analysis; analysis reopens a trained run only through engine.evaluate;
- only cli imports typer or rich; nothing but cli and __main__ imports cli; nothing imports the facade;
- no two files import each other at run time, directly or in a cycle — except the layer registry's lazy
  import of the families (registry → families → each family → registry). (``if TYPE_CHECKING:``
  imports are annotations and do not count for cycles; they do for the boundaries.)
"""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "layerforge"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


FILES = {module_name(p): p for p in sorted(PKG.rglob("*.py"))}


def _type_only(tree: ast.AST) -> set[int]:
    """ids of import nodes inside ``if TYPE_CHECKING:`` blocks (annotations only, never executed)."""
    out: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", getattr(node.test, "attr", None)) == "TYPE_CHECKING":
            out.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    return out


def imports_of(name: str, runtime_only: bool = False) -> set[str]:
    """Modules (dotted) that a file imports anywhere in it; ``from pkg import sub`` counts as ``pkg.sub``
    when ``sub`` is a module. ``runtime_only``: leave out ``if TYPE_CHECKING:`` imports."""
    path = FILES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = _type_only(tree) if runtime_only else set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for a in node.names:
                out.add(f"{target}.{a.name}" if f"{target}.{a.name}" in FILES else target)
    return out


GRAPH = {name: {m for m in imports_of(name) if m in FILES} for name in FILES}
RUNTIME = {name: {m for m in imports_of(name, runtime_only=True) if m in FILES} for name in FILES}
EXTERNAL = {name: imports_of(name) for name in FILES}


def _in(name: str, *packages: str) -> bool:
    return any(name == p or name.startswith(p + ".") for p in packages)


def _crossings(owner: str, forbidden: tuple[str, ...], allowed: tuple[str, ...] = ()) -> list[str]:
    return [f"{src} imports {dst}" for src, dsts in GRAPH.items() if _in(src, owner)
            for dst in dsts if _in(dst, *forbidden) and not _in(dst, *allowed)]


def test_layers_import_nothing_above_them():
    forbidden = tuple(f"layerforge.{p}" for p in ("spec", "engine", "analysis", "data", "cli", "build", "graph", "plugins"))
    assert _crossings("layerforge.layers", forbidden) == []


def test_spec_imports_no_torch_and_no_part_above_it():
    torch = [f"{n} imports {m}" for n, ms in EXTERNAL.items() if _in(n, "layerforge.spec")
             for m in ms if _in(m, "torch", "numpy")]
    assert torch == []
    schemas = ("layerforge.engine.schema", "layerforge.data.schema", "layerforge.analysis.profile_schema")
    forbidden = tuple(f"layerforge.{p}" for p in ("engine", "analysis", "data", "cli", "build", "graph"))
    assert _crossings("layerforge.spec", forbidden, allowed=schemas) == []


def test_data_imports_no_layers_graph_or_build():
    forbidden = ("layerforge.layers", "layerforge.graph", "layerforge.build", "layerforge.engine", "layerforge.analysis")
    assert _crossings("layerforge.data", forbidden) == []


def test_engine_imports_no_analysis_and_analysis_reopens_runs_only_through_load_trained():
    assert _crossings("layerforge.engine", ("layerforge.analysis",)) == []
    assert _crossings("layerforge.analysis", ("layerforge.engine",), allowed=("layerforge.engine.evaluate",)) == []


def test_only_the_cli_draws_and_nobody_imports_the_facade_or_the_cli():
    ui = [f"{n} imports {m}" for n, ms in EXTERNAL.items() if not _in(n, "layerforge.cli")
          for m in ms if _in(m, "typer", "rich")]
    assert ui == []
    cli_users = {src for src, dsts in GRAPH.items() if any(_in(d, "layerforge.cli") for d in dsts)}
    assert cli_users <= {n for n in FILES if _in(n, "layerforge.cli")} | {"layerforge.__main__"}
    facade = [f"{n} imports layerforge" for n, ms in GRAPH.items() if "layerforge" in ms and not _in(n, "layerforge.cli")
              and n != "layerforge"]
    assert facade == []


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one file (Tarjan)."""
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

    sys.setrecursionlimit(10_000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycle_between_files_except_the_registry_loading_its_families():
    graph = {k: set(v) - {k} for k, v in RUNTIME.items()}
    graph["layerforge.layers.registry"].discard("layerforge.layers.families")  # the one allowed lazy import
    graph["layerforge.layers"].discard("layerforge.layers.registry")  # a package re-exporting its own module
    assert _cycles(graph) == []


def test_the_checker_sees_lazy_imports_and_cycles():
    """The rules above cannot pass vacuously: the registry's lazy import is found, and it is a cycle."""
    assert "layerforge.layers.families" in GRAPH["layerforge.layers.registry"]
    assert "layerforge.build" in GRAPH["layerforge.engine.api"]  # a lazy import inside train()
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_validating_a_spec_in_the_spec_package_imports_no_torch():
    """(NumPy may come in: the data section's schema lives in the data package.)"""
    probe = ("import sys\nfrom layerforge.spec import Marks, apply_overrides, load_yaml, validate_mapping\n"
             "raw, marks = load_yaml('configs/cnn_digits.yaml')\n"
             "spec = validate_mapping(apply_overrides(raw, ['model.layers.conv1.filters=8'], marks), marks)\n"
             "assert spec.model.layers[0].filters == 8\n"
             "print([m for m in sys.modules if m == 'torch' or m.startswith('torch.')])\n")
    r = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "[]", r.stdout + r.stderr
