"""The `hai` command line: its entry point, the top of the CLI that nothing imports back.

Rule: importing a command module registers its commands on `app` (cli_app.py),
in the order `hai --help` lists them: model_commands.py (`hai ir`, `passes`, `targets`,
`interp`, `demo`, `samples`, `doctor`), quantize_commands.py (`quantize`),
compile_commands.py (`compile`, `run`), bench_commands.py (`bench`), pack_commands.py (`pack`,
`keygen`).
"""

from __future__ import annotations

import importlib
import signal

from hai_compiler.cli_app import app

_COMMAND_MODULES = (
    "model_commands",
    "quantize_commands",
    "compile_commands",
    "bench_commands",
    "pack_commands",
)
for _module in _COMMAND_MODULES:  # the order of `hai --help`
    importlib.import_module(f"hai_compiler.{_module}")

__all__ = ["app", "main"]


def main() -> None:
    """Entry point of the `hai` console script."""
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `hai ir m.onnx | head` ends quietly
    app(prog_name="hai")


if __name__ == "__main__":
    main()
