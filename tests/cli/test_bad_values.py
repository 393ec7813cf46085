"""Values beyond what HAI can hold are one `error:` line naming the value: shapes that are empty, past
numpy's or TVM's index range, 4300+ digit numbers, 500-deep lists, NaN and other scripts' digits in
options, object arrays in `.npz` inputs and labels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from cli_helpers import assert_user_error, invoke

from hai_compiler.demo import EMBEDDED_MODEL

SHAPE = ("--input-shape", "image=1,1,8,8")
HUGE = "9" * 5000


@pytest.mark.parametrize("command", ["ir", "interp", "compile"])
def test_empty_input_shape(tmp_path: Path, command: str) -> None:
    extra: list[str | Path] = ["-o", tmp_path / "out.hai"] if command == "compile" else []
    result = invoke(command, EMBEDDED_MODEL, "--input-shape", "image=0,1,8,8", *extra)
    assert_user_error(result, "'image'", "f32[0,1,8,8]", "no elements")


@pytest.mark.parametrize("command", ["ir", "interp"])
def test_input_beyond_any_memory(command: str) -> None:
    result = invoke(command, EMBEDDED_MODEL, "--input-shape", f"image={2**62},1,8,8")
    assert_user_error(result, "%image", str(2**62), "2^63")


def test_compile_refuses_tensors_past_int32_indices(tmp_path: Path) -> None:
    batch = 2**25  # conv activations of 2^35 elements: TVM's int32 index range overflows
    result = invoke(
        "compile", EMBEDDED_MODEL, "--input-shape", f"image={batch},1,8,8",
        "--memory-budget", "none", "-o", tmp_path / "out.hai",
    )  # fmt: skip
    assert_user_error(result, f"{batch},16,8,8", "int32", "2^31 - 1")
    assert not (tmp_path / "out.hai").exists()


def test_interp_past_available_memory_is_an_error() -> None:
    """Not a MemoryError, nor the OOM killer's SIGKILL: the shape is refused before anything is drawn."""
    result = invoke("interp", EMBEDDED_MODEL, "--input-shape", f"image={2**40},1,8,8")
    assert_user_error(result, "needs more than", f"{2**40},16,8,8", "available")


@pytest.mark.parametrize("option", ["--memory-budget", "--page-size"])
def test_sizes_of_thousands_of_digits(tmp_path: Path, option: str) -> None:
    result = invoke("compile", EMBEDDED_MODEL, *SHAPE, option, HUGE, "-o", tmp_path / "out.hai")
    message = assert_user_error(result, option, "5000 characters", "2^64", code=2)  # a malformed option
    assert len(message) < 400


@pytest.mark.parametrize(
    ("pipeline", "fragments"),
    [
        (f"fold-constants{{max-size={HUGE}}}", ["'max-size'", "within 64 bits", "5000 characters"]),
        ("fold-constants{max-size=" + "[" * 500 + "1" + "]" * 500 + "}", ["nest more than"]),
        ("layout{min-gain=nan}", ["'min-gain'", "finite", "'nan'"]),
        ("layout{min-gain=inf}", ["'min-gain'", "finite"]),
        ("layout{min-gain=١.٥}", ["'min-gain'", "'١.٥'"]),
        ("fold-constants{max-size=١٠}", ["'max-size'", "an integer", "'١٠'"]),
        ("layout{min-gain=1_0}", ["'min-gain'", "'1_0'"]),
    ],
)
def test_bad_option_values(pipeline: str, fragments: list[str]) -> None:
    message = assert_user_error(invoke("ir", EMBEDDED_MODEL, *SHAPE, "--passes", pipeline), *fragments)
    assert len(message) < 600


def test_object_arrays_in_npz_input_as_in_npy(tmp_path: Path) -> None:
    objects = np.array([None, 1], dtype=object)
    np.savez(tmp_path / "x.npz", image=objects)
    np.save(tmp_path / "x.npy", objects, allow_pickle=True)
    for name in ("x.npz", "x.npy"):
        result = invoke("interp", EMBEDDED_MODEL, *SHAPE, "--input", f"image={tmp_path / name}")
        assert_user_error(result, "--input image", name, "Object arrays")


@pytest.mark.parametrize(
    ("labels", "fragments"),
    [
        (np.array([None, 1], dtype=object), ["--labels", "Object arrays"]),
        (np.arange(7) % 10, ["labels", "[7]", "(8)"]),
        (np.arange(8.0), ["labels", "float64", "integer"]),
    ],
)
def test_bad_labels(tmp_path: Path, labels: np.ndarray, fragments: list[str]) -> None:
    data = tmp_path / "data.npz"
    np.savez(data, image=np.random.default_rng(0).random((8, 1, 1, 8, 8), dtype=np.float32))  # no warning
    np.savez(tmp_path / "labels.npz", labels=labels)
    result = invoke(
        "quantize", EMBEDDED_MODEL, *SHAPE, "--calibration-data", data, "--eval-data", data,
        "--labels", tmp_path / "labels.npz", "-o", tmp_path / "q.hir",
    )  # fmt: skip
    assert_user_error(result, *fragments)


@pytest.mark.parametrize(
    ("model_dtype", "array", "fragments"),
    [
        ("int32", np.array([2**40, 1], dtype=np.int64), ["--input x", "1099511627776", "[0]", "i32"]),
        ("float32", np.array([1.0, 1e300]), ["--input x", "1e+300", "[1]", "f32"]),
    ],
)
def test_input_values_that_do_not_fit_the_models_dtype(
    tmp_path: Path, model_dtype: str, array: np.ndarray, fragments: list[str]
) -> None:
    """An int64 or float64 file is cast to the model's dtype; a value the cast would wrap around or turn
    into inf is an error, not a silently different input."""
    from cli_helpers import save_model
    from onnx import helper

    element = helper.np_dtype_to_tensor_dtype(np.dtype(model_dtype))
    model = save_model(
        tmp_path / "m.onnx",
        [helper.make_node("Identity", ["x"], ["y"])],
        [helper.make_tensor_value_info("x", element, [2])],
        [helper.make_tensor_value_info("y", element, [2])],
    )
    np.save(tmp_path / "x.npy", array)
    assert_user_error(invoke("interp", model, "--input", f"x={tmp_path / 'x.npy'}"), *fragments)
    np.save(tmp_path / "fits.npy", np.where(np.abs(array) > 2**20, 7, array))  # the same dtype, in range
    assert invoke("interp", model, "--input", f"x={tmp_path / 'fits.npy'}").exit_code == 0
