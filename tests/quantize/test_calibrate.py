"""Calibration runs on the digits CNN: ranges hold the ONNX reference evaluator's activations; determinism."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx.reference import ReferenceEvaluator

from hai_compiler.demo import load_heldout_digits
from hai_compiler.quantize import (
    CalibrationDataError,
    ObserverError,
    calibrate,
    observed_values,
    prepare_graph,
)

DIGITS = "hai_compiler/models/digits_cnn.onnx"


@pytest.fixture(scope="module")
def graph():
    return prepare_graph(DIGITS, {"image": (1, 1, 8, 8)})


@pytest.fixture(scope="module")
def images():
    return load_heldout_digits()[0][:40]


def reference_ranges(images: np.ndarray) -> dict[str, tuple[float, float]]:
    """Min and max of every ONNX tensor over the images, from onnx's reference evaluator."""
    evaluator = ReferenceEvaluator(onnx.load(DIGITS))
    low: dict[str, float] = {}
    high: dict[str, float] = {}
    for image in images:
        results = dict(evaluator.run(None, {"image": image[None]}, intermediate=True))
        results["image"] = image
        for name, array in results.items():
            array = np.asarray(array)
            if array.dtype.kind == "f" and array.size:
                low[name] = min(low.get(name, np.inf), float(array.min()))
                high[name] = max(high.get(name, -np.inf), float(array.max()))
    return {name: (low[name], high[name]) for name in low}


def test_minmax_ranges_match_the_onnx_reference(graph, images, tmp_path):
    np.savez(tmp_path / "digits.npz", image=images)  # concatenated along the batch axis (B = 1)
    stats = calibrate(graph, tmp_path / "digits.npz", "minmax", progress=False)
    observed = [v.name for v in observed_values(graph)]
    assert sorted(stats.ranges) == sorted(observed) and len(observed) == 9
    want = reference_ranges(images)
    compared = [name for name in observed if name in want]
    assert {"image", "relu", "relu_1", "relu_2", "mean", "logits"} <= set(compared)
    for name in compared:
        np.testing.assert_allclose(stats[name], want[name], rtol=1e-5, atol=1e-5, err_msg=name)
    assert stats.samples == len(images)


@pytest.mark.parametrize("observer", ["percentile", "mse", "entropy"])
def test_other_observers_stay_inside_the_data(graph, images, observer):
    minmax = calibrate(graph, [{"image": x[None]} for x in images], "minmax", progress=False)
    stats = calibrate(graph, [{"image": x[None]} for x in images], observer, progress=False)
    for name, (low, high) in stats.ranges.items():
        data_low, data_high = minmax[name]
        assert data_low - 1e-6 <= low <= high <= data_high + 1e-6, name
        assert high > 0, name  # every activation of this model has positive values


def test_fixed_seed_gives_the_same_stats(graph, images):
    feeds = [{"image": x[None]} for x in images]
    runs = [
        calibrate(graph, feeds, "percentile", max_samples=10, seed=seed, progress=False) for seed in (7, 7, 8)
    ]
    assert runs[0].ranges == runs[1].ranges
    for name in runs[0].states:
        for key in runs[0].states[name]:
            np.testing.assert_array_equal(runs[0].states[name][key], runs[1].states[name][key])
    assert runs[0].ranges != runs[2].ranges
    assert runs[0].samples == 10


def test_progress_bar_runs(graph, images, capsys):
    stats = calibrate(graph, [{"image": x[None]} for x in images[:3]], progress=True)
    assert stats.samples == 3


def test_bad_observer_and_bad_data_fail_before_running(graph, images):
    with pytest.raises(ObserverError, match="unknown observer 'kl'"):
        calibrate(graph, [{"image": images[0][None]}], "kl", progress=False)
    with pytest.raises(ObserverError, match="no option"):
        calibrate(graph, [{"image": images[0][None]}], "minmax", options={"bits": 8}, progress=False)
    with pytest.raises(CalibrationDataError, match=r"missing \['image'\]"):
        calibrate(graph, [{"x": images[0][None]}], progress=False)
