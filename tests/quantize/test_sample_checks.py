"""Values of calibration and evaluation samples: a NaN or inf is an error naming input, sample and index;
a constant input, identical samples or too few samples warn, and real digits do not."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from hai_compiler import DynamicQuantizer
from hai_compiler.demo import EMBEDDED_MODEL, load_heldout_digits
from hai_compiler.quantize import CalibrationDataError, load_calibration_data
from hai_compiler.quantize.caveats import QuantizationWarning
from hai_compiler.quantize.sample_checks import check_values, evaluation_feeds
from ir import DType, TensorType

SHAPES = {"image": (1, 1, 8, 8)}
INPUTS = {"image": TensorType(DType.F32, SHAPES["image"])}


def checked(images: np.ndarray) -> list[str]:
    """The warnings check_values gives calibration data of `images` (one sample each)."""
    data = load_calibration_data([{"image": x[None]} for x in images], INPUTS)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_values(data, "calibration", min_samples=8)
    return [str(w.message) for w in caught if issubclass(w.category, QuantizationWarning)]


def test_real_digits_pass_and_degenerate_sets_warn() -> None:
    digits = load_heldout_digits()[0][:16]
    assert checked(digits) == []
    assert checked(np.zeros_like(digits)) == [
        "input 'image' is 0 everywhere in all 16 calibration samples (a constant input): activation ranges "
        "then fit that one value only; give samples like the data the model sees"
    ]
    (repeated,) = checked(np.repeat(digits[:1], 16, axis=0))
    assert "the 16 calibration samples of input 'image' are all the same array" in repeated
    (few,) = checked(digits[:3])
    assert few.startswith("only 3 calibration samples") and "give 8 or more" in few


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_values_name_input_sample_and_index(bad: float, tmp_path: Path) -> None:
    digits = load_heldout_digits()[0][:10].copy()
    digits[7, 0, 4, 1] = bad
    with pytest.raises(
        CalibrationDataError, match=rf"sample 7: input 'image' holds {bad} at index \[0, 0, 4, 1\]"
    ):
        checked(digits)
    np.savez(tmp_path / "eval.npz", image=digits)
    with pytest.raises(CalibrationDataError, match=r"evaluation data, .*eval.npz sample 7: input 'image'"):
        evaluation_feeds(tmp_path / "eval.npz", INPUTS)


def test_the_quantizer_warns_on_all_zero_calibration_and_refuses_nan() -> None:
    zeros = [{"image": np.zeros((1, 1, 8, 8), np.float32)} for _ in range(8)]
    quantizer = DynamicQuantizer(precision_profile="int8", progress=False)
    with pytest.warns(QuantizationWarning, match="constant input"):
        quantizer.fit(EMBEDDED_MODEL, zeros, input_shapes=SHAPES)
    zeros[2]["image"][0, 0, 0, 0] = np.nan
    with pytest.raises(CalibrationDataError, match="calibration data, sample 2: input 'image' holds nan"):
        quantizer.fit(EMBEDDED_MODEL, zeros, input_shapes=SHAPES)
