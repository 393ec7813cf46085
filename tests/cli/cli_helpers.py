"""Helpers of the CLI tests: small ONNX models, running `hai` in-process or as a process, error checks."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import onnx
from onnx import TensorProto, helper
from typer.testing import CliRunner, Result

from hai_compiler.cli import app

ROOT = Path(__file__).resolve().parents[2]
OPSET = [helper.make_opsetid("", 17)]


def save_model(
    path: Path, nodes: list, inputs: list, outputs: list, opsets: list = OPSET, name: str = "test"
) -> Path:
    graph = helper.make_graph(nodes, name, inputs, outputs)
    model = helper.make_model(graph, opset_imports=opsets)
    onnx.save(model, str(path))
    return path


def add_relu_model(path: Path, out_name: str = "out") -> Path:
    """out = Relu(x + y), x and y float32 [2, 3]."""
    f32 = TensorProto.FLOAT
    return save_model(
        path,
        [helper.make_node("Add", ["x", "y"], ["s"], name="add"), helper.make_node("Relu", ["s"], [out_name])],
        [helper.make_tensor_value_info("x", f32, [2, 3]), helper.make_tensor_value_info("y", f32, [2, 3])],
        [helper.make_tensor_value_info(out_name, f32, [2, 3])],
    )


def symbolic_model(path: Path) -> Path:
    """y = Relu(x), x float32 ['batch', 4]."""
    f32 = TensorProto.FLOAT
    return save_model(
        path,
        [helper.make_node("Relu", ["x"], ["y"], name="relu")],
        [helper.make_tensor_value_info("x", f32, ["batch", 4])],
        [helper.make_tensor_value_info("y", f32, ["batch", 4])],
    )


def invoke(*args: str | os.PathLike[str]) -> Result:
    """Run `hai ARGS` in-process; stdout and stderr are apart in the result."""
    return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=True)


def run_process(args: Sequence[str | os.PathLike[str]]) -> subprocess.CompletedProcess[str]:
    """Run `python -m hai_compiler ARGS` as its own process (what a user's shell sees)."""
    return subprocess.run(
        [sys.executable, "-m", "hai_compiler", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )


PROGRESS_LINE = re.compile(r"^(\[ *\d+\.\d s\] .*|warning: .*)?\n", re.MULTILINE)
"""A stage's progress line (hai_compiler/progress.py), a warning or an empty line: what may stand
before a command's one `error:` line."""


def assert_user_error(result: Result, *fragments: str, code: int = 1) -> str:
    """The command failed with `code`, an `error:` message naming every fragment, and no traceback."""
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exc_info
    assert result.exit_code == code, (result.exit_code, result.output)
    assert "Traceback" not in result.output
    message = PROGRESS_LINE.sub("", result.stderr)  # stages that ran 1 s on a loaded machine print a line
    if code == 1:
        assert message.startswith("error: "), message
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    return message
