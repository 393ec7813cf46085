"""Fuzzing what users feed the CLI and the runtime: `--input-shape` texts, `.npy`/`.npz` files of any
dtype, shape and content, through `hai interp` and a compiled artifact's `hai run`. Oracle:
fuzz_oracle.py; an accepted input gives onnxruntime's result on the same (cast) values."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import onnx
import pytest
from fuzz_oracle import (
    assert_clean_result,
    assert_matches,
    fuzz_settings,
    invoke,
    onnxruntime_outputs,
    seed_models,
)
from hypothesis import given
from hypothesis import strategies as st

DTYPES = ["float32", "float64", "float16", "int64", "int8", "uint8", "bool", "complex64", "<U3", "object",
          "datetime64[s]", "V4"]  # fmt: skip
DIM_TEXTS = ["1", "2", "3", "0", "-1", "4x", "", " 2", "2**3", "١", str(2**62), "9" * 5000, "1.5"]


@st.composite
def arrays(draw: st.DrawFn) -> np.ndarray:
    shape = tuple(draw(st.lists(st.integers(0, 4), max_size=4)))
    if draw(st.booleans()):
        shape = (2, 3)  # the elementwise model's own
    dtype = draw(st.sampled_from(DTYPES))
    if dtype == "object":
        return np.array([None, 1], dtype=object)
    values = np.random.default_rng(draw(st.integers(0, 9))).standard_normal(shape)
    special = draw(st.sampled_from([None, np.nan, np.inf, 1e39]))
    if special is not None and values.size:
        values.reshape(-1)[0] = special
    with np.errstate(all="ignore"):
        return values.astype(dtype)


def save(array: np.ndarray, path: Path, form: str) -> Path:
    if form == "npy":
        np.save(path.with_suffix(".npy"), array, allow_pickle=True)
        return path.with_suffix(".npy")
    arrays = {"x": array} if form == "npz" else {"x": array, "extra": array}
    np.savez(path.with_suffix(".npz"), **arrays)  # type: ignore[arg-type]
    return path.with_suffix(".npz")


@pytest.fixture(scope="module")
def elementwise(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("inputs") / "elementwise.onnx"
    onnx.save(seed_models()["elementwise"], str(path))
    return path


@pytest.fixture(scope="module")
def artifact(elementwise: Path) -> Path:
    """The elementwise model compiled once for this host."""
    out = elementwise.with_name("elementwise.hai")
    result = invoke("compile", elementwise, "-o", out)
    assert result.exit_code == 0, result.output
    return out


def check_array(model: Path, command: str, array: np.ndarray, form: str) -> None:
    """`hai interp MODEL` or `hai run ARTIFACT` with `array` as input x (y random or fixed)."""
    with tempfile.TemporaryDirectory() as work:
        root = Path(work)
        x = save(array, root / "x", form)
        y = np.random.default_rng(1).standard_normal((1, 3)).astype(np.float32)
        np.save(root / "y.npy", y)
        result = invoke(
            command, model, "--input", f"x={x}", "--input", f"y={root / 'y.npy'}", "--output-dir", root / "o"
        )
        if not assert_clean_result(result, (command, array.dtype, array.shape, form)):
            return
        assert array.shape == (2, 3) and array.dtype.kind in "f", (
            array.dtype,
            array.shape,
        )  # only f32-castable
        source = model if model.suffix == ".onnx" else model.with_suffix(".onnx")
        with np.errstate(over="ignore"):  # float64 past f32's range casts to inf, as HAI's cast does
            expected = onnxruntime_outputs(source, {"x": array.astype(np.float32), "y": y})
        assert expected is not None
        assert_matches(np.load(root / "o" / "z.npy"), expected["z"], (command, array))


FAST = fuzz_settings(100)
SLOW = fuzz_settings(1000)


@FAST
@given(array=arrays(), form=st.sampled_from(["npy", "npz", "npz2"]))
def test_interp_inputs(elementwise: Path, array: np.ndarray, form: str) -> None:
    check_array(elementwise, "interp", array, form)


@FAST
@given(array=arrays(), form=st.sampled_from(["npy", "npz", "npz2"]))
def test_run_inputs(artifact: Path, array: np.ndarray, form: str) -> None:
    check_array(artifact, "run", array, form)


@pytest.mark.slow
@SLOW
@given(
    array=arrays(), form=st.sampled_from(["npy", "npz", "npz2"]), command=st.sampled_from(["interp", "run"])
)
def test_inputs_slow(elementwise: Path, artifact: Path, array: np.ndarray, form: str, command: str) -> None:
    check_array(elementwise if command == "interp" else artifact, command, array, form)


@FAST
@given(dims=st.lists(st.sampled_from(DIM_TEXTS), max_size=4), name=st.sampled_from(["x", "y", "", "z=x"]))
def test_input_shapes(elementwise: Path, dims: list[str], name: str) -> None:
    result = invoke("interp", elementwise, "--input-shape", f"{name}={','.join(dims)}")
    assert_clean_result(result, (name, dims))


def test_raw_garbage_files(elementwise: Path, tmp_path: Path) -> None:
    """Files that are not what their suffix says: empty, random, a truncated .npy, a directory."""
    good = tmp_path / "good.npy"
    np.save(good, np.zeros((2, 3), np.float32))
    cases = {
        "empty.npy": b"",
        "noise.npy": bytes(range(256)),
        "cut.npy": good.read_bytes()[:-5],
        "noise.npz": b"PK\x03\x04" + bytes(64),
    }
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
    (tmp_path / "dir.npy").mkdir()
    for name in [*cases, "dir.npy"]:
        result = invoke("interp", elementwise, "--input", f"x={tmp_path / name}")
        assert not assert_clean_result(result, name)
