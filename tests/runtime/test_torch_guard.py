"""The runtime warns when torch is importable: tvm_ffi would drag it into every process (+185 MB)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import importlib.util, sys, warnings
real_find_spec = importlib.util.find_spec
def find_spec(name, *args):  # pretend torch is installed; everything else is real
    return importlib.machinery.ModuleSpec("torch", None) if name == "torch" else real_find_spec(name, *args)
importlib.util.find_spec = find_spec
from runtime.kernel_library import TorchInEnvironmentWarning, import_tvm_ffi
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    import_tvm_ffi()
    import_tvm_ffi()  # once imported, no second warning
print(sum(issubclass(w.category, TorchInEnvironmentWarning) for w in caught))
print(caught[0].message if caught else "")
"""


def run(code: str) -> list[str]:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def test_warns_once_when_torch_is_importable() -> None:
    count, message = run(SCRIPT)
    assert count == "1"
    assert "torch is installed" in message and "185 MB" in message


def test_silent_without_torch() -> None:
    code = SCRIPT.split("importlib.util.find_spec = find_spec")[1]
    count = run("import importlib.util, warnings\n" + code)[0]
    assert count == "0"
