"""Observers against numpy: exact min/max, percentiles within a bin, MSE at the brute-force optimum."""

from __future__ import annotations

import numpy as np
import pytest

from hai_compiler.quantize import OBSERVERS, Histogram, ObserverError, make_observer, restore_observer


def heavy_tailed(seed: int = 0, n: int = 200_000) -> np.ndarray:
    """Student-t with 4 degrees of freedom, shifted so it is asymmetric: max |x| is ~80x the std."""
    return (np.random.default_rng(seed).standard_t(4, n) + 0.5).astype(np.float32)


def feed(observer, data: np.ndarray, pieces: int = 7) -> None:
    for chunk in np.array_split(data, pieces):  # ranges grow between updates
        observer.update(chunk.reshape(-1, 1))


def affine_mse(data: np.ndarray, low: float, high: float, bits: int = 8) -> float:
    """Squared error of quantizing `data` over [low, high] (zero included), computed directly."""
    low, high = min(low, 0.0), max(high, 0.0)
    scale = (high - low) / (2**bits - 1)
    zero_point = np.round(-low / scale)
    q = np.clip(np.round(data / scale) + zero_point, 0, 2**bits - 1)
    return float(np.mean((data - (q - zero_point) * scale) ** 2))


def symmetric_mse(data: np.ndarray, threshold: float, bits: int = 8) -> float:
    top = 2 ** (bits - 1) - 1
    scale = threshold / top
    return float(np.mean((data - np.clip(np.round(data / scale), -top, top) * scale) ** 2))


def test_registry_has_the_builtins():
    assert {"minmax", "percentile", "mse", "entropy"} <= set(OBSERVERS)


def test_minmax_is_exact_and_skips_non_finite():
    data = heavy_tailed()
    observer = make_observer("minmax")
    feed(observer, data)
    observer.update(np.array([np.inf, -np.inf, np.nan], np.float32))
    assert observer.range() == (float(data.min()), float(data.max()))


def test_histogram_regrowth_is_exact():
    growing = np.linspace(0.1, 30, 50_000)  # the range keeps growing from chunk to chunk
    data = np.random.default_rng(1).standard_normal(50_000) * growing
    histogram = Histogram(256)
    for chunk in np.array_split(data, 10):
        histogram.add(chunk)
    expected, _ = np.histogram(data, bins=histogram.edges())
    np.testing.assert_array_equal(histogram.counts, expected)
    assert (histogram.min, histogram.max) == (data.min(), data.max())
    assert histogram.lo <= 0 <= histogram.hi


# A histogram cannot interpolate between two tail elements that fall in different bins, so its clip
# is compared with np.percentile's nearest element (method="nearest"), not the interpolated value.


@pytest.mark.parametrize("percentile", [99.0, 99.99])
def test_percentile_two_sided_within_a_bin(percentile):
    data = heavy_tailed()
    observer = make_observer("percentile", percentile=percentile)
    feed(observer, data)
    low, high = observer.range()
    width = observer.histogram.width
    want_low = np.percentile(data, 100 - percentile, method="nearest")
    want_high = np.percentile(data, percentile, method="nearest")
    assert want_low - width <= low <= want_low
    assert want_high <= high <= want_high + width


def test_percentile_of_abs_is_one_threshold():
    data = heavy_tailed()
    observer = make_observer("percentile", percentile=99.9, symmetric=True)
    feed(observer, data)
    low, high = observer.range()
    want = np.percentile(np.abs(data), 99.9, method="nearest")
    assert -low == high  # both sides of this data exceed the threshold
    assert want <= high <= want + observer.histogram.width


def test_one_sided_ranges_stay_inside_non_negative_data():
    data = np.maximum(heavy_tailed(), 0)  # post-ReLU
    for name in ("percentile", "mse", "entropy"):
        options = {"symmetric": True} if name != "entropy" else {}
        observer = make_observer(name, **options)
        feed(observer, data)
        low, high = observer.range()
        assert low == 0.0 and 0 < high <= data.max(), name


def test_mse_beats_minmax_on_heavy_tails():
    data = heavy_tailed()
    minmax = make_observer("minmax")
    mse = make_observer("mse", bits=8)
    feed(minmax, data)
    feed(mse, data)
    low, high = mse.range()
    assert data.min() < low < 0 < high < data.max()
    assert affine_mse(data, low, high) < 0.75 * affine_mse(data, *minmax.range())


def best_threshold_on_the_data(data: np.ndarray, bits: int) -> tuple[float, float]:
    """Brute force: the threshold of 400 geometric candidates with the least squared error, and that error."""
    candidates = np.abs(data).max() * 2.0 ** -np.linspace(0, 12, 400)
    errors = [symmetric_mse(data, t, bits) for t in candidates]
    return float(candidates[np.argmin(errors)]), float(min(errors))


@pytest.mark.parametrize("bits", [8, 4])
def test_symmetric_mse_finds_the_brute_force_optimum(bits):
    data = heavy_tailed(seed=2)
    observer = make_observer("mse", symmetric=True, bits=bits)
    feed(observer, data)
    low, high = observer.range()
    threshold = max(-low, high)
    best, least = best_threshold_on_the_data(data, bits)
    assert symmetric_mse(data, threshold, bits) <= 1.01 * least
    assert abs(threshold - best) < 0.05 * best
    assert symmetric_mse(data, threshold, bits) < 0.75 * symmetric_mse(data, float(np.abs(data).max()), bits)


def test_entropy_clips_the_tail_but_not_the_bulk():
    data = heavy_tailed(seed=2)
    observer = make_observer("entropy", bits=8)
    feed(observer, data)
    low, high = observer.range()
    threshold = max(-low, high)
    assert np.percentile(np.abs(data), 99) < threshold < np.abs(data).max()


def test_int4_entropy_clips_harder_than_int8():
    data = heavy_tailed(seed=3)
    ranges = {}
    for bits in (4, 8):
        observer = make_observer("entropy", bits=bits)
        feed(observer, data)
        ranges[bits] = observer.range()[1]
    assert ranges[4] < ranges[8]


@pytest.mark.parametrize(
    "name, options",
    [("minmax", {}), ("percentile", {"percentile": 99.5}), ("mse", {"bits": 4}), ("entropy", {})],
)
def test_state_round_trip(name, options):
    observer = make_observer(name, **options)
    feed(observer, heavy_tailed())
    restored = restore_observer(name, observer.state(), observer.options())
    assert restored.range() == observer.range()
    more = heavy_tailed(seed=5)
    observer.update(more)
    restored.update(more)  # resumes where it stopped
    assert restored.range() == observer.range()


def test_empty_observer_range_is_zero():
    for name in OBSERVERS:
        observer = make_observer(name)
        observer.update(np.array([np.nan], np.float32))
        assert observer.range() == (0.0, 0.0)


def test_constant_tensor():
    for name in OBSERVERS:
        observer = make_observer(name)
        observer.update(np.full(10, 3.0, np.float32))
        low, high = observer.range()
        assert low <= 3.0 <= high + 1e-6, name


def test_bad_names_and_options():
    with pytest.raises(ObserverError, match="unknown observer 'minimax'.*entropy, minmax, mse, percentile"):
        make_observer("minimax")
    with pytest.raises(ObserverError, match=r"observer 'mse' has no option\(s\) \['percentile'\]"):
        make_observer("mse", percentile=99.0)
    with pytest.raises(ObserverError, match="percentile=40"):
        make_observer("percentile", percentile=40)
    with pytest.raises(ObserverError, match="bits=1"):
        make_observer("entropy", bits=1)
