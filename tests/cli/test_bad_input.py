"""Bad input reaches the user as one `error: ...` line naming the problem, never as a traceback."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import assert_user_error, invoke, run_process, save_model
from onnx import TensorProto, helper


def test_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.onnx"
    assert_user_error(invoke("ir", missing), str(missing), "no such file")


def test_unknown_suffix(tmp_path: Path) -> None:
    model = tmp_path / "model.pb"
    model.write_bytes(b"x")
    assert_user_error(invoke("ir", model), "model.pb", ".onnx", ".hir")


def test_truncated_onnx(add_relu: Path, tmp_path: Path) -> None:
    data = add_relu.read_bytes()
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(data[: len(data) // 2])
    assert_user_error(invoke("ir", truncated), "truncated.onnx")


def test_random_bytes_onnx(tmp_path: Path) -> None:
    noise = tmp_path / "noise.onnx"
    noise.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    assert_user_error(invoke("interp", noise), "noise.onnx")


def test_random_bytes_onnx_in_a_real_process(tmp_path: Path) -> None:
    noise = tmp_path / "noise.onnx"
    noise.write_bytes(bytes(range(256)) * 8)
    proc = run_process(["ir", noise])
    assert proc.returncode == 1
    assert proc.stderr.startswith("error: ") and "noise.onnx" in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout


def test_every_unsupported_op_is_listed_once(tmp_path: Path) -> None:
    f32 = TensorProto.FLOAT
    body = helper.make_graph(
        [helper.make_node("Mystery", ["cond_in"], ["cond_out"], name="mystery_in_loop")],
        "body",
        [
            helper.make_tensor_value_info("i", TensorProto.INT64, []),
            helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
        ],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, [])],
    )
    nodes = [
        helper.make_node("FrobnicateTensor", ["x"], ["a"], name="frob_1"),
        helper.make_node("Relu", ["a"], ["b"], name="fine_relu"),
        helper.make_node("Wibble", ["b"], ["c"], name="wibble_7", domain="com.example"),
        helper.make_node("Loop", ["", "cond"], [], name="the_loop", body=body),
        helper.make_node("FrobnicateTensor", ["c"], ["y"], name="frob_2"),
    ]
    model = save_model(
        tmp_path / "unsupported.onnx",
        nodes,
        [
            helper.make_tensor_value_info("x", f32, [2]),
            helper.make_tensor_value_info("cond", TensorProto.BOOL, []),
        ],
        [helper.make_tensor_value_info("y", f32, [2])],
        opsets=[helper.make_opsetid("", 17), helper.make_opsetid("com.example", 3)],
    )
    message = assert_user_error(
        invoke("ir", model),
        "FrobnicateTensor",
        "frob_1",
        "frob_2",
        "Wibble",
        "wibble_7",
        "com.example",
        "Mystery",
        "mystery_in_loop",  # a subgraph's nodes are listed too
    )
    assert "opset 17" in message and "opset 3" in message
    assert "fine_relu" not in message and "the_loop" not in message and message.count("error:") == 1


def test_symbolic_dim_without_input_shape(symbolic: Path) -> None:
    assert_user_error(invoke("ir", symbolic), "'x'", "batch", "--input-shape")


def test_input_shape_for_unknown_input(symbolic: Path) -> None:
    assert_user_error(invoke("ir", symbolic, "--input-shape", "nope=1,4"), "nope", "x")


def test_input_shape_that_contradicts_the_model(symbolic: Path) -> None:
    assert_user_error(invoke("ir", symbolic, "--input-shape", "x=2,5"), "'x'", "[2, 5]")


@pytest.mark.parametrize("spec", ["x", "x=1,a", "=1,2", "x=-1,4"])
def test_malformed_input_shape_is_a_usage_error(symbolic: Path, spec: str) -> None:
    result = invoke("ir", symbolic, "--input-shape", spec)
    assert_user_error(result, "--input-shape", code=2)


def test_save_weights_without_output_is_a_usage_error(add_relu: Path) -> None:
    assert_user_error(invoke("ir", add_relu, "--save-weights"), "--save-weights", "-o", code=2)


def test_hir_syntax_error_has_line_and_column(add_relu: Path, tmp_path: Path) -> None:
    lines = invoke("ir", add_relu).stdout.splitlines()
    broken = next(i for i, line in enumerate(lines) if "Relu(" in line)
    lines[broken] = lines[broken].replace("Relu(", "Relu(@@@ ")
    bad = tmp_path / "bad.hir"
    bad.write_text("\n".join(lines) + "\n")
    message = assert_user_error(invoke("ir", bad), "bad.hir")
    assert re.search(rf"bad\.hir:{broken + 1}:\d+", message), message


def test_unknown_pass_name(add_relu: Path) -> None:
    assert_user_error(invoke("ir", add_relu, "--passes", "no-such-pass-xyz"), "no-such-pass-xyz")


def test_unknown_pass_option(add_relu: Path) -> None:
    from passes.registry import available_passes

    name = sorted(available_passes())[0]
    assert_user_error(invoke("ir", add_relu, "--passes", f"{name}{{bogus-knob=3}}"), "bogus-knob", name)


def test_input_file_of_wrong_shape(add_relu: Path, tmp_path: Path) -> None:
    np.save(tmp_path / "x.npy", np.zeros((3, 2), np.float32))
    result = invoke("interp", add_relu, "--input", f"x={tmp_path / 'x.npy'}")
    message = assert_user_error(result, "x", "[3, 2]")
    assert "[2, 3]" in message


def test_input_file_missing_or_not_npy(add_relu: Path, tmp_path: Path) -> None:
    assert_user_error(invoke("interp", add_relu, "--input", f"x={tmp_path / 'gone.npy'}"), "gone.npy")
    junk = tmp_path / "junk.npy"
    junk.write_bytes(b"not numpy at all")
    assert_user_error(invoke("interp", add_relu, "--input", f"x={junk}"), "junk.npy")


def test_input_file_for_unknown_input(add_relu: Path, tmp_path: Path) -> None:
    np.save(tmp_path / "z.npy", np.zeros((2, 3), np.float32))
    assert_user_error(invoke("interp", add_relu, "--input", f"zz={tmp_path / 'z.npy'}"), "zz")


def test_input_file_of_wrong_dtype_kind(add_relu: Path, tmp_path: Path) -> None:
    np.save(tmp_path / "b.npy", np.zeros((2, 3), np.bool_))
    assert_user_error(invoke("interp", add_relu, "--input", f"x={tmp_path / 'b.npy'}"), "bool", "f32")


def test_unwritable_output(add_relu: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert_user_error(invoke("ir", add_relu, "-o", blocker / "out.hir"), "file/out.", "Not a directory")
