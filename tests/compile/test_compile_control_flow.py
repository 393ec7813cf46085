"""Control flow through the compiler: what is decided at compile time compiles flat and matches
onnxruntime; what a static plan cannot hold (an If on the inputs) fails naming the node."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from compile_helpers import assert_matches_onnxruntime

import hai_compiler
from hai_compiler.input_spec import InputSpecError, parse_input_values
from ir import HaiError

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "onnx_import"))
from control_flow_models import if_on_data, loop  # noqa: E402


def saved(model: onnx.ModelProto, tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.onnx"
    onnx.save(model, path)
    return path


def test_if_on_an_input_is_refused_naming_the_node(tmp_path: Path) -> None:
    path = saved(if_on_data(), tmp_path, "if_on_data")
    with pytest.raises(HaiError, match=r"If 'data_if': condition depends on the input x; .*--input-value"):
        hai_compiler.compile(path, output=tmp_path / "refused.hai")


def test_fixed_input_takes_the_branch_when_compiling(tmp_path: Path) -> None:
    path = saved(loop(trip_count=None, scan_output=True), tmp_path, "loop")
    m = np.array(3, np.int64)
    artifact = hai_compiler.compile(path, input_values={"m": m}, output=tmp_path / "loop.hai")
    x = np.random.default_rng(0).standard_normal((6, 3)).astype(np.float32)
    assert_matches_onnxruntime(artifact, path, {"x": x}, {"m": m})


def test_input_values_parse() -> None:
    values = parse_input_values(["sr=16000", "scale=0.5,2"])
    assert values["sr"].shape == () and values["sr"] == 16000
    np.testing.assert_array_equal(values["scale"], [0.5, 2.0])
    with pytest.raises(InputSpecError, match=r"--input-value 'sr=fast': values must be numbers"):
        parse_input_values(["sr=fast"])
