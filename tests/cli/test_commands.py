"""`hai ir`, `hai passes`, `hai interp` on small models, checked against onnxruntime and their files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime
import pytest
from cli_helpers import add_relu_model, invoke, run_process, save_model
from onnx import TensorProto, helper, numpy_helper


def bias_relu_model(path: Path) -> tuple[Path, np.ndarray]:
    """y = Relu(x + w) with a constant w (weights to save), x float32 [2, 3]."""
    w = np.random.default_rng(1).standard_normal((2, 3)).astype(np.float32)
    graph_path = save_model(
        path,
        [helper.make_node("Add", ["x", "w"], ["s"], name="add"), helper.make_node("Relu", ["s"], ["y"])],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])],
    )
    import onnx

    model = onnx.load(str(graph_path))
    model.graph.initializer.append(numpy_helper.from_array(w, "w"))
    onnx.save(model, str(graph_path))
    return graph_path, w


def onnxruntime_outputs(model: Path, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    session = onnxruntime.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, feeds), strict=True))


@pytest.mark.parametrize("command", [[], ["ir"], ["passes"], ["interp"]])
def test_help(command: list[str]) -> None:
    result = invoke(*command, "--help")
    assert result.exit_code == 0 and "Usage" in result.stdout


def test_no_command_shows_help() -> None:
    result = invoke()
    assert "ir" in result.output and "interp" in result.output and "passes" in result.output


def test_ir_prints_the_model(add_relu: Path) -> None:
    result = invoke("ir", add_relu)
    assert result.exit_code == 0, result.output
    assert "Add(%x, %y)" in result.stdout and "Relu(" in result.stdout and result.stderr == ""


def test_ir_file_round_trips_with_weights(tmp_path: Path) -> None:
    model, _ = bias_relu_model(tmp_path / "bias.onnx")
    out = tmp_path / "bias.hir"
    assert invoke("ir", model, "-o", out, "--save-weights").exit_code == 0
    assert len(list(tmp_path.iterdir())) == 3  # the model, the .hir and its weights file
    first, second = invoke("ir", model), invoke("ir", out)
    assert second.exit_code == 0, second.output
    assert first.stdout == second.stdout


def test_interp_of_saved_hir_matches_onnxruntime(tmp_path: Path) -> None:
    model, _ = bias_relu_model(tmp_path / "bias.onnx")
    out = tmp_path / "bias.hir"
    invoke("ir", model, "-o", out, "--save-weights")
    x = np.random.default_rng(2).standard_normal((2, 3)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    result = invoke("interp", out, "--input", f"x={tmp_path / 'x.npy'}", "--output-dir", tmp_path / "res")
    assert result.exit_code == 0, result.output
    np.testing.assert_allclose(np.load(tmp_path / "res" / "y.npy"), onnxruntime_outputs(model, {"x": x})["y"])


def test_summary(tmp_path: Path) -> None:
    model, w = bias_relu_model(tmp_path / "bias.onnx")
    result = invoke("ir", model, "--summary")
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert "2 nodes" in text and "Add" in text and "Relu" in text
    assert f"constants: 1 ({w.nbytes} B)" in text
    assert "f32[2,3]" in text and "input" in text and "output" in text


def test_interp_matches_onnxruntime(add_relu: Path, tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    feeds = {name: rng.standard_normal((2, 3)).astype(np.float32) for name in ("x", "y")}
    args = []
    for name, array in feeds.items():
        np.save(tmp_path / f"{name}.npy", array)
        args += ["--input", f"{name}={tmp_path / f'{name}.npy'}"]
    result = invoke("interp", add_relu, *args, "--output-dir", tmp_path / "outs")
    assert result.exit_code == 0, result.output
    assert "random" not in result.stderr
    expected = onnxruntime_outputs(add_relu, feeds)["out"]
    np.testing.assert_allclose(np.load(tmp_path / "outs" / "out.npy"), expected)
    assert result.stdout.startswith("out: f32[2, 3]") and f"max={expected.max():.6g}" in result.stdout


def test_interp_random_inputs_are_announced_and_seeded(add_relu: Path) -> None:
    first, again, other = (invoke("interp", add_relu, "--seed", s) for s in ("7", "7", "8"))
    assert first.exit_code == 0, first.output
    assert "'x'" in first.stderr and "'y'" in first.stderr and "random" in first.stderr
    assert "seed 7" in first.stderr
    assert first.stdout == again.stdout != other.stdout


def test_interp_float64_file_is_cast(add_relu: Path, tmp_path: Path) -> None:
    np.save(tmp_path / "x.npy", np.ones((2, 3)))  # numpy's default float64
    result = invoke("interp", add_relu, "--input", f"x={tmp_path / 'x.npy'}")
    assert result.exit_code == 0, result.output
    assert "'x'" not in result.stderr and "'y'" in result.stderr


def test_interp_symbolic_model_with_input_shape(symbolic: Path, tmp_path: Path) -> None:
    x = np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4)
    np.save(tmp_path / "x.npy", x)
    result = invoke(
        "interp",
        symbolic,
        "--input-shape",
        "x=3,4",
        "--input",
        f"x={tmp_path / 'x.npy'}",
        "--output-dir",
        tmp_path,
    )
    assert result.exit_code == 0, result.output
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), np.maximum(x, 0))


def test_output_file_names_are_sanitised(tmp_path: Path) -> None:
    model = add_relu_model(tmp_path / "m.onnx", out_name="scores/out:0 (final)")
    result = invoke("interp", model, "--output-dir", tmp_path / "o")
    assert result.exit_code == 0, result.output
    assert [p.name for p in (tmp_path / "o").iterdir()] == ["scores_out_0__final_.npy"]
    assert result.stdout.startswith("scores/out:0 (final): f32[2, 3]")


def test_passes_lists_every_registered_pass_with_options() -> None:
    from passes.registry import available_passes

    result = invoke("passes")
    assert result.exit_code == 0, result.output
    for name, cls in available_passes().items():
        assert name in result.stdout
        for option in cls.options():
            assert option in result.stdout


def test_pipeline_with_instruments(add_relu: Path, tmp_path: Path) -> None:
    dump = tmp_path / "dump"
    result = invoke(
        "ir", add_relu, "--passes", "default", "--verify-each", "--timing",
        "--print-ir-after", "all", "--dump-ir", dump,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    from passes.pipeline import DEFAULT_PIPELINE

    assert len(list(dump.glob("*.hir"))) == len(DEFAULT_PIPELINE) + 1
    assert result.stderr.count("IR after") == len(DEFAULT_PIPELINE)
    assert "total" in result.stderr  # the timing table
    assert "Relu(" in result.stdout


def test_pipeline_changes_the_printed_graph(tmp_path: Path) -> None:
    """An Identity chain disappears with `eliminate-identity`, and the numbers stay the same."""
    f32 = TensorProto.FLOAT
    model = save_model(
        tmp_path / "ident.onnx",
        [helper.make_node("Identity", ["x"], ["a"]), helper.make_node("Relu", ["a"], ["y"])],
        [helper.make_tensor_value_info("x", f32, [4])],
        [helper.make_tensor_value_info("y", f32, [4])],
    )
    before, after = invoke("ir", model), invoke("ir", model, "--passes", "eliminate-identity")
    assert "Identity" in before.stdout and "Identity" not in after.stdout


def test_real_process_stdout_is_the_ir_only(add_relu: Path) -> None:
    proc = run_process(["ir", add_relu, "--passes", "default", "--timing"])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.lstrip().startswith("//") and "total" in proc.stderr and "total" not in proc.stdout
