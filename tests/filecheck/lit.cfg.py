"""lit configuration of the FileCheck tests of passes: each `.hir` here runs its own `// RUN:` lines.

`hai` is the console script when it is installed in the project's .venv (or on
PATH), otherwise `python -m hai_compiler` with the repository on PYTHONPATH;
`filecheck` is the Python FileCheck from the .venv.
"""

# ruff: noqa: F821  (lit injects `config`)

import os
import shutil
import sys
from pathlib import Path

import lit.formats

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = ROOT / ".venv" / "bin"
PYTHON = VENV_BIN / "python" if (VENV_BIN / "python").exists() else Path(sys.executable)

config.name = "hai-passes"
config.test_format = lit.formats.ShTest(execute_external=False)
config.suffixes = [".hir"]
config.test_source_root = os.path.dirname(__file__)
config.environment["PATH"] = os.pathsep.join([str(VENV_BIN), os.environ.get("PATH", "")])
config.environment["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))

installed = shutil.which("hai", path=config.environment["PATH"])
HAI = installed if installed else f"{PYTHON} -m hai_compiler"
# `hai` as a command word only: at the start of a RUN line or after a pipe.
config.substitutions.append((r"(?<![\w/.%-])hai(?=\s)", HAI))
