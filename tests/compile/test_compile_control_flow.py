"""Control flow through the compiler: what is decided at compile time compiles flat and matches
onnxruntime; an If on the inputs runs as guarded steps (loops run at run time: test_compile_loops.py)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from compile_helpers import assert_matches_onnxruntime, with_manifest

import hai_compiler
from hai_compiler.input_spec import InputSpecError, parse_input_values

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "onnx_import"))
from control_flow_models import if_on_data, if_with_convs, loop  # noqa: E402


def saved(model: onnx.ModelProto, tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.onnx"
    onnx.save(model, path)
    return path


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_if_on_an_input_runs_the_branch_its_condition_takes(tmp_path: Path, sign: float) -> None:
    import runtime

    path = saved(if_on_data(), tmp_path, "if_on_data")
    artifact = hai_compiler.compile(path, output=tmp_path / "if.hai")
    steps = json.loads((artifact / "manifest.json").read_text())["plan"]["steps"]
    guarded = {tuple(s["nodes"]): [g["when"] for g in s["guards"]] for s in steps if s["guards"]}
    assert guarded == {("t",): [True], ("e",): [False]}  # the branches' steps, each under the condition
    x = sign * np.abs(np.random.default_rng(0).standard_normal((2, 3))).astype(np.float32)
    assert_matches_onnxruntime(artifact, path, {"x": x})
    # the branch not taken does not run: record the steps the model launches
    model = runtime.load(artifact)
    ran: list[int] = []

    def recording(index: int, launch):  # type: ignore[no-untyped-def]
        def run() -> None:
            ran.append(index)
            launch()

        return run

    model._calls = [(recording(i, run), *rest) for i, (run, *rest) in enumerate(model._calls)]  # type: ignore[misc]
    model.run({"x": x})
    taken = {i for i, s in enumerate(steps) if not s["guards"] or s["guards"][0]["when"] == (sign > 0)}
    assert set(ran) == taken and len(ran) == len(steps) - 1


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


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda guard: guard["slot"].update(dtype="float32"), r"guard #0 of step \d \(.*\) is float32\[\]"),
        (lambda guard: guard["slot"].update(offset=1 << 20), r"guard #0 of step \d .* overruns the arena"),
        (lambda guard: guard["slot"].update(kind="input", name="nope"), r"reads a input 'nope'"),
    ],
)
def test_load_refuses_a_bad_guard(tmp_path: Path, edit, message: str) -> None:  # type: ignore[no-untyped-def]
    import runtime
    from runtime.errors import ArtifactError

    path = saved(if_on_data(), tmp_path, "if_on_data")
    artifact = hai_compiler.compile(path, output=tmp_path / "if.hai")
    data = json.loads((artifact / "manifest.json").read_text())
    edit(next(s for s in data["plan"]["steps"] if s["guards"])["guards"][0])
    with pytest.raises(ArtifactError, match=message):
        runtime.load(with_manifest(artifact, tmp_path / "edited.hai", data))


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_if_with_conv_branches_matches_onnxruntime(tmp_path: Path, sign: float) -> None:
    path = saved(if_with_convs(), tmp_path, "if_with_convs")
    artifact = hai_compiler.compile(path, output=tmp_path / "convs.hai")
    x = np.random.default_rng(1).standard_normal((1, 3, 8, 8)).astype(np.float32)
    x += sign * (np.abs(x.mean()) + 0.5)  # the mean's sign decides the branch
    assert_matches_onnxruntime(artifact, path, {"x": x})
