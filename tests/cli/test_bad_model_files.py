"""ONNX files onnxruntime refuses are refused with one `error:` line: external data that leaves the
model's directory, is missing, a link or a directory; what the ONNX checker rejects; unknown opsets."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from cli_helpers import assert_user_error, invoke, save_model
from onnx import TensorProto, external_data_helper, helper, numpy_helper

F32 = TensorProto.FLOAT


def matmul_model(directory: Path) -> Path:
    """y = x @ w, w a [4, 3] initializer stored as external data in `w.bin` beside the model."""
    directory.mkdir(exist_ok=True)
    w = numpy_helper.from_array(np.arange(12, dtype=np.float32).reshape(4, 3), "w")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")],
        "mm",
        [helper.make_tensor_value_info("x", F32, [2, 4])],
        [helper.make_tensor_value_info("y", F32, [2, 3])],
        [w],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    external_data_helper.convert_model_to_external_data(model, location="w.bin", size_threshold=0)
    onnx.save(model, str(directory / "model.onnx"))
    return directory / "model.onnx"


def with_location(model_path: Path, location: str, name: str) -> Path:
    """A copy of the model beside it whose tensor 'w' reads its data from `location`."""
    model = onnx.load(str(model_path), load_external_data=False)
    (entry,) = [e for e in model.graph.initializer[0].external_data if e.key == "location"]
    entry.value = location
    path = model_path.with_name(name)
    path.write_bytes(model.SerializeToString())
    return path


def external_variants(tmp_path: Path) -> dict[str, Path]:
    model = matmul_model(tmp_path / "m")
    outside = tmp_path / "outside.bin"
    outside.write_bytes((model.parent / "w.bin").read_bytes())
    os.symlink(outside, model.parent / "link.bin")
    (model.parent / "folder.bin").mkdir()
    return {
        "outside": with_location(model, "../outside.bin", "outside.onnx"),
        "absolute": with_location(model, str(outside), "absolute.onnx"),
        "missing": with_location(model, "nowhere.bin", "missing.onnx"),
        "symlink": with_location(model, "link.bin", "symlink.onnx"),
        "directory": with_location(model, "folder.bin", "directory.onnx"),
    }


PROBLEM = {
    "outside": "outside the directory",
    "absolute": "absolute path",
    "missing": "nowhere.bin",
    "symlink": "symbolic link",
    "directory": "folder.bin",
}


@pytest.mark.parametrize("command", ["ir", "interp", "compile", "quantize"])
def test_bad_external_data_is_one_error_per_command(tmp_path: Path, command: str) -> None:
    variants = external_variants(tmp_path)
    extra: dict[str, list[str | Path]] = {
        "compile": ["-o", tmp_path / "out.hai"],
        "quantize": ["-o", tmp_path / "q.hir"],
    }
    for kind, path in variants.items():
        with pytest.raises(Exception):  # noqa: B017  onnxruntime refuses each as well
            ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        result = invoke(command, path, *extra.get(command, []))
        assert_user_error(result, path.name, "tensor name: w", PROBLEM[kind])
    assert not (tmp_path / "out.hai").exists() and not (tmp_path / "q.hir").exists()


def test_good_external_data_still_imports(tmp_path: Path) -> None:
    model = matmul_model(tmp_path / "m")
    result = invoke("interp", model, "--output-dir", tmp_path / "out")
    assert result.exit_code == 0, result.output
    x = np.random.default_rng(0).standard_normal((2, 4)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    assert (
        invoke(
            "interp", model, "--input", f"x={tmp_path / 'x.npy'}", "--output-dir", tmp_path / "o"
        ).exit_code
        == 0
    )
    expected = x @ np.arange(12, dtype=np.float32).reshape(4, 3)
    np.testing.assert_allclose(np.load(tmp_path / "o" / "y.npy"), expected, rtol=1e-5)


def relu_graph(nodes: list, initializers: list = ()) -> onnx.GraphProto:  # type: ignore[assignment]
    return helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", F32, [2, 4])],
        [helper.make_tensor_value_info("y", F32, [2, 4])],
        list(initializers),
    )


def negative_dims_tensor() -> onnx.TensorProto:
    tensor = onnx.TensorProto(name="w", data_type=F32)
    tensor.dims.extend([1, -4])
    return tensor


CHECKER_CASES = {
    "two nodes write y": (
        [helper.make_node("Relu", ["x"], ["y"], name="a"), helper.make_node("Neg", ["x"], ["y"], name="b")],
        [],
        17,
        ["'y'", "single static assignment"],
    ),
    "dims [1,-4]": (
        [helper.make_node("Add", ["x", "w"], ["y"])],
        [negative_dims_tensor()],
        17,
        ["tensor name: w", "Negative dimension"],
    ),
    "opset 99": ([helper.make_node("Relu", ["x"], ["y"])], [], 99, ["opset 99", "7 to"]),
}


@pytest.mark.parametrize("case", CHECKER_CASES)
def test_models_onnxruntime_refuses_are_refused(tmp_path: Path, case: str) -> None:
    nodes, initializers, opset, fragments = CHECKER_CASES[case]
    model = helper.make_model(relu_graph(nodes, initializers), opset_imports=[helper.make_opsetid("", opset)])
    path = tmp_path / "bad.onnx"
    path.write_bytes(model.SerializeToString())
    with pytest.raises(Exception):  # noqa: B017  the reference refuses it too
        ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for command in ("ir", "interp"):
        assert_user_error(invoke(command, path), *fragments)


def test_outputs_without_shape_still_import(tmp_path: Path) -> None:
    """The checker wants a shape on graph outputs; onnxruntime does not, nor does HAI."""
    path = save_model(
        tmp_path / "noshape.onnx",
        [helper.make_node("Relu", ["x"], ["y"])],
        [helper.make_tensor_value_info("x", F32, [2, 4])],
        [helper.make_tensor_value_info("y", F32, None)],
    )
    result = invoke("ir", path)
    assert result.exit_code == 0, result.output


def test_a_name_that_is_not_utf8_is_refused(tmp_path: Path) -> None:
    """Found by fuzzing: a node input named by bytes that are not UTF-8 made the checker's own message
    undecodable (a UnicodeDecodeError). onnxruntime refuses the model too."""
    relu = helper.make_node("Relu", ["QQ"], ["y"], name="relu")
    graph = helper.make_graph(
        [relu],
        "g",
        [helper.make_tensor_value_info("x", F32, [2])],
        [helper.make_tensor_value_info("y", F32, [2])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    path = tmp_path / "bad_name.onnx"
    path.write_bytes(model.SerializeToString().replace(b"QQ", b"\x80Q"))
    with pytest.raises(Exception):  # noqa: B017  (onnxruntime's own error type varies)
        ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert_user_error(invoke("interp", path), str(path), "not a valid ONNX model", "not UTF-8")
