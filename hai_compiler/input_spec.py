"""How users name model inputs on the command line: `--input-shape name=1,3,224,224`, `--input name=x.npy`,
`--input-value name=16000` (an input fixed to a value when compiling).

Rule: the text is split at the *last* `=` (ONNX input names may contain `=`),
each problem is an `InputSpecError` that quotes the offending text, and files
are read with `allow_pickle=False`. Random inputs come from one seeded
generator so a run is reproducible.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

from ir import DType, HaiError, TensorType

INTEGER_RANDOM_HIGH = 10
"""Random integer inputs are drawn from [0, 10): valid as indices and token ids of most models."""


class InputSpecError(HaiError):
    """A malformed `--input-shape`, `--input` or `--input-value`, or an input file that cannot be read."""


def _split(text: str, option: str, example: str) -> tuple[str, str]:
    name, sep, rest = text.rpartition("=")
    if not sep or not name:
        raise InputSpecError(f"{option} '{text}': expected NAME=VALUE, e.g. {option} {example}")
    return name, rest


def parse_input_shape(text: str) -> tuple[str, tuple[int, ...]]:
    """`x=1,3,224,224` → ('x', (1, 3, 224, 224)); `x=` is a scalar."""
    name, dims = _split(text, "--input-shape", "x=1,3,224,224")
    parts = [p.strip() for p in dims.replace("x", ",").split(",")] if dims.strip() else []
    try:
        shape = tuple(int(p) for p in parts)
    except ValueError:
        raise InputSpecError(
            f"--input-shape '{text}': dimensions must be non-negative integers separated by ','"
        ) from None
    if any(d < 0 for d in shape):
        raise InputSpecError(f"--input-shape '{text}': dimensions must be non-negative")
    return name, shape


def parse_input_shapes(texts: Iterable[str]) -> dict[str, tuple[int, ...]]:
    """Every `--input-shape` option, each input named at most once."""
    shapes: dict[str, tuple[int, ...]] = {}
    for text in texts:
        name, shape = parse_input_shape(text)
        if name in shapes:
            raise InputSpecError(f"--input-shape gives input '{name}' twice")
        shapes[name] = shape
    return shapes


def parse_input_values(texts: Iterable[str]) -> dict[str, np.ndarray]:
    """Every `--input-value name=V[,V...]` option (one value: a scalar), each input named at most once."""
    values: dict[str, np.ndarray] = {}
    for text in texts:
        name, numbers = _split(text, "--input-value", "sr=16000")
        if name in values:
            raise InputSpecError(f"--input-value gives input '{name}' twice")
        parts = [p.strip() for p in numbers.split(",")]
        try:
            parsed = [int(p) if p.lstrip("+-").isdigit() else float(p) for p in parts]
        except ValueError:
            raise InputSpecError(f"--input-value '{text}': values must be numbers separated by ','") from None
        values[name] = np.array(parsed[0] if len(parsed) == 1 else parsed)
    return values


def parse_input_files(texts: Iterable[str]) -> dict[str, Path]:
    """Every `--input name=file.npy` option, each input named at most once."""
    files: dict[str, Path] = {}
    for text in texts:
        name, path = _split(text, "--input", "x=image.npy")
        if name in files:
            raise InputSpecError(f"--input gives input '{name}' twice")
        if not path:
            raise InputSpecError(f"--input '{text}': no file after '='")
        files[name] = Path(path)
    return files


def load_array(path: Path, what: str) -> np.ndarray:
    """Read one `.npy` file (or the single array of an `.npz`); `what` names the option in errors
    (`--input image`, `--labels`). Object arrays are refused alike in both (they would need pickle)."""
    if not path.is_file():
        raise InputSpecError(f"{what}: no such file {path}")
    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            return loaded
        with loaded:
            if len(loaded.files) != 1:
                raise InputSpecError(
                    f"{what}: {path} holds {len(loaded.files)} arrays; give a .npy or a one-array .npz"
                )
            return loaded[loaded.files[0]]
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise InputSpecError(f"{what}: {path} is not a readable .npy or .npz file: {exc}") from None


def load_input_arrays(files: Mapping[str, Path]) -> dict[str, np.ndarray]:
    return {name: load_array(path, f"--input {name}") for name, path in files.items()}


def check_inputs(
    inputs: Mapping[str, np.ndarray], expected: Mapping[str, TensorType]
) -> dict[str, np.ndarray]:
    """Check given arrays against the graph's input types; cast losslessly-equal kinds.

    A float64 file for an f32 input is cast (numpy saves float64 by default);
    a wrong shape or an unknown name is an error that names the input.
    """
    checked: dict[str, np.ndarray] = {}
    for name, array in inputs.items():
        if name not in expected:
            raise InputSpecError(
                f"--input {name}: the model has no input '{name}' (inputs: {sorted(expected)})"
            )
        want = expected[name]
        if tuple(array.shape) != want.shape:
            raise InputSpecError(
                f"--input {name}: the array has shape {list(array.shape)}, "
                f"the model expects {list(want.shape)}"
            )
        checked[name] = _cast(name, array, want.dtype)
    return checked


def _cast(name: str, array: np.ndarray, dtype: DType) -> np.ndarray:
    if array.dtype == dtype.numpy:
        return array
    same_kind = (
        (array.dtype.kind == "f") == dtype.is_float and array.dtype.kind != "b" and dtype != DType.BOOL
    )
    if not same_kind:
        raise InputSpecError(f"--input {name}: the array is {array.dtype}, the model expects {dtype}")
    with np.errstate(over="ignore"):
        cast = array.astype(dtype.numpy)
    lost = (cast != array) if array.dtype.kind in "iu" else (np.isinf(cast) & np.isfinite(array))
    if np.any(lost):
        index = tuple(int(i) for i in np.argwhere(lost)[0])
        raise InputSpecError(
            f"--input {name}: the value {array[index]!r} at index {list(index)} does not fit the model's "
            f"{dtype} (the array is {array.dtype}): give values in {dtype}'s range"
        )
    return cast


def random_input(value_type: TensorType, rng: np.random.Generator) -> np.ndarray:
    """A random tensor of this type: normal floats, integers in [0, 10), fair booleans."""
    dtype = value_type.dtype
    data: np.ndarray
    if dtype.is_float:
        data = rng.standard_normal(value_type.shape)
    elif dtype == DType.BOOL:
        data = rng.integers(0, 2, value_type.shape).astype(bool)
    else:
        data = rng.integers(0, INTEGER_RANDOM_HIGH, value_type.shape)
    return np.asarray(data).astype(dtype.numpy)
