"""DESIGN.md's import direction, checked on the source: no import runs upward.

Every `.py` under each layer is parsed with `ast` (imports inside functions
count too): `ir/` imports only `ir` of ours and never onnx or TVM; `passes/`
only `ir` and itself; `targets/` only `ir`, `runtime` and itself; `runtime/`
nothing of ours and none of the compiler's heavy dependencies. And our modules
import each other without a circle: the graph of the imports that run when a
module is imported has no cycle (networkx), nor has it counting the imports
inside functions too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx
import pytest

ROOT = Path(__file__).resolve().parents[1]
OURS = {"hai_compiler", "ir", "passes", "targets", "runtime"}

ALLOWED_OURS = {
    "ir": {"ir"},
    "passes": {"ir", "passes"},
    "targets": {"ir", "runtime", "targets"},
    "runtime": {"runtime"},
}
FORBIDDEN_THIRD_PARTY = {
    "ir": {"onnx", "onnxruntime", "tvm", "torch"},
    "passes": {"onnx", "onnxruntime", "tvm", "torch"},
    "targets": {"onnx", "onnxruntime", "torch"},
    "runtime": {"tvm", "onnx", "onnxruntime", "lark", "networkx", "torch", "typer", "rich"},
}


def imported_top_modules(source: str, package: str) -> list[tuple[int, str]]:
    """(line, top-level module) of every import in `source`; relative imports resolve to `package`."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name.split(".")[0]) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            top = package if node.level else (node.module or "").split(".")[0]
            found.append((node.lineno, top))
    return sorted(found)


def forbidden(layer: str, top: str) -> bool:
    return (top in OURS and top not in ALLOWED_OURS[layer]) or top in FORBIDDEN_THIRD_PARTY[layer]


def layering_violations(layer: str, files: list[Path]) -> list[str]:
    problems = []
    for path in files:
        shown = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path.name
        for line, top in imported_top_modules(path.read_text(), layer):
            if forbidden(layer, top):
                problems.append(f"{shown}:{line}: {layer}/ must not import {top}")
    return problems


def layer_files(layer: str) -> list[Path]:
    return sorted((ROOT / layer).rglob("*.py"))


@pytest.mark.parametrize("layer", sorted(ALLOWED_OURS))
def test_layer_imports_only_downward(layer: str) -> None:
    files = layer_files(layer)
    if not files:
        pytest.skip(f"{layer}/ has no Python files yet")
    assert layering_violations(layer, files) == []


def test_core_layers_exist() -> None:
    assert layer_files("ir") and layer_files("passes")


def test_checker_catches_upward_and_relative_imports(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text(
        "import numpy\nfrom . import graph\n"
        "def f():\n    import passes.manager\n    from hai_compiler import cli\n"
        "import onnx.helper\n"
    )
    found = layering_violations("ir", [bad])
    assert [p.split(": ", 1)[1] for p in found] == [
        "ir/ must not import passes",
        "ir/ must not import hai_compiler",
        "ir/ must not import onnx",
    ]
    runtime_ok = tmp_path / "ok.py"
    runtime_ok.write_text("import numpy\nimport tvm_ffi\nfrom .arena import Arena\n")
    assert layering_violations("runtime", [runtime_ok]) == []
    runtime_bad = tmp_path / "rt.py"
    runtime_bad.write_text("from tvm import relax\nimport ir.graph\n")
    assert len(layering_violations("runtime", [runtime_bad])) == 2


PACKAGES = ("hai_compiler", "ir", "passes", "targets", "runtime")


def module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def runs_on_import(statement: ast.stmt) -> list[ast.stmt]:
    """The statements inside `statement` that run when its module is imported: a plain `if`'s (not
    `if TYPE_CHECKING:`) and a `try`'s, never a function's or a class's."""
    if isinstance(statement, ast.If) and "TYPE_CHECKING" not in ast.unparse(statement.test):
        return statement.body + statement.orelse
    if isinstance(statement, ast.Try):
        return (
            statement.body
            + statement.orelse
            + statement.finalbody
            + [s for h in statement.handlers for s in h.body]
        )
    return []


def imports_of(tree: ast.Module, lazy: bool) -> list[ast.Import | ast.ImportFrom]:
    """The module's imports: those that run when it is imported, and with `lazy` those inside functions."""
    if lazy:
        return [
            n
            for n in ast.walk(tree)
            if isinstance(n, (ast.Import, ast.ImportFrom)) and not _typing_only(n, tree)
        ]
    found: list[ast.Import | ast.ImportFrom] = []
    pending: list[ast.stmt] = list(tree.body)
    while pending:
        statement = pending.pop()
        if isinstance(statement, (ast.Import, ast.ImportFrom)):
            found.append(statement)
        pending += runs_on_import(statement)
    return found


def _typing_only(node: ast.AST, tree: ast.Module) -> bool:
    return any(
        isinstance(s, ast.If) and "TYPE_CHECKING" in ast.unparse(s.test) and node in list(ast.walk(s))
        for s in tree.body
    )


def import_graph(files: list[Path], root: Path = ROOT, lazy: bool = False) -> nx.DiGraph:
    """Our modules and their imports of each other (`from P import M` names module P.M when there is
    one, else P); a submodule's import of its own package's `__init__` is not implied."""
    names = {module_name(path, root): path for path in files}
    graph = nx.DiGraph()
    for name, path in names.items():
        graph.add_node(name)
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in imports_of(ast.parse(path.read_text()), lazy):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                base = node.module or ""
                if node.level:
                    parts = package.split(".")
                    base = ".".join([*parts[: len(parts) - node.level + 1], *([base] if base else [])])
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in names else base for a in node.names]
            graph.add_edges_from((name, target) for target in targets if target in names and target != name)
    return graph


def our_files() -> list[Path]:
    return [path for package in PACKAGES for path in sorted((ROOT / package).rglob("*.py"))]


def test_our_modules_import_each_other_without_cycles() -> None:
    """Importing any module of ours runs no import of a module whose import is under way."""
    assert [" -> ".join(c) for c in nx.simple_cycles(import_graph(our_files()), length_bound=8)] == []


def test_lazy_imports_close_no_cycle() -> None:
    """With the imports inside functions counted too, our modules import each other without a circle."""
    graph = import_graph(our_files(), lazy=True)
    found = [sorted(c) for c in nx.strongly_connected_components(graph) if len(c) > 1]
    assert found == []


def test_cycle_finder_sees_a_cycle_through_a_package_init(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("from pkg.a import A\n")
    (package / "a.py").write_text("from typing import TYPE_CHECKING\nfrom pkg import helper\nA = 1\n")
    (package / "helper.py").write_text("if TYPE_CHECKING:\n    import pkg.a\ndef f():\n    import pkg\n")
    (package / "b.py").write_text("from . import a\nfrom pkg import B\n")
    files = sorted(package.glob("*.py"))
    graph = import_graph(files, tmp_path)
    assert set(graph.edges) == {
        ("pkg", "pkg.a"),
        ("pkg.a", "pkg.helper"),
        ("pkg.b", "pkg.a"),
        ("pkg.b", "pkg"),
    }
    assert list(nx.simple_cycles(graph)) == []
    cycle = [("pkg", "pkg.a"), ("pkg.a", "pkg.helper"), ("pkg.helper", "pkg")]
    assert sorted(nx.find_cycle(import_graph(files, tmp_path, lazy=True))) == cycle
    (package / "helper.py").write_text("try:\n    import pkg\nexcept ImportError:\n    pass\n")
    assert sorted(nx.find_cycle(import_graph(files, tmp_path))) == cycle
