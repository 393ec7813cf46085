"""Runs the FileCheck tests of passes (every `.hir` in this folder) through lit.

Each `.hir` carries its own `// RUN: hai ir %s --passes ... | filecheck %s` line
and `// CHECK:` expectations, written by hand from the pass's rule (the values in
them are worked out in each file's comment, not copied from our output).
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
BIN = ROOT / ".venv" / "bin"


def _tool(name: str) -> str | None:
    """A console script of the project's .venv (or of this interpreter's environment, or PATH)."""
    for folder in (BIN, Path(sys.executable).parent):
        if (folder / name).exists():
            return str(folder / name)
    return shutil.which(name)


def _hai_available() -> bool:
    if _tool("hai"):
        return True
    return importlib.util.find_spec("hai_compiler.cli") is not None


def test_filecheck_tests_pass() -> None:
    lit, filecheck = _tool("lit"), _tool("filecheck")
    if lit is None or filecheck is None:
        pytest.skip("lit or filecheck is not installed in .venv (pip install -e .[test])")
    if not _hai_available():
        pytest.skip("the `hai` CLI is neither on PATH nor importable as hai_compiler.cli")
    assert len(list(HERE.glob("*.hir"))) >= 6
    done = subprocess.run([lit, "-v", str(HERE)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-8000:] + done.stderr[-4000:]
    assert "Failed" not in done.stdout and "Passed" in done.stdout
