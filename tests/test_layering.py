"""DESIGN.md's import direction, checked on the source: no import runs upward.

Every `.py` under each layer is parsed with `ast` (imports inside functions
count too): `ir/` imports only `ir` of ours and never onnx or TVM; `passes/`
only `ir` and itself; `targets/` only `ir`, `runtime` and itself; `runtime/`
nothing of ours and none of the compiler's heavy dependencies.
"""

from __future__ import annotations

import ast
from pathlib import Path

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
