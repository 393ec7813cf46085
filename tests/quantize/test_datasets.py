"""The bench's calibration/evaluation sets: shapes, determinism, disjoint splits, labels in the model's order.

Labels are checked against an independent judge: the fp32 model run by onnxruntime
must mostly agree with them (it would not if the label order or the preprocessing
were wrong).
"""

from __future__ import annotations

import numpy as np
import pytest

from hai_compiler.quantize import datasets, metrics
from ir import HaiError

ort = pytest.importorskip("onnxruntime")


def fp32_outputs(data: datasets.QuantDataset) -> np.ndarray:
    session = ort.InferenceSession(str(data.model), providers=["CPUExecutionProvider"])
    return np.concatenate([session.run(None, feed)[0] for feed in data.evaluation_feeds()])


def assert_disjoint(calibration: np.ndarray, evaluation: np.ndarray) -> None:
    seen = {sample.tobytes() for sample in calibration}
    assert not any(sample.tobytes() in seen for sample in evaluation)


def test_digits_calibrate_on_training_digits_and_evaluate_on_the_held_out_ones() -> None:
    data = datasets.load_case("digits")
    assert data.input_name == "image"
    assert data.calibration.shape == (100, 1, 1, 8, 8) and data.evaluation.shape == (360, 1, 1, 8, 8)
    assert data.calibration.dtype == data.evaluation.dtype == np.float32
    assert data.labels is not None and data.labels.shape == (360,)
    assert data.label_names == tuple("0123456789")
    assert_disjoint(data.calibration, data.evaluation)
    assert metrics.accuracy(fp32_outputs(data), data.labels) > 0.95


def test_datasets_are_deterministic_for_a_seed() -> None:
    first, again = datasets.load_case("digits", seed=3), datasets.load_case("digits", seed=3)
    other = datasets.load_case("digits", seed=4)
    np.testing.assert_array_equal(first.calibration, again.calibration)
    np.testing.assert_array_equal(first.labels, again.labels)
    assert not np.array_equal(first.calibration, other.calibration)


def test_orientation_labels_follow_the_models_label_list() -> None:
    pytest.importorskip("skimage", reason="the orientation set needs scikit-image (the `bench` extra)")
    pytest.importorskip("PIL", reason="the orientation set needs Pillow (the `bench` extra)")
    data = datasets.load_case("orientation", calibration_samples=8, eval_samples=32)
    assert data.label_names == ("0", "90", "180", "270")  # the model's "character" metadata
    assert data.calibration.shape == (8, 1, 3, 224, 224) and data.evaluation.shape == (32, 1, 3, 224, 224)
    assert data.evaluation.dtype == np.float32
    assert data.labels is not None and np.bincount(data.labels).tolist() == [8, 8, 8, 8]
    assert_disjoint(data.calibration, data.evaluation)
    assert metrics.accuracy(fp32_outputs(data), data.labels) > 0.8
    again = datasets.load_case("orientation", calibration_samples=8, eval_samples=32)
    np.testing.assert_array_equal(data.evaluation, again.evaluation)


def test_rec_lines_are_preprocessed_as_rapidocr_does() -> None:
    pytest.importorskip("PIL", reason="the rec set needs Pillow (the `bench` extra)")
    data = datasets.load_case("rec", calibration_samples=4, eval_samples=8)
    assert data.input_name == "x"
    assert data.calibration.shape == (4, 1, 3, 48, 320) and data.evaluation.shape == (8, 1, 3, 48, 320)
    assert data.evaluation.min() >= -1.0 and data.evaluation.max() <= 1.0
    assert np.all(data.evaluation[..., -1] == 0.0)  # zero-padded on the right
    assert data.texts is not None and len(data.texts) == 8
    assert data.label_names[0] == "blank" and data.label_names[-1] == " "
    outputs = fp32_outputs(data)
    assert outputs.shape[0] == 8 and outputs.shape[-1] == len(data.label_names)
    assert metrics.text_accuracy(outputs, data.texts, data.label_names) >= 0.75


def test_save_calibration_names_the_array_after_the_input(tmp_path) -> None:  # type: ignore[no-untyped-def]
    data = datasets.load_case("digits", calibration_samples=10, eval_samples=5)
    with np.load(data.save_calibration(tmp_path / "cal.npz")) as saved:
        assert list(saved) == ["image"]
        np.testing.assert_array_equal(saved["image"], data.calibration)
    assert len(list(data.calibration_feeds())) == 10


def test_bad_requests_say_what_to_change() -> None:
    with pytest.raises(HaiError, match="unknown quantization case 'cats'"):
        datasets.load_case("cats")
    with pytest.raises(HaiError, match="at most 1437 calibration samples"):
        datasets.load_case("digits", calibration_samples=2000)
    with pytest.raises(HaiError, match="at least one"):
        datasets.load_case("digits", eval_samples=0)
