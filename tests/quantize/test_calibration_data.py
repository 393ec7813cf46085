"""Calibration data: both .npz layouts, directories, feed dicts, the sample cap and every bad-input error."""

from __future__ import annotations

import numpy as np
import pytest

from hai_compiler.quantize import CalibrationDataError, load_calibration_data
from ir import DType, TensorType

INPUTS = {
    "image": TensorType(DType.F32, (2, 3, 4)),  # batch 2
    "ids": TensorType(DType.I64, (2, 5)),
}


def samples(count: int, seed: int = 0) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [
        {
            "image": rng.standard_normal((2, 3, 4)).astype(np.float32),
            "ids": rng.integers(0, 100, (2, 5)).astype(np.int64),
        }
        for _ in range(count)
    ]


def assert_same_feeds(got: list[dict[str, np.ndarray]], want: list[dict[str, np.ndarray]]) -> None:
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert list(g) == list(INPUTS)
        for name in INPUTS:
            assert g[name].dtype == INPUTS[name].dtype.numpy
            np.testing.assert_array_equal(g[name], w[name])


def stacked(feeds: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {name: np.stack([f[name] for f in feeds]) for name in INPUTS}


def concatenated(feeds: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {name: np.concatenate([f[name] for f in feeds]) for name in INPUTS}


@pytest.mark.parametrize("layout", [stacked, concatenated])
def test_npz_layouts(tmp_path, layout):
    want = samples(5)
    np.savez(tmp_path / "cal.npz", **layout(want))
    data = load_calibration_data(tmp_path / "cal.npz", INPUTS)
    assert len(data) == 5
    assert_same_feeds(list(data), want)
    assert_same_feeds(list(data), want)  # re-iterable


def test_float64_and_int32_files_are_cast(tmp_path):
    want = samples(3)
    arrays = stacked(want)
    np.savez(
        tmp_path / "cal.npz", image=arrays["image"].astype(np.float64), ids=arrays["ids"].astype(np.int32)
    )
    assert_same_feeds(list(load_calibration_data(tmp_path / "cal.npz", INPUTS)), want)


def test_directory_in_sorted_order_mixing_layouts(tmp_path):
    want = samples(7)
    np.savez(tmp_path / "b.npz", **concatenated(want[3:]))
    np.savez(tmp_path / "a.npz", **stacked(want[:3]))
    (tmp_path / "notes.txt").write_text("not calibration data")
    data = load_calibration_data(tmp_path, INPUTS)
    assert_same_feeds(list(data), want)


def test_iterable_of_feed_dicts():
    want = samples(4)
    data = load_calibration_data(iter(want), INPUTS)  # a one-shot generator becomes re-iterable
    assert_same_feeds(list(data), want)
    assert_same_feeds(list(data), want)


def test_cap_without_seed_takes_the_first(tmp_path):
    want = samples(6)
    np.savez(tmp_path / "cal.npz", **stacked(want))
    assert_same_feeds(
        list(load_calibration_data(tmp_path / "cal.npz", INPUTS, max_samples=2, seed=None)), want[:2]
    )
    assert_same_feeds(list(load_calibration_data(iter(want), INPUTS, max_samples=2, seed=None)), want[:2])


def test_seeded_subsample_is_deterministic_and_ordered(tmp_path):
    want = samples(20)
    np.savez(tmp_path / "cal.npz", **stacked(want))
    picks = [load_calibration_data(tmp_path / "cal.npz", INPUTS, max_samples=5, seed=s) for s in (3, 3, 4)]
    first, again, other = (p.selected.tolist() for p in picks)
    assert first == again and len(first) == 5 and first == sorted(first)
    assert first != other
    assert_same_feeds(list(picks[0]), [want[i] for i in first])
    from_feeds = load_calibration_data(want, INPUTS, max_samples=5, seed=3)
    assert_same_feeds(list(from_feeds), [want[i] for i in first])  # same pick from any source


def test_cap_larger_than_the_set_keeps_everything():
    assert len(load_calibration_data(samples(3), INPUTS, max_samples=10)) == 3


@pytest.mark.parametrize("bad", [0, -1, 2.5])
def test_bad_cap(bad):
    with pytest.raises(CalibrationDataError, match="max_samples"):
        load_calibration_data(samples(3), INPUTS, max_samples=bad)


def test_wrong_names_list_expected_and_given(tmp_path):
    arrays = stacked(samples(2))
    np.savez(tmp_path / "cal.npz", x=arrays["image"], ids=arrays["ids"])
    with pytest.raises(CalibrationDataError) as error:
        load_calibration_data(tmp_path / "cal.npz", INPUTS)
    message = str(error.value)
    assert "cal.npz" in message and "['ids', 'x']" in message and "['image', 'ids']" in message
    assert "missing ['image']" in message and "unknown ['x']" in message


def test_wrong_shape_says_both_layouts(tmp_path):
    arrays = stacked(samples(2))
    np.savez(tmp_path / "cal.npz", image=arrays["image"][:, :, :2], ids=arrays["ids"])
    with pytest.raises(
        CalibrationDataError, match=r"'image' has shape \[2, 2, 2, 4\].*\(S, 2, 3, 4\).*\(S\*2, 3, 4\)"
    ):
        load_calibration_data(tmp_path / "cal.npz", INPUTS)


def test_batch_not_a_multiple(tmp_path):
    arrays = concatenated(samples(2))
    np.savez(tmp_path / "cal.npz", image=arrays["image"][:3], ids=arrays["ids"][:3])
    with pytest.raises(CalibrationDataError, match="'image' has shape"):
        load_calibration_data(tmp_path / "cal.npz", INPUTS)


def test_inputs_with_different_sample_counts(tmp_path):
    arrays = stacked(samples(3))
    np.savez(tmp_path / "cal.npz", image=arrays["image"], ids=arrays["ids"][:2])
    with pytest.raises(CalibrationDataError, match="different numbers of samples"):
        load_calibration_data(tmp_path / "cal.npz", INPUTS)


def test_wrong_dtype_names_the_input(tmp_path):
    arrays = stacked(samples(2))
    np.savez(tmp_path / "cal.npz", image=arrays["image"], ids=arrays["ids"].astype(np.float32))
    with pytest.raises(CalibrationDataError, match="input 'ids' is float32, the model expects i64"):
        load_calibration_data(tmp_path / "cal.npz", INPUTS)


def test_feed_dict_errors():
    good = samples(2)
    with pytest.raises(CalibrationDataError, match=r"sample 1: input 'image' has shape \[3, 4\]"):
        load_calibration_data([good[0], {**good[1], "image": good[1]["image"][0]}], INPUTS)
    with pytest.raises(CalibrationDataError, match="sample 0: input 'image' is int64"):
        load_calibration_data([{**good[0], "image": np.zeros((2, 3, 4), np.int64)}], INPUTS)
    with pytest.raises(CalibrationDataError, match=r"sample 0.*missing \['ids'\]"):
        load_calibration_data([{"image": good[0]["image"]}], INPUTS)
    with pytest.raises(CalibrationDataError, match="sample 0 is a ndarray"):
        load_calibration_data([good[0]["image"]], INPUTS)
    with pytest.raises(CalibrationDataError, match="iterable of feed dicts"):
        load_calibration_data(good[0], INPUTS)  # one dict, not an iterable of them


def test_empty_sets(tmp_path):
    with pytest.raises(CalibrationDataError, match="calibration set is empty"):
        load_calibration_data([], INPUTS)
    np.savez(
        tmp_path / "cal.npz", image=np.zeros((0, 2, 3, 4), np.float32), ids=np.zeros((0, 2, 5), np.int64)
    )
    with pytest.raises(CalibrationDataError, match="calibration set is empty"):
        load_calibration_data(tmp_path / "cal.npz", INPUTS)
    (tmp_path / "empty").mkdir()
    with pytest.raises(CalibrationDataError, match="holds no .npz files"):
        load_calibration_data(tmp_path / "empty", INPUTS)


def test_missing_and_unreadable_files(tmp_path):
    with pytest.raises(CalibrationDataError, match="nope.npz: no such file"):
        load_calibration_data(tmp_path / "nope.npz", INPUTS)
    (tmp_path / "x.npy").write_bytes(b"")
    with pytest.raises(CalibrationDataError, match="expected an .npz"):
        load_calibration_data(tmp_path / "x.npy", INPUTS)
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(CalibrationDataError, match="bad.npz: not a readable .npz"):
        load_calibration_data(tmp_path / "bad.npz", INPUTS)
